"""Account actions (writes): users, passwords, the bootstrap admin, API keys and SSH keys.

The original's admin routes, the Django admin, the management commands and the REST API all call
these functions, so each rule lives here once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from devbench_site.errors import Forbidden, InvalidInput, NotFound

from .models import APIKey, SSHKey, User
from .signals import user_deletion_requested
from .socket_credentials import end_sockets
from .ssh_keys import InvalidPublicKey, parse_public_key
from .validators import USERNAME_MAX_LENGTH, username_letters_only

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "dbk_"
LAST_USED_RESOLUTION = timedelta(seconds=60)


# --- users ------------------------------------------------------------------------------------

def _validate_username(username: str) -> None:
    if not username:
        raise InvalidInput("Username is required", fields={"username": ["This field is required."]})
    if len(username) > USERNAME_MAX_LENGTH:
        message = f"Username must be at most {USERNAME_MAX_LENGTH} letters"
        raise InvalidInput(message, fields={"username": [message]})
    try:
        username_letters_only(username)
    except ValidationError:
        message = "Username must contain letters only"
        raise InvalidInput(message, fields={"username": [message]}) from None


def _validate_new_password(password: str, user: User | None = None) -> None:
    if not password:
        raise InvalidInput("Password is required", fields={"password": ["This field is required."]})
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        messages = list(exc.messages)
        raise InvalidInput(" ".join(messages), fields={"password": messages}) from None


def create_user(
    *, username: str, email: str, password: str, is_admin: bool = False, bench_quota: int | None = None
) -> User:
    """Create a user after checking the username rule, the email and the password validators."""
    username = (username or "").strip()
    email = (email or "").strip()
    _validate_username(username)
    try:
        validate_email(email)
    except ValidationError:
        message = "A valid email address is required"
        raise InvalidInput(message, fields={"email": [message]}) from None
    candidate = User(username=username, email=email)
    _validate_new_password(password, candidate)
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInput("Username already exists", fields={"username": ["Username already exists"]})
    try:
        with transaction.atomic():
            user = User.objects.create_user(
                username=username,
                email=email,
                password=password,
                is_staff=is_admin,
                bench_quota=bench_quota,
            )
    except IntegrityError:
        # Lost a race with a concurrent create of the same name.
        raise InvalidInput("Username already exists", fields={"username": ["Username already exists"]}) from None
    logger.info("user created: %s (admin=%s)", user.username, is_admin)
    return user


def _refuse_admin_target(user: User, action: str) -> None:
    if user.is_staff or user.is_superuser:
        raise Forbidden(f"Cannot {action} an admin user")


def check_password_reset_allowed(*, user: User) -> None:
    """Raise ``Forbidden`` when ``user``'s password may not be reset by an admin (an admin's)."""
    _refuse_admin_target(user, "reset the password of")


def reset_password(*, admin: User | None, user: User, new_password: str) -> int:
    """Set a new password for a non-admin user, as one does for a compromised account: their
    sessions end (Django checks the password hash), their API keys are revoked and their open
    WebSockets closed. Returns the number of keys revoked."""
    check_password_reset_allowed(user=user)
    _validate_new_password(new_password, user)
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        revoked = _revoke_all_keys(user)
        end_sockets(user_id=user.pk)
    actor = admin.username if admin else "system"
    logger.info("password reset for %s by %s; %d API keys revoked", user.username, actor, revoked)
    return revoked


def deactivate_user(*, admin: User | None, user: User) -> None:
    """Mark a user inactive (idempotent): they can no longer sign in or use their keys, and
    their open WebSockets close."""
    with transaction.atomic():
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        end_sockets(user_id=user.pk)
    logger.info("user deactivated: %s by %s", user.username, admin.username if admin else "system")


def generate_password() -> str:
    """A strong random password (for the bootstrap admin and the admin panel's reset action)."""
    return secrets.token_urlsafe(18)


def delete_user(*, admin: User | None, user: User) -> bool:
    """Delete a non-admin user, removing what they own elsewhere first.

    The user is deactivated at once. Apps that own remote resources (benches, session hosts)
    listen to ``user_deletion_requested`` and start removing them; the row goes when nothing
    protects it any more. Returns True when the user row is already gone.
    """
    _refuse_admin_target(user, "delete")
    with transaction.atomic():
        user.is_active = False
        user.deletion_requested_at = user.deletion_requested_at or timezone.now()
        user.save(update_fields=["is_active", "deletion_requested_at"])
        _revoke_all_keys(user)
        end_sockets(user_id=user.pk)
    logger.info("user deletion requested: %s by %s", user.username, admin.username if admin else "system")
    user_deletion_requested.send(sender=User, user=user, actor=admin)
    return purge_user_if_released(user)


def purge_user_if_released(user: User) -> bool:
    """Delete a user whose deletion was requested once no bench or resource protects the row."""
    if user.deletion_requested_at is None:
        return False
    try:
        with transaction.atomic():
            user.delete()
    except ProtectedError:
        return False
    logger.info("user deleted: %s", user.username)
    return True


def ensure_admin(*, username: str, email: str, password: str = "") -> tuple[User, str | None]:
    """Create the bootstrap admin unless an account with that name exists.

    Returns the admin and the generated password when one had to be generated (else None).
    """
    existing = User.objects.filter(username__iexact=username).first()
    if existing is not None:
        return existing, None
    generated = None
    if not password:
        generated = password = generate_password()
    user = User.objects.create_superuser(username=username, email=email, password=password)
    logger.info("bootstrap admin created: %s", username)
    return user, generated


# --- API keys ---------------------------------------------------------------------------------

def _hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def create_api_key(*, user: User, name: str = "") -> tuple[APIKey, str]:
    """Create a key for ``user``; returns the stored record and the raw key, shown only once."""
    name = (name or "").strip() or "API key"
    if len(name) > 100:
        raise InvalidInput("Key name must be at most 100 characters", fields={"name": ["Too long."]})
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = APIKey.objects.create(user=user, name=name, prefix=raw_key[:12], key_hash=_hash_key(raw_key))
    logger.info("api key created for %s: %s", user.username, key.prefix)
    return key, raw_key


def revoke_api_key(*, user: User, key_id: int) -> APIKey:
    """Revoke one of the user's own keys (idempotent) and close the WebSockets opened with it."""
    key = APIKey.objects.filter(user=user, pk=key_id).first()
    if key is None:
        raise NotFound("API key not found")
    with transaction.atomic():
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
        end_sockets(user_id=user.pk, api_key_id=key.pk)
    return key


def _revoke_all_keys(user: User) -> int:
    return APIKey.objects.filter(user=user, revoked_at__isnull=True).update(revoked_at=timezone.now())


def authenticate_api_key(raw_key: str) -> tuple[User, APIKey] | None:
    """The active user and key for a raw Bearer key, or None. Records when it was last used."""
    if not raw_key or len(raw_key) > 200:
        return None
    try:  # get(), not first(): the hash is unique, and no ORDER BY to compile on every request
        key = APIKey.objects.select_related("user").get(
            key_hash=_hash_key(raw_key), revoked_at__isnull=True, user__is_active=True,
        )
    except APIKey.DoesNotExist:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key.user, key


# --- SSH keys ---------------------------------------------------------------------------------

def add_ssh_key(*, user: User, public_key: object, name: object = "") -> SSHKey:
    """Add one of the user's SSH public keys; benches created from now on authorize it.

    The name defaults to the key's comment. Refuses a line that is not a key, a key the user
    already has, and more than DEVBENCH_MAX_SSH_KEYS_PER_USER keys.
    """
    try:
        key = parse_public_key(public_key)
    except InvalidPublicKey as exc:
        raise InvalidInput(str(exc), fields={"publicKey": [str(exc)]}) from None
    name = (name.strip() if isinstance(name, str) else "") or key.comment or key.key_type
    if len(name) > 100:
        raise InvalidInput("Key name must be at most 100 characters", fields={"name": ["Too long."]})
    limit = settings.DEVBENCH_MAX_SSH_KEYS_PER_USER
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()  # count one add at a time
        existing = SSHKey.objects.filter(user=user)
        if existing.filter(fingerprint=key.fingerprint).exists():
            message = f"You already have this key ({key.fingerprint})"
            raise InvalidInput(message, fields={"publicKey": [message]})
        if existing.count() >= limit:
            raise InvalidInput(f"SSH key limit reached: you can keep {limit}. Delete one first.")
        stored = SSHKey.objects.create(user=user, name=name, public_key=key.line, fingerprint=key.fingerprint)
    logger.info("ssh key added for %s: %s", user.username, key.fingerprint)
    return stored


def delete_ssh_key(*, user: User, key_id: int) -> None:
    """Remove one of the user's SSH keys. Benches already created keep it in their VM."""
    deleted, _ = SSHKey.objects.filter(user=user, pk=key_id).delete()
    if not deleted:
        raise NotFound("SSH key not found")
