"""Applying the manifests: create-or-get for one user, and the LIST-based resync of all of them.

Create-or-get reads first and writes only what is missing, so a repeat call makes no write; a 409
on create means another caller won the race, which is success once a GET shows the winner's object
(a 409 for an object that is not there is followed by a new create). The resync makes one LIST per kind
(label ``app.kubernetes.io/managed-by=devbench``, all namespaces) and decides from those lists what
to recreate: a deleted PVC or Service comes back, a Failed pod is deleted and created anew.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from devbench_site.errors import DomainError, Unavailable

from . import manifests
from .config import SessionHostConfig
from .kube import KINDS, Cluster, KubernetesAPIUnavailable
from .status import SessionHostStatus, pod_is_dead, status_from

logger = logging.getLogger(__name__)

ObjectKey = tuple[str, str, str]  # (kind, namespace or "", name)

# Creates answered 409 while a GET finds nothing (the winner's object deleted again at once) before
# create-or-get gives up on an object for this call.
CREATE_ATTEMPTS = 3


class NamespaceTerminating(Unavailable):
    """The user's namespace is being deleted; nothing can be created in it until it is gone."""


def _key(obj: dict[str, Any]) -> ObjectKey:
    metadata = obj.get("metadata") or {}
    return obj["kind"], metadata.get("namespace") or "", metadata["name"]


