"""Session-host actions: ensure (create-or-get), live status, delete with the user, resync.

Views, tasks, the admin and the user-deletion receiver call these. Kubernetes I/O lives in
``reconcile``/``kube``; here the record is kept: a ``SessionHost`` row exists before anything is
created on the cluster and goes only once the namespace is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import services as account_services
from accounts.models import User
from devbench_site.errors import DomainError, Unavailable

from . import kube, reconcile, selectors
from .config import SessionHostConfig
from .models import SessionHost
from .status import SessionHostStatus

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "session-host manager not configured"


def _cluster() -> kube.Cluster:
    cluster = kube.cluster()
    if cluster is None:
        raise Unavailable(NOT_CONFIGURED)
    return cluster


def _record_for(user: User, config: SessionHostConfig) -> SessionHost:
    """The user's record, created on first use (safe against concurrent first calls)."""
    host = selectors.session_host_for(user)
    if host is not None:
        return host
    try:
        with transaction.atomic():
            return SessionHost.objects.create(user=user, namespace=config.namespace_for(user.username))
    except IntegrityError:
        return SessionHost.objects.get(user=user)


def _state_of(status: SessionHostStatus) -> str:
    if not status.pod_phase:
        return SessionHost.State.MISSING
    if status.ready:
        return SessionHost.State.READY
    if status.pod_phase in ("Failed", "Succeeded"):
        return SessionHost.State.FAILED
    return SessionHost.State.PENDING


def _status_fields(status: SessionHostStatus, now) -> dict:
    """The record of a host's observed status (and that no error stands)."""
    return {
        "namespace": status.namespace,
        "state": _state_of(status),
        "ready": status.ready,
        "pod_phase": status.pod_phase,
        "cert_ready": status.cert_ready,
        "cert_pending_reason": status.cert_pending_reason,
        "atch_session_count": status.atch_session_count,
        "pod_created_at": status.created_at,
        "last_checked_at": now,
        "last_error": "",
        "last_error_at": None,
    }


def _record_status(host: SessionHost, status: SessionHostStatus) -> None:
    SessionHost.objects.filter(pk=host.pk).update(**_status_fields(status, timezone.now()))


def _record_statuses(observed: list[tuple[SessionHost, SessionHostStatus]]) -> None:
    """Record many hosts' statuses: one UPDATE per host whose record changed, and one for all
    the others' ``last_checked_at``, so the periodic resync, where most hosts are unchanged,
    writes once instead of once per host."""
    now = timezone.now()
    unchanged = []
    for host, status in observed:
        fields = _status_fields(status, now)
        if all(getattr(host, name) == value for name, value in fields.items() if name != "last_checked_at"):
            unchanged.append(host.pk)
        else:
            SessionHost.objects.filter(pk=host.pk).update(**fields)
    if unchanged:
        SessionHost.objects.filter(pk__in=unchanged).update(last_checked_at=now)


def _record_error(host: SessionHost, message: str) -> None:
    SessionHost.objects.filter(pk=host.pk).update(last_error=message, last_error_at=timezone.now())


Observe = Callable[[kube.Cluster, SessionHostConfig, str], SessionHostStatus]


def _observed(user: User, observe: Observe) -> SessionHostStatus:
    """Run ``observe(cluster, config, username)`` for the user's session host and record what it
    saw, or the Kubernetes error it raised (then re-raised)."""
    cluster = _cluster()
    config = SessionHostConfig.from_settings()
    host = _record_for(user, config)
    try:
        status = observe(cluster, config, user.username)
    except DomainError as exc:
        _record_error(host, exc.message)
        raise
    _record_status(host, status)
    return status


def ensure_session_host(*, user: User) -> SessionHostStatus:
    """Create-or-get the user's namespace, PVCs, Pod, Service, Ingress and Certificate.

    Idempotent: when everything exists it only reads. Raises ``Unavailable`` when Kubernetes is not
    configured and ``KubernetesAPIError`` when the API server fails.
    """
    def ensure(cluster: kube.Cluster, config: SessionHostConfig, username: str) -> SessionHostStatus:
        outcome = reconcile.ensure(cluster, config, username)
        if outcome.created or outcome.deleted:
            logger.info("session host of %s: created %s; deleted %s", username, outcome.created, outcome.deleted)
        return outcome.status

    return _observed(user, ensure)


