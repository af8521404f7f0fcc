"""The original's ``SessionHostStatus``, computed from the live Pod and Certificate (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .manifests import ATCH_SESSIONS_ANNOTATION, POD_NAME

CERT_NOT_FOUND = "certificate not found"
CERT_NOT_ISSUED = "certificate not issued yet"
DEAD_POD_PHASES = frozenset({"Failed", "Succeeded"})


@dataclass(frozen=True)
class SessionHostStatus:
    """What the endpoints answer, plus what the ``SessionHost`` row records (``pod_phase``)."""

    ready: bool
    pod_name: str
    namespace: str
    cert_ready: bool
    cert_pending_reason: str = ""
    atch_session_count: int = 0
    created_at: datetime | None = None
    pod_phase: str = ""  # "" when the pod does not exist

    def as_json(self) -> dict[str, Any]:
        """The body, keys in the original's order; empty reason, zero count and unknown time omitted."""
        body: dict[str, Any] = {
            "ready": self.ready,
            "podName": self.pod_name,
            "namespace": self.namespace,
            "certReady": self.cert_ready,
        }
        if self.cert_pending_reason:
            body["certPendingReason"] = self.cert_pending_reason
        if self.atch_session_count:
            body["atchSessionCount"] = self.atch_session_count
        if self.created_at is not None:
            body["createdAt"] = rfc3339(self.created_at)
        return body


def rfc3339(moment: datetime) -> str:
    """``2026-11-21T23:00:00Z``: UTC, whole seconds, as Kubernetes and Go write timestamps."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse a Kubernetes timestamp (RFC 3339); None when absent or malformed."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def pod_phase(pod: dict[str, Any] | None) -> str:
    """The pod's phase, "" when there is no pod."""
    if pod is None:
        return ""
    return (pod.get("status") or {}).get("phase") or "Pending"


def pod_is_dead(pod: dict[str, Any] | None) -> bool:
    """A pod that will never run again (Failed, e.g. evicted, or Succeeded) and must be replaced."""
    return pod_phase(pod) in DEAD_POD_PHASES


def pod_is_ready(pod: dict[str, Any] | None) -> bool:
    """Phase Running and condition Ready=True."""
    condition = _condition(pod, "Ready")
    return pod_phase(pod) == "Running" and condition is not None and condition.get("status") == "True"


def atch_session_count(pod: dict[str, Any] | None) -> int:
    """The integer in the ``devbench.io/atch-sessions`` annotation; 0 when absent or not a count."""
    annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
    try:
        count = int(str(annotations.get(ATCH_SESSIONS_ANNOTATION, "0")).strip())
    except ValueError:
        return 0
    return max(count, 0)


def certificate_state(certificate: dict[str, Any] | None) -> tuple[bool, str]:
    """(ready, pending reason): Ready=True, else the Ready condition's reason and message."""
    if certificate is None:
        return False, CERT_NOT_FOUND
    condition = _condition(certificate, "Ready")
    if condition is None:
        return False, CERT_NOT_ISSUED
    if condition.get("status") == "True":
        return True, ""
    parts = [part for part in (condition.get("reason"), condition.get("message")) if part]
    return False, ": ".join(parts) or CERT_NOT_ISSUED


def status_from(
    *, namespace: str, pod: dict[str, Any] | None, certificate: dict[str, Any] | None
) -> SessionHostStatus:
    """The status of a session host from its live Pod and Certificate (either may be None)."""
    cert_ready, cert_reason = certificate_state(certificate)
    created = parse_timestamp(((pod or {}).get("metadata") or {}).get("creationTimestamp"))
    return SessionHostStatus(
        ready=pod_is_ready(pod),
        pod_name=POD_NAME,
        namespace=namespace,
        cert_ready=cert_ready,
        cert_pending_reason=cert_reason,
        atch_session_count=atch_session_count(pod),
        created_at=created,
        pod_phase=pod_phase(pod),
    )
