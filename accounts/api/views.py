"""The accounts API: who am I, your API keys and SSH keys, and users (admins). Thin: parse, call
``accounts.services`` / ``accounts.selectors`` (as the compatible admin routes and the admin panel
do), render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from devbench_site.api.parsing import parse_body
from devbench_site.api.permissions import IsAdmin
from devbench_site.converters import ObjectIdConverter
from devbench_site.errors import NotFound

from .. import selectors, services
from ..models import APIKey, SSHKey, User
from . import serializers as s

ID_REGEX = ObjectIdConverter.regex  # as the compatible routes: a huge id is a 404, not an overflow


class MeView(APIView):
    """The signed-in user."""

    serializer_class = s.MeSerializer

    @extend_schema(summary="Who am I", responses=s.MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.MeSerializer(request.user).data)


@extend_schema_view(list=extend_schema(summary="List your API keys (revoked ones included)"))
class APIKeyViewSet(viewsets.GenericViewSet):
    """Your API keys. Only a hash of each key is stored: the key is shown once, when created."""

    serializer_class = s.APIKeySerializer
    queryset = APIKey.objects.none()
    lookup_value_regex = ID_REGEX

    def get_serializer_class(self):
        return s.APIKeyCreateSerializer if self.action == "create" else s.APIKeySerializer

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.api_keys_for(request.user))
        return self.get_paginated_response(s.APIKeySerializer(page, many=True).data)

    @extend_schema(summary="Create an API key (shown once)", request=s.APIKeyCreateSerializer,
                   responses={201: s.APIKeyCreatedSerializer})
    def create(self, request: Request) -> Response:
        data = parse_body(s.APIKeyCreateSerializer, request)
        key, raw_key = services.create_api_key(user=request.user, name=data["name"])
        return Response({**s.APIKeySerializer(key).data, "key": raw_key}, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="api_keys_revoke", summary="Revoke an API key", request=None,
                   responses={200: s.APIKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        key = services.revoke_api_key(user=request.user, key_id=pk)
        return Response(s.APIKeySerializer(key).data)


@extend_schema_view(list=extend_schema(summary="List your SSH keys"))
class SSHKeyViewSet(viewsets.GenericViewSet):
    """Your SSH public keys: each bench you create afterwards authorizes them (libvirt hosts)."""

    serializer_class = s.SSHKeySerializer
    queryset = SSHKey.objects.none()
    lookup_value_regex = ID_REGEX

    def get_serializer_class(self):
        return s.SSHKeyCreateSerializer if self.action == "create" else s.SSHKeySerializer

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.ssh_keys_for(request.user))
        return self.get_paginated_response(s.SSHKeySerializer(page, many=True).data)

    @extend_schema(summary="Add an SSH key", request=s.SSHKeyCreateSerializer, responses={201: s.SSHKeySerializer})
    def create(self, request: Request) -> Response:
        data = parse_body(s.SSHKeyCreateSerializer, request)
        key = services.add_ssh_key(user=request.user, public_key=data["publicKey"], name=data["name"])
        return Response(s.SSHKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Delete an SSH key", responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_ssh_key(user=request.user, key_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _user(user_id: str) -> User:
    user = selectors.user_with_bench_count(user_id)
    if user is None:
        raise NotFound("User not found")
    return user


@extend_schema_view(
    list=extend_schema(summary="List users (admins)"),
    retrieve=extend_schema(summary="One user (admins)"),
)
class UserViewSet(viewsets.GenericViewSet):
    """Users. Admins only; admin users cannot be deleted or have their password reset here."""

    serializer_class = s.UserSerializer
    queryset = User.objects.none()
    permission_classes = [IsAuthenticated, IsAdmin]
    lookup_value_regex = ID_REGEX

    def get_serializer_class(self):
        return {"create": s.UserCreateSerializer, "reset_password": s.ResetPasswordSerializer}.get(
            self.action, s.UserSerializer
        )

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.users_with_bench_counts())
        return self.get_paginated_response(s.UserSerializer(page, many=True).data)

    @extend_schema(summary="Create a user (admins)", request=s.UserCreateSerializer,
                   responses={201: s.UserSerializer})
    def create(self, request: Request) -> Response:
        user = services.create_user(**parse_body(s.UserCreateSerializer, request))
        return Response(s.UserSerializer(_user(user.pk)).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(s.UserSerializer(_user(pk)).data)

    @extend_schema(
        summary="Delete a user and their benches (admins)",
        description="The user is deactivated and their API keys revoked at once; their benches are deleted "
        "on their hosts, and the account goes when none is left: 204 when it is gone already, else 202 "
        "with the user (`deletionRequestedAt` set).",
        responses={202: OpenApiResponse(s.UserSerializer, description="Deactivated; benches being removed."),
                   204: OpenApiResponse(description="Deleted.")},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        gone = services.delete_user(admin=request.user, user=_user(pk))
        if gone:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.UserSerializer(_user(pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(operation_id="users_reset_password", summary="Set a user's password (admins)",
                   request=s.ResetPasswordSerializer,
                   responses={204: OpenApiResponse(description="Changed.")})
    @action(detail=True, methods=["post"], url_path="reset-password")
    def reset_password(self, request: Request, pk: str) -> Response:
        user = _user(pk)
        data = parse_body(s.ResetPasswordSerializer, request)
        services.reset_password(admin=request.user, user=user, new_password=data["password"])
        return Response(status=status.HTTP_204_NO_CONTENT)