def _label(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _terminating(obj: dict[str, Any] | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


@dataclass
class Outcome:
    """What one create-or-get did and what it saw."""

    status: SessionHostStatus
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _apply(
    cluster: Cluster, manifest: manifests.Manifest, current: dict[str, Any] | None, outcome: Outcome
) -> dict[str, Any] | None:
    """Create ``manifest`` unless ``current`` is there and usable; return the live object (or None)."""
    kind, namespace, name = _key(manifest)
    if kind == "Pod" and current is not None and pod_is_dead(current):
        # A Failed (e.g. evicted) pod never runs again: replace it. If it is still terminating the
        # create answers 409 and the next call or resync creates it.
        if not _terminating(current) and cluster.delete(kind, namespace, name):
            outcome.deleted.append(_label(kind, namespace, name))
        current = None
    if current is not None:
        return current
    return _create_or_get(cluster, manifest, outcome)


def _create_or_get(cluster: Cluster, manifest: manifests.Manifest, outcome: Outcome) -> dict[str, Any]:
    """Create the object; on 409 (someone else created it first) read and return theirs.

    A 409 followed by a 404 means the object went again (or the 409 was wrong): create again, a
    bounded number of times, so that the call never ends with an object silently missing.
    """
    kind, namespace, name = _key(manifest)
    for _attempt in range(CREATE_ATTEMPTS):
        created = cluster.create(manifest)
        if created is not None:
            outcome.created.append(_label(kind, namespace, name))
            return created
        existing = cluster.get(kind, namespace, name)  # lost a race: read what the winner created
        if existing is not None:
            return existing
        logger.warning("create %s answered 409 but it does not exist; creating it again", _label(kind, namespace, name))
    raise KubernetesAPIUnavailable(
        f"Kubernetes API error: cannot create {_label(kind, namespace, name)}: answered 409 AlreadyExists "
        f"{CREATE_ATTEMPTS} times while a GET finds nothing"
    )


def ensure(cluster: Cluster, config: SessionHostConfig, username: str) -> Outcome:
    """Create-or-get every object of the user's session host; return the resulting status.

    Requests: with everything in place, one GET per object and no write; on first use, one GET
    (the namespace: nothing can exist in a namespace that does not) and one POST per object; each
    409 adds a GET of the object someone else created.
    """
    namespace_manifest, *namespaced = manifests.make_all(config, username)
    namespace = config.namespace_for(username)
    outcome = Outcome(status=status_from(namespace=namespace, pod=None, certificate=None))
    live_namespace = cluster.get("Namespace", None, namespace)
    if _terminating(live_namespace):
        raise NamespaceTerminating(f"namespace {namespace} is being deleted; try again once it is gone")
    if live_namespace is None and _terminating(_apply(cluster, namespace_manifest, None, outcome)):
        # Our GET said 404, the create 409: it is back, and already going again.
        raise NamespaceTerminating(f"namespace {namespace} is being deleted; try again once it is gone")
    live: dict[str, dict[str, Any] | None] = {}
    for manifest in namespaced:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        current = cluster.get(kind, namespace, name) if live_namespace is not None else None
        live[kind] = _apply(cluster, manifest, current, outcome)
    outcome.status = status_from(namespace=namespace, pod=live.get("Pod"), certificate=live.get("Certificate"))
    return outcome


def read_status(cluster: Cluster, config: SessionHostConfig, username: str) -> SessionHostStatus:
    """The live status: GET the pod and the certificate, nothing else, nothing created."""
    namespace = config.namespace_for(username)
    pod = cluster.get("Pod", namespace, manifests.POD_NAME)
    certificate = cluster.get("Certificate", namespace, manifests.CERTIFICATE_NAME)
    return status_from(namespace=namespace, pod=pod, certificate=certificate)


def delete_namespace(cluster: Cluster, config: SessionHostConfig, username: str) -> bool:
    """Ask for the user's namespace to go; True once it is gone (it may stay a while, terminating)."""
    namespace = config.namespace_for(username)
    cluster.delete("Namespace", None, namespace)
    return cluster.get("Namespace", None, namespace) is None


@dataclass
class ResyncResult:
    """What a resync saw and repaired, per user."""

    statuses: dict[str, SessionHostStatus] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    namespaces_gone: list[str] = field(default_factory=list)  # usernames whose deletion finished
    orphans: list[str] = field(default_factory=list)  # managed namespaces no known user owns


def resync(
    cluster: Cluster,
    config: SessionHostConfig,
    *,
    active: Sequence[str],
    deleting: Sequence[str] = (),
    idle: Sequence[str] = (),
) -> ResyncResult:
    """Repair drift for the ``active`` users and follow up the namespace deletion of ``deleting`` ones.

    ``idle`` users (deactivated) are left as they are. Managed namespaces of nobody are reported.
    One LIST per kind, filtered by the managed-by label across all namespaces; then only writes.
    """
    listed: dict[ObjectKey, dict[str, Any]] = {}
    for kind in KINDS:
        for obj in cluster.list_managed(kind):
            obj.setdefault("kind", kind)  # list items carry no kind
            listed[_key(obj)] = obj
    result = ResyncResult()

    for username in active:
        outcome = Outcome(status=status_from(namespace=config.namespace_for(username), pod=None, certificate=None))
        live: dict[str, dict[str, Any] | None] = {}
        try:
            for manifest in manifests.make_all(config, username):
                current = listed.get(_key(manifest))
                if manifest["kind"] == "Namespace" and _terminating(current):
                    raise NamespaceTerminating(f"namespace {_key(manifest)[2]} is being deleted")
                live[manifest["kind"]] = _apply(cluster, manifest, current, outcome)
        except DomainError as exc:
            logger.warning("session host of %s not repaired: %s", username, exc.message)
            result.errors[username] = exc.message
            continue
        finally:
            result.created += outcome.created
            result.deleted += outcome.deleted
        result.statuses[username] = status_from(
            namespace=config.namespace_for(username), pod=live.get("Pod"), certificate=live.get("Certificate")
        )

    for username in deleting:
        namespace = config.namespace_for(username)
        current = listed.get(("Namespace", "", namespace))
        if current is None:
            result.namespaces_gone.append(username)
        elif not _terminating(current):
            try:
                cluster.delete("Namespace", None, namespace)
            except DomainError as exc:
                result.errors[username] = exc.message
                continue
            result.deleted.append(_label("Namespace", "", namespace))

    known = {config.namespace_for(username) for username in [*active, *deleting, *idle]}
    result.orphans = sorted(
        name for kind, _ns, name in listed if kind == "Namespace" and name not in known
    )
    if result.orphans:
        logger.warning("managed namespaces without a DevBench session host: %s", ", ".join(result.orphans))
    return result
