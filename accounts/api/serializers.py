"""Parse requests and render users and API keys as the API's camelCase JSON (types only; the
rules are in ``accounts.services``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from devbench_site.api.schema import documented, ecma

from ..validators import USERNAME_MAX_LENGTH, username_letters_only

SMALLINT_MAX = 32767  # bench_quota's column


@extend_schema_serializer(examples=[OpenApiExample("Me", value={
    "id": 1, "username": "alice", "email": "alice@example.com", "isAdmin": False, "benchQuota": None,
    "dateJoined": "2025-11-23T12:00:00Z", "lastLogin": "2025-11-24T08:00:00Z",
}, response_only=True)])
class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)
    isAdmin = serializers.BooleanField(source="is_staff", read_only=True)
    benchQuota = serializers.IntegerField(source="bench_quota", read_only=True, allow_null=True,
                                          help_text="Your bench quota; null means the site default.")
    dateJoined = serializers.DateTimeField(source="date_joined", read_only=True)
    lastLogin = serializers.DateTimeField(source="last_login", read_only=True, allow_null=True)


API_KEY_EXAMPLE = {
    "id": 7, "name": "laptop", "prefix": "dbk_Zq3v8Jw1", "active": True, "createdAt": "2025-11-23T12:00:00Z",
    "lastUsedAt": None, "revokedAt": None,
}


@extend_schema_serializer(examples=[OpenApiExample("A key", value=API_KEY_EXAMPLE, response_only=True)])
class APIKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    prefix = serializers.CharField(read_only=True, help_text="The key's first characters, to recognise it.")
    active = serializers.BooleanField(source="is_active", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)
    revokedAt = serializers.DateTimeField(source="revoked_at", read_only=True, allow_null=True)


@extend_schema_serializer(examples=[OpenApiExample("New key", value={"name": "laptop"}, request_only=True)])
class APIKeyCreateSerializer(serializers.Serializer):
    name = documented(serializers.CharField(allow_blank=True, default="", help_text="A label; at most 100 characters."),
                      maxLength=100)


@extend_schema_serializer(examples=[OpenApiExample("Created", value={
    **API_KEY_EXAMPLE, "key": "dbk_Zq3v8Jw1rM0cT5yHq2b9XkP4sLw7aN6eV1uD3fG8hJ0",
}, response_only=True)])
class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself: shown this once, never again.")


SSH_KEY_EXAMPLE = {
    "id": 3, "name": "laptop", "keyType": "ssh-ed25519",
    "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ9mW0wq5q6zL1qk1d4HcO2vT1f4r0XHn1cBqTqk8zQm alice@laptop",
    "fingerprint": "SHA256:Xb3JrU1w0y7mY2e9bQ8l6rYJm7GkqS1j9TtVhQpZ4cE", "createdAt": "2025-11-23T12:00:00Z",
}


@extend_schema_serializer(examples=[OpenApiExample("A key", value=SSH_KEY_EXAMPLE, response_only=True)])
class SSHKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    keyType = serializers.CharField(source="key_type", read_only=True)
    publicKey = serializers.CharField(source="public_key", read_only=True)
    fingerprint = serializers.CharField(read_only=True, help_text="SHA256, as ssh-keygen -l prints it.")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)


@extend_schema_serializer(examples=[OpenApiExample("New key", value={
    "name": "laptop", "publicKey": SSH_KEY_EXAMPLE["publicKey"],
}, request_only=True)])
class SSHKeyCreateSerializer(serializers.Serializer):
    name = documented(serializers.CharField(allow_blank=True, default="",
                                            help_text="A label; defaults to the key's comment."), maxLength=100)
    publicKey = documented(serializers.CharField(help_text="One OpenSSH public key line.", trim_whitespace=False),
                           maxLength=8192)


USER_EXAMPLE = {
    "id": 5, "username": "john", "email": "john@example.com", "isAdmin": False, "isActive": True,
    "benchQuota": None, "benchCount": 2, "dateJoined": "2025-11-23T12:00:00Z", "lastLogin": None,
    "deletionRequestedAt": None,
}


@extend_schema_serializer(examples=[
    OpenApiExample("A user", value=USER_EXAMPLE, response_only=True, status_codes=["200", "201", "202"]),
])
class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)
    isAdmin = serializers.BooleanField(source="is_staff", read_only=True)
    isActive = serializers.BooleanField(source="is_active", read_only=True)
    benchQuota = serializers.IntegerField(source="bench_quota", read_only=True, allow_null=True)
    benchCount = serializers.IntegerField(source="bench_count", read_only=True)
    dateJoined = serializers.DateTimeField(source="date_joined", read_only=True)
    lastLogin = serializers.DateTimeField(source="last_login", read_only=True, allow_null=True)
    deletionRequestedAt = serializers.DateTimeField(
        source="deletion_requested_at", read_only=True, allow_null=True,
        help_text="Set while the user's benches are being removed before the account goes.",
    )


@extend_schema_serializer(examples=[OpenApiExample("New user", value={
    "username": "john", "email": "john@example.com", "password": "Correct-Horse-9",
}, request_only=True)])
class UserCreateSerializer(serializers.Serializer):
    username = documented(serializers.CharField(help_text="Letters only; unique regardless of case."),
                          pattern=ecma(username_letters_only.regex), maxLength=USERNAME_MAX_LENGTH)
    email = documented(serializers.CharField(max_length=254), format="email", maxLength=254)
    password = documented(serializers.CharField(trim_whitespace=False, write_only=True),
                          minLength=8, description="Checked by the site's password rules.")
    isAdmin = serializers.BooleanField(source="is_admin", default=False)
    benchQuota = serializers.IntegerField(source="bench_quota", allow_null=True, default=None, min_value=0,
                                          max_value=SMALLINT_MAX, help_text="Null: the site default.")


@extend_schema_serializer(examples=[OpenApiExample(
    "New password", value={"newPassword": "Correct-Horse-9"}, request_only=True,
)])
class ResetPasswordSerializer(serializers.Serializer):
    # ``source`` maps the service's "password" field errors back to the original's name.
    newPassword = documented(serializers.CharField(source="password", trim_whitespace=False),
                             minLength=8, description="Checked by the site's password rules.")
