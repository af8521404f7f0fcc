"""Pure builders of the session host's Kubernetes objects, one function per kind (as KubeSpawner's
``objects.py``). They take the config and the username and return plain dicts; nothing here talks
to the API server (``reconcile.py`` applies them).

Names on the cluster: namespace ``<prefix><username lowercased>``; in it the Pod, Service and
Ingress ``session-host``, the PVCs ``home`` and ``workspace``, the Certificate ``session-host-tls``
writing the Secret ``session-host-tls``. Every object carries ``app.kubernetes.io/managed-by=devbench``
and ``devbench.io/user=<username>``.
"""

from __future__ import annotations

from typing import Any

from .config import SessionHostConfig

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "devbench"
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
USER_LABEL = "devbench.io/user"
NAME_LABEL = "app.kubernetes.io/name"
APP_NAME = "session-host"
# Kept current by the session host itself: how many atch (terminal) sessions it holds.
ATCH_SESSIONS_ANNOTATION = "devbench.io/atch-sessions"

POD_NAME = "session-host"
SERVICE_NAME = "session-host"
INGRESS_NAME = "session-host"
HOME_PVC = "home"
WORKSPACE_PVC = "workspace"
CERTIFICATE_NAME = "session-host-tls"
TLS_SECRET_NAME = "session-host-tls"  # noqa: S105  (a Secret's name, not a password)
PORT_NAME = "http"
SERVICE_PORT = 80
HOME_MOUNT = "/home/dev"
WORKSPACE_MOUNT = "/workspace"

CERT_MANAGER_GROUP = "cert-manager.io"


def labels(username: str) -> dict[str, str]:
    """The labels every object of the user's session host carries."""
    return {MANAGED_BY_LABEL: MANAGED_BY, USER_LABEL: username}


def _metadata(config: SessionHostConfig, username: str, name: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": config.namespace_for(username),
        "labels": {**labels(username), **extra_labels},
    }


def make_namespace(config: SessionHostConfig, username: str) -> Manifest:
    """The user's namespace; deleting it removes everything else."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": config.namespace_for(username), "labels": labels(username)},
    }


def make_pvc(config: SessionHostConfig, username: str, *, name: str, size: str) -> Manifest:
    """A ReadWriteOnce volume claim (``home`` or ``workspace``) in the configured storage class."""
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if config.storage_class:
        spec["storageClassName"] = config.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(config, username, name),
        "spec": spec,
    }


def make_pod(config: SessionHostConfig, username: str) -> Manifest:
    """The durable session-host pod with ``home`` and ``workspace`` mounted.

    It runs as a non-root user without extra capabilities. ``POD_NAME``/``POD_NAMESPACE`` let the
    session host patch its own ``devbench.io/atch-sessions`` annotation; it gets an API token only
    when a service account is configured.
    """
    uid = config.run_as_user
    container: dict[str, Any] = {
        "name": APP_NAME,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "ports": [{"name": PORT_NAME, "containerPort": config.port, "protocol": "TCP"}],
        "env": [
            {"name": "DEVBENCH_USER", "value": username},
            {"name": "HOME", "value": HOME_MOUNT},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "resources": {
            "requests": {"cpu": config.cpu_request, "memory": config.memory_request},
            "limits": {"cpu": config.cpu_limit, "memory": config.memory_limit},
        },
        "readinessProbe": {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 5},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": HOME_PVC, "mountPath": HOME_MOUNT},
            {"name": WORKSPACE_PVC, "mountPath": WORKSPACE_MOUNT},
        ],
    }
    spec: dict[str, Any] = {
        "hostname": APP_NAME,
        "restartPolicy": "Always",
        "enableServiceLinks": False,
        "automountServiceAccountToken": bool(config.service_account),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": HOME_PVC, "persistentVolumeClaim": {"claimName": HOME_PVC}},
            {"name": WORKSPACE_PVC, "persistentVolumeClaim": {"claimName": WORKSPACE_PVC}},
        ],
    }
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _metadata(config, username, POD_NAME, **{NAME_LABEL: APP_NAME}),
        "spec": spec,
    }


def make_service(config: SessionHostConfig, username: str) -> Manifest:
    """A ClusterIP service on port 80 in front of the pod's ``http`` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(config, username, SERVICE_NAME),
        "spec": {
            "type": "ClusterIP",
            "selector": {NAME_LABEL: APP_NAME, USER_LABEL: username},
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def make_ingress(config: SessionHostConfig, username: str) -> Manifest:
    """The ingress for ``<username>.<domain>``, TLS from the Certificate's secret.

    Terminal sessions are long-lived WebSockets: set the controller's timeouts through
    ``DEVBENCH_SESSIONHOST_INGRESS_ANNOTATIONS``.
    """
    host = config.host_for(username)
    spec: dict[str, Any] = {
        "tls": [{"hosts": [host], "secretName": TLS_SECRET_NAME}],
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": SERVICE_NAME, "port": {"name": PORT_NAME}}},
                        }
                    ]
                },
            }
        ],
    }
    if config.ingress_class:
        spec["ingressClassName"] = config.ingress_class
    metadata = _metadata(config, username, INGRESS_NAME)
    if config.ingress_annotations:
        metadata["annotations"] = dict(config.ingress_annotations)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def make_certificate(config: SessionHostConfig, username: str) -> Manifest:
    """The cert-manager Certificate for the ingress host, issued by the configured ClusterIssuer."""
    return {
        "apiVersion": f"{CERT_MANAGER_GROUP}/v1",
        "kind": "Certificate",
        "metadata": _metadata(config, username, CERTIFICATE_NAME),
        "spec": {
            "secretName": TLS_SECRET_NAME,
            "dnsNames": [config.host_for(username)],
            "issuerRef": {"name": config.cluster_issuer, "kind": "ClusterIssuer", "group": CERT_MANAGER_GROUP},
        },
    }


def make_all(config: SessionHostConfig, username: str) -> list[Manifest]:
    """Every object of the user's session host, in the order they are created."""
    return [
        make_namespace(config, username),
        make_pvc(config, username, name=HOME_PVC, size=config.home_size),
        make_pvc(config, username, name=WORKSPACE_PVC, size=config.workspace_size),
        make_pod(config, username),
        make_service(config, username),
        make_ingress(config, username),
        make_certificate(config, username),
    ]
