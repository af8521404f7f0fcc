"""The Kubernetes connection: building the official client from settings, and a thin typed access
to the kinds DevBench manages that speaks plain dicts (``Cluster``).

Configuration, first match wins: ``DEVBENCH_KUBECONFIG`` (or the first path of ``KUBECONFIG``),
then the in-cluster service account (``DEVBENCH_KUBE_IN_CLUSTER``, on by default inside a pod).
With neither, ``cluster()`` returns None and the session-host endpoints answer 503.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from devbench_site.errors import DomainError

from .manifests import CERT_MANAGER_GROUP, MANAGED_SELECTOR, Manifest

logger = logging.getLogger(__name__)

# Every kind DevBench manages, in creation order (the namespace first, the pod after its PVCs).
KINDS = ("Namespace", "PersistentVolumeClaim", "Pod", "Service", "Ingress", "Certificate")


class KubernetesAPIError(DomainError):
    """The API server refused a request or could not be reached; shown as a 500 with the reason."""

    http_status = 500


class KubernetesAPIUnavailable(KubernetesAPIError):
    """A failure worth retrying: the API server answered 429/5xx, or nothing within the timeout.

    Everything DevBench does on the cluster starts by reading, so repeating it later is safe even
    when the failed request was a write that the server applied before failing.
    """


# Status codes of an API server that is overloaded or failing, not of a request it refuses.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _api_message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status body, else the HTTP reason."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "no reason given")


def _no_answer(exc: Exception, timeout: float) -> str:
    """Why a request got no HTTP answer, in words (no object reprs, no traceback)."""
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    if isinstance(cause, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError subclass
        reason = cause.__cause__ if isinstance(cause.__cause__, OSError) else None
        return f"cannot connect: {(reason and reason.strerror) or str(cause).split('>: ', 1)[-1]}"
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        return f"no connection within {timeout:g} s"
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(cause, urllib3.exceptions.ProtocolError):
        return "the connection was closed before the answer was complete"
    return f"{type(cause).__name__}: {cause}"


def _describe(kind: str, namespace: str | None, name: str | None) -> str:
    target = "/".join(part for part in (namespace, name) if part)
    return f"{kind} {target}".strip()


class Cluster:
    """Get, create, delete and LIST the managed kinds; every answer is the API server's JSON as a dict.

    ``get`` returns None on 404, ``create`` returns None on 409 (someone created it first),
    ``delete`` returns False on 404. Any other failure raises ``KubernetesAPIError``.
    """

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = 10.0):
        self.api_client = api_client
        self.timeout = timeout
        core = k8s.CoreV1Api(api_client)
        net = k8s.NetworkingV1Api(api_client)
        custom = k8s.CustomObjectsApi(api_client)
        cert = (CERT_MANAGER_GROUP, "v1")
        self._read: dict[str, Callable[..., Any]] = {
            "Namespace": lambda ns, name, **kw: core.read_namespace(name, **kw),
            "PersistentVolumeClaim": lambda ns, name, **kw: core.read_namespaced_persistent_volume_claim(
                name, ns, **kw
            ),
            "Pod": lambda ns, name, **kw: core.read_namespaced_pod(name, ns, **kw),
            "Service": lambda ns, name, **kw: core.read_namespaced_service(name, ns, **kw),
            "Ingress": lambda ns, name, **kw: net.read_namespaced_ingress(name, ns, **kw),
            "Certificate": lambda ns, name, **kw: custom.get_namespaced_custom_object(
                *cert, ns, "certificates", name, **kw
            ),
        }
        self._create: dict[str, Callable[..., Any]] = {
            "Namespace": lambda ns, body, **kw: core.create_namespace(body, **kw),
            "PersistentVolumeClaim": lambda ns, body, **kw: core.create_namespaced_persistent_volume_claim(
                ns, body, **kw
            ),
            "Pod": lambda ns, body, **kw: core.create_namespaced_pod(ns, body, **kw),
            "Service": lambda ns, body, **kw: core.create_namespaced_service(ns, body, **kw),
            "Ingress": lambda ns, body, **kw: net.create_namespaced_ingress(ns, body, **kw),
            "Certificate": lambda ns, body, **kw: custom.create_namespaced_custom_object(
                *cert, ns, "certificates", body, **kw
            ),
        }
        self._delete: dict[str, Callable[..., Any]] = {
            "Namespace": lambda ns, name, **kw: core.delete_namespace(name, **kw),
            "PersistentVolumeClaim": lambda ns, name, **kw: core.delete_namespaced_persistent_volume_claim(
                name, ns, **kw
            ),
            "Pod": lambda ns, name, **kw: core.delete_namespaced_pod(name, ns, **kw),
            "Service": lambda ns, name, **kw: core.delete_namespaced_service(name, ns, **kw),
            "Ingress": lambda ns, name, **kw: net.delete_namespaced_ingress(name, ns, **kw),
            "Certificate": lambda ns, name, **kw: custom.delete_namespaced_custom_object(
                *cert, ns, "certificates", name, **kw
            ),
        }
        self._list: dict[str, Callable[..., Any]] = {
            "Namespace": core.list_namespace,
            "PersistentVolumeClaim": core.list_persistent_volume_claim_for_all_namespaces,
            "Pod": core.list_pod_for_all_namespaces,
            "Service": core.list_service_for_all_namespaces,
            "Ingress": net.list_ingress_for_all_namespaces,
            "Certificate": lambda **kw: custom.list_cluster_custom_object(*cert, "certificates", **kw),
        }

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run one request and decode its JSON; ApiException passes through for the caller to judge.

        Bounded: ``timeout`` covers connecting and reading (body included), and the client makes no
        hidden retries (see ``_without_retries``), so one call never takes much longer than it.
        """
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            data = response.data  # not preloaded: a body that stalls times out here
        except ApiException:
            raise
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            host = self.api_client.configuration.host
            raise KubernetesAPIUnavailable(
                f"Kubernetes API server {host} unreachable ({what}): {_no_answer(exc, self.timeout)}"
            ) from exc
        try:
            return json.loads(data) if data else {}
        except ValueError as exc:
            raise KubernetesAPIError(f"Kubernetes API server answered {what} with something that is not JSON") from exc

    @staticmethod
    def _failed(verb: str, what: str, exc: ApiException) -> KubernetesAPIError:
        error = KubernetesAPIUnavailable if exc.status in TRANSIENT_STATUSES else KubernetesAPIError
        return error(f"Kubernetes API error: cannot {verb} {what}: {exc.status} {_api_message(exc)}")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        what = _describe(kind, namespace, name)
        try:
            return self._call(f"get {what}", self._read[kind], namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._failed("get", what, exc) from exc

    def create(self, manifest: Manifest) -> dict[str, Any] | None:
        """Create the object; None when it exists already (409 is success for create-or-get)."""
        kind = manifest["kind"]
        namespace = manifest["metadata"].get("namespace")
        what = _describe(kind, namespace, manifest["metadata"]["name"])
        try:
            created = self._call(f"create {what}", self._create[kind], namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise self._failed("create", what, exc) from exc
        logger.info("created %s", what)
        return created

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete the object (in the background, as ``kubectl delete`` does); False when already gone."""
        what = _describe(kind, namespace, name)
        try:
            self._call(f"delete {what}", self._delete[kind], namespace, name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise self._failed("delete", what, exc) from exc
        logger.info("deleted %s", what)
        return True

    def list_managed(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` labelled ``app.kubernetes.io/managed-by=devbench``, all namespaces."""
        what = f"{kind} objects"
        try:
            body = self._call(f"list {what}", self._list[kind], label_selector=MANAGED_SELECTOR)
        except ApiException as exc:
            raise self._failed("list", what, exc) from exc
        return list(body.get("items") or [])


# --- building the client from settings ----------------------------------------------------------

def _kubeconfig_path() -> str:
    return settings.DEVBENCH_KUBECONFIG or ""


def _without_retries(configuration: k8s.Configuration) -> k8s.ApiClient:
    """The client, with urllib3's own retries off.

    By default urllib3 retries a GET three times after a read timeout, so one call to a server that
    never answers took four timeouts. Retrying is DevBench's decision (the Celery tasks, with backoff).
    """
    configuration.retries = False
    return k8s.ApiClient(configuration)


@functools.lru_cache(maxsize=4)
def _client_from_kubeconfig(path: str, context: str | None, _mtime_ns: int) -> k8s.ApiClient:
    # Keyed on the file's mtime too: an edited kubeconfig takes effect without a restart.
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=path, context=context, client_configuration=configuration, persist_config=False
    )
    return _without_retries(configuration)


@functools.lru_cache(maxsize=1)
def _client_in_cluster() -> k8s.ApiClient:
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return _without_retries(configuration)


def api_client() -> k8s.ApiClient | None:
    """The official client configured from settings, or None when Kubernetes is not configured.

    Raises ``KubernetesAPIError`` when a configuration is named but cannot be loaded.
    """
    path = _kubeconfig_path()
    if path:
        try:
            mtime_ns = os.stat(path).st_mtime_ns
            return _client_from_kubeconfig(path, settings.DEVBENCH_KUBE_CONTEXT or None, mtime_ns)
        except (OSError, ConfigException, ValueError, TypeError) as exc:
            raise KubernetesAPIError(f"cannot load kubeconfig {path}: {exc}") from exc
    if settings.DEVBENCH_KUBE_IN_CLUSTER:
        try:
            return _client_in_cluster()
        except (OSError, ConfigException) as exc:
            raise KubernetesAPIError(f"cannot load the in-cluster Kubernetes configuration: {exc}") from exc
    return None


def is_configured() -> bool:
    """Whether a kubeconfig or the in-cluster configuration is set (without loading it)."""
    return bool(_kubeconfig_path() or settings.DEVBENCH_KUBE_IN_CLUSTER)


def cluster() -> Cluster | None:
    """A ``Cluster`` on the configured API server, or None when Kubernetes is not configured."""
    client = api_client()
    if client is None:
        return None
    return Cluster(client, timeout=settings.DEVBENCH_KUBE_TIMEOUT_SECONDS)
