"""The OpenAPI description of the session-host endpoints (``views``), added from outside the
views with drf-spectacular view extensions, so that the views stay as their issue wrote them.
Imported by ``devbench_site.api.urls`` before any schema is generated."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import serializers

from devbench_site.api.schema import documented_error

STATUS_EXAMPLE = {
    "ready": False,
    "podName": "session-host",
    "namespace": "devbench-alice",
    "certReady": False,
    "certPendingReason": "certificate not issued yet",
    "createdAt": "2026-11-21T23:00:00Z",
}


class SessionHostStatusSerializer(serializers.Serializer):
    """dev-pod-api's ``SessionHostStatus``: empty reason, zero count and unknown time are left out."""

    ready = serializers.BooleanField(read_only=True, help_text="The pod is Running and Ready.")
    podName = serializers.CharField(read_only=True)
    namespace = serializers.CharField(read_only=True)
    certReady = serializers.BooleanField(read_only=True)
    # Left out when empty (not read-only, so that the response schema does not require them).
    certPendingReason = serializers.CharField(required=False)
    atchSessionCount = serializers.IntegerField(required=False)
    createdAt = serializers.DateTimeField(required=False, help_text="When the pod was created.")


EXAMPLES = [OpenApiExample("Starting", value=STATUS_EXAMPLE, response_only=True)]
KUBE_DOWN = documented_error(503, "Kubernetes is not configured: `session-host manager not configured`.")
KUBE_FAILED = documented_error(500, "The Kubernetes API server refused or failed; `error` is its reason.")


class EnsureSessionHostSchema(OpenApiViewExtension):
    target_class = "sessionhosts.views.EnsureSessionHostView"

    def view_replacement(self):
        @extend_schema_view(post=extend_schema(
            operation_id="sessionhost_ensure",
            tags=["session-host"],
            summary="Create-or-get your session host",
            description="Idempotent: creates your namespace, PVCs, pod, service, ingress and certificate when "
            "absent, then answers their state. Only reads when everything exists.",
            request=None,
            responses={200: SessionHostStatusSerializer, 500: KUBE_FAILED, 503: KUBE_DOWN},
            examples=EXAMPLES,
        ))
        class Described(self.target_class):
            pass

        return Described


class SessionHostStatusSchema(OpenApiViewExtension):
    target_class = "sessionhosts.views.SessionHostStatusView"

    def view_replacement(self):
        @extend_schema_view(get=extend_schema(
            operation_id="sessionhost_status",
            tags=["session-host"],
            summary="Your session host's live status",
            description="Reads the pod and certificate (creates nothing). `{user}` must be your own username "
            "(any case).",
            responses={200: SessionHostStatusSerializer,
                       403: documented_error(403, "Another user: `subject mismatch`."),
                       500: KUBE_FAILED, 503: KUBE_DOWN},
            examples=EXAMPLES,
        ))
        class Described(self.target_class):
            pass

        return Described