def session_host_status(*, user: User) -> SessionHostStatus:
    """The live readiness of the user's pod and certificate (two GETs), recorded as last known."""
    return _observed(user, reconcile.read_status)


def delete_session_host(*, user: User) -> bool:
    """Delete the user's namespace; drop the record once the namespace is gone.

    Returns True when nothing of the user's session host is left (no record, or namespace gone).
    While the namespace terminates (or Kubernetes is unreachable) the record stays in state
    ``deleting`` and protects the user row; the resync finishes the job.
    """
    try:
        return _delete_namespace_of(user)
    except DomainError as exc:
        logger.warning("namespace of %s not deleted yet: %s", user.username, exc.message)
        return False


def _delete_namespace_of(user: User) -> bool:
    """``delete_session_host``, raising the Kubernetes failure (recorded on the row) for the caller."""
    host = selectors.session_host_for(user)
    if host is None:
        return True
    SessionHost.objects.filter(pk=host.pk).update(state=SessionHost.State.DELETING)
    try:
        gone = reconcile.delete_namespace(_cluster(), SessionHostConfig.from_settings(), user.username)
    except DomainError as exc:
        _record_error(host, exc.message)
        raise
    if not gone:
        SessionHost.objects.filter(pk=host.pk).update(last_checked_at=timezone.now(), last_error="")
        logger.info("namespace of %s is terminating; the record stays until it is gone", user.username)
        return False
    host.delete()
    logger.info("session host of %s deleted", user.username)
    return True


def _being_deleted(host: SessionHost) -> bool:
    """The user is being deleted, or an admin deleted the session host and its namespace is going."""
    return host.user.deletion_requested_at is not None or host.state == SessionHost.State.DELETING


def reconcile_session_host(*, user: User) -> SessionHostStatus | None:
    """Bring one user's session host to what it should be: ensured, or deleted (with the user).

    Raises ``KubernetesAPIError`` when the API server fails (``KubernetesAPIUnavailable`` when a
    later attempt may succeed), the error recorded on the ``SessionHost`` row.
    """
    host = selectors.session_host_for(user)
    if user.deletion_requested_at is not None or (host is not None and _being_deleted(host)):
        if _delete_namespace_of(user):
            account_services.purge_user_if_released(user)
        return None
    if not user.is_active:
        return None
    return ensure_session_host(user=user)


@dataclass
class ResyncReport:
    """Counts for the logs and the task result."""

    checked: int = 0
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    users_purged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)


def resync_session_hosts() -> ResyncReport:
    """Drift repair for every session host: one LIST per kind, then only the writes needed.

    Active users get missing objects recreated and failed pods replaced; for session hosts being
    deleted the namespace deletion is followed up and, once it is gone, the record goes, and the user
    too when their deletion was requested.
    """
    cluster = kube.cluster()
    if cluster is None:
        logger.debug("session-host resync skipped: %s", NOT_CONFIGURED)
        return ResyncReport()
    config = SessionHostConfig.from_settings()
    hosts = list(selectors.session_hosts_for_resync())
    by_username = {host.user.username: host for host in hosts}
    deleting = [host.user.username for host in hosts if _being_deleted(host)]
    active = [host.user.username for host in hosts if host.user.is_active and not _being_deleted(host)]
    idle = [name for name in by_username if name not in active and name not in deleting]

    result = reconcile.resync(cluster, config, active=active, deleting=deleting, idle=idle)

    _record_statuses([(by_username[username], status) for username, status in result.statuses.items()])
    for username, message in result.errors.items():
        _record_error(by_username[username], message)
    report = ResyncReport(
        checked=len(hosts), created=result.created, deleted=result.deleted, errors=result.errors,
        orphans=result.orphans,
    )
    for username in result.namespaces_gone:
        host = by_username[username]
        host.delete()
        if account_services.purge_user_if_released(host.user):
            report.users_purged.append(username)
    if report.created or report.deleted or report.users_purged or report.errors:
        logger.info(
            "session-host resync: %d checked, created %s, deleted %s, users purged %s, errors %s",
            report.checked, report.created, report.deleted, report.users_purged, report.errors,
        )
    return report
