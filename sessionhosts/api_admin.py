"""``GET /api/v1/session-hosts/`` (admins): every user's session host as last recorded.

The cluster is the truth; this lists the records the session-host endpoints, the resync and the
admin panel keep (``sessionhosts.selectors``). The endpoints themselves are in ``views``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from devbench_site.api.parsing import parse_query
from devbench_site.api.permissions import IsAdmin

from . import selectors
from .models import SessionHost


@extend_schema_serializer(examples=[OpenApiExample("A ready session host", value={
    "userId": 5, "username": "alice", "namespace": "devbench-alice", "state": "ready", "ready": True,
    "podPhase": "Running", "certReady": True, "certPendingReason": "", "atchSessionCount": 2,
    "podCreatedAt": "2026-11-21T23:00:00Z", "lastCheckedAt": "2026-11-21T23:05:00Z", "lastError": "",
    "lastErrorAt": None, "createdAt": "2026-11-21T22:59:58Z",
}, response_only=True)])
class SessionHostRecordSerializer(serializers.Serializer):
    userId = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    namespace = serializers.CharField(read_only=True)
    state = serializers.ChoiceField(choices=SessionHost.State.choices, read_only=True)
    ready = serializers.BooleanField(read_only=True)
    podPhase = serializers.CharField(source="pod_phase", read_only=True, help_text="Empty when there is no pod.")
    certReady = serializers.BooleanField(source="cert_ready", read_only=True)
    certPendingReason = serializers.CharField(source="cert_pending_reason", read_only=True)
    atchSessionCount = serializers.IntegerField(source="atch_session_count", read_only=True)
    podCreatedAt = serializers.DateTimeField(source="pod_created_at", read_only=True, allow_null=True)
    lastCheckedAt = serializers.DateTimeField(
        source="last_checked_at", read_only=True, allow_null=True, help_text="When the cluster last answered."
    )
    lastError = serializers.CharField(source="last_error", read_only=True)
    lastErrorAt = serializers.DateTimeField(source="last_error_at", read_only=True, allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)


class SessionHostFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=SessionHost.State.choices, required=False, help_text="Only this state.")


class SessionHostAdminViewSet(viewsets.GenericViewSet):
    """Every user's session host, last-known state. Admins only."""

    serializer_class = SessionHostRecordSerializer
    queryset = SessionHost.objects.none()
    permission_classes = [IsAuthenticated, IsAdmin]

    @extend_schema(summary="Every user's session host (admins)", parameters=[SessionHostFilterSerializer])
    def list(self, request: Request) -> Response:
        filters = parse_query(SessionHostFilterSerializer, request)
        page = self.paginate_queryset(selectors.session_hosts_with_users(**filters))
        return self.get_paginated_response(SessionHostRecordSerializer(page, many=True).data)
