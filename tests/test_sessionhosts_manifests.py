"""Session-host manifests, deploy/ and the status rules: pure code, checked against the real
Kubernetes 1.37 schemas (kubernetes-validate, strict: unknown fields fail). cert-manager's
Certificate and ClusterIssuer are CRDs that kubernetes-validate does not ship; they are checked
against the JSON schemas below, written from cert-manager's v1 API reference."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sessionhosts import manifests
from sessionhosts.config import SessionHostConfig
from sessionhosts.kube import KINDS
from sessionhosts.status import SessionHostStatus, status_from

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S_VERSION = "1.37"

_DNS_NAME = {"type": "string", "pattern": r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
CERTIFICATE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Certificate"},
        "metadata": {**_METADATA, "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "additionalProperties": False,
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "dnsNames": {"type": "array", "minItems": 1, "items": _DNS_NAME},
                "issuerRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                        "group": {"const": "cert-manager.io"},
                    },
                },
            },
        },
    },
}
CLUSTER_ISSUER_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "ClusterIssuer"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "acme": {
                    "type": "object",
                    "required": ["server", "privateKeySecretRef", "solvers"],
                    "additionalProperties": False,
                    "properties": {
                        "server": {"type": "string", "pattern": "^https://"},
                        "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
                        "privateKeySecretRef": {
                            "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}},
                        },
                        "solvers": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "http01": {
                                        "type": "object",
                                        "properties": {
                                            "ingress": {
                                                "type": "object",
                                                "properties": {
                                                    "ingressClassName": {"type": "string"},
                                                    "class": {"type": "string"},
                                                },
                                            },
                                        },
                                    },
                                    "dns01": {"type": "object"},
                                    "selector": {"type": "object"},
                                },
                            },
                        },
                    },
                },
                "ca": {"type": "object", "required": ["secretName"]},
                "selfSigned": {"type": "object"},
            },
            "additionalProperties": False,
        },
    },
}
CRD_SCHEMAS = {"Certificate": CERTIFICATE_SCHEMA, "ClusterIssuer": CLUSTER_ISSUER_SCHEMA}

EVERY_OPTION = SessionHostConfig(
    image="registry.example.com/session-host:1.4.2",
    image_pull_policy="Always",
    port=7681,
    domain="sessions.example.org",
    cluster_issuer="internal-ca",
    ingress_class="nginx",
    ingress_annotations=(("nginx.ingress.kubernetes.io/proxy-read-timeout", "3600"),),
    storage_class="fast-ssd",
    home_size="5Gi",
    workspace_size="50Gi",
    namespace_prefix="sh-",
    cpu_request="100m",
    memory_request="256Mi",
    cpu_limit="4",
    memory_limit="8Gi",
    run_as_user=4242,
    service_account="session-host",
)


def validate(manifest: dict) -> None:
    """Against the Kubernetes schema, or for cert-manager kinds against ours."""
    if manifest["kind"] in CRD_SCHEMAS:
        jsonschema.validate(manifest, CRD_SCHEMAS[manifest["kind"]])
    else:
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


# --- the manifests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [SessionHostConfig(), EVERY_OPTION], ids=["defaults", "every-option"])
@pytest.mark.parametrize("username", ["alice", "Bob", "x" * 32])
def test_every_manifest_is_valid(config, username):
    built = manifests.make_all(config, username)
    assert [m["kind"] for m in built] == [
        "Namespace", "PersistentVolumeClaim", "PersistentVolumeClaim", "Pod", "Service", "Ingress", "Certificate",
    ]
    for manifest in built:
        validate(manifest)


def test_invalid_manifests_are_caught_by_the_validation():
    """The schemas really bite: a misspelt field and a missing required one fail."""
    pod = manifests.make_pod(SessionHostConfig(), "alice")
    pod["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(pod)
    certificate = manifests.make_certificate(SessionHostConfig(), "alice")
    del certificate["spec"]["issuerRef"]
    with pytest.raises(jsonschema.ValidationError):
        validate(certificate)


def test_every_object_carries_the_managed_by_and_user_labels():
    for manifest in manifests.make_all(SessionHostConfig(), "Alice"):
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "devbench"
        assert labels["devbench.io/user"] == "Alice"


def test_names_namespace_and_host_follow_the_username():
    config = SessionHostConfig(domain="example.org")
    namespace, home, workspace, pod, service, ingress, certificate = manifests.make_all(config, "Alice")
    assert namespace["metadata"]["name"] == "devbench-alice"
    assert {m["metadata"]["namespace"] for m in (home, workspace, pod, service, ingress, certificate)} == {
        "devbench-alice"
    }
    assert (home["metadata"]["name"], workspace["metadata"]["name"]) == ("home", "workspace")
    assert pod["metadata"]["name"] == service["metadata"]["name"] == ingress["metadata"]["name"] == "session-host"
    assert certificate["metadata"]["name"] == "session-host-tls"
    assert ingress["spec"]["rules"][0]["host"] == "alice.example.org"
    assert ingress["spec"]["tls"] == [{"hosts": ["alice.example.org"], "secretName": "session-host-tls"}]
    assert certificate["spec"]["dnsNames"] == ["alice.example.org"]
    assert certificate["spec"]["secretName"] == "session-host-tls"
    assert certificate["spec"]["issuerRef"] == {
        "name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io",
    }
    # The service selects exactly this user's pod.
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_settings_reach_the_manifests():
    _ns, home, workspace, pod, _svc, ingress, _cert = manifests.make_all(EVERY_OPTION, "alice")
    assert home["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}, "storageClassName": "fast-ssd",
    }
    assert workspace["spec"]["resources"]["requests"]["storage"] == "50Gi"
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/session-host:1.4.2"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "4", "memory": "8Gi"},
    }
    assert container["ports"][0]["containerPort"] == 7681
    assert pod["spec"]["securityContext"]["runAsUser"] == 4242
    assert pod["spec"]["serviceAccountName"] == "session-host"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert pod["metadata"]["namespace"] == "sh-alice"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}


def test_default_pod_gets_no_api_token_and_no_storage_class():
    _ns, home, _ws, pod, _svc, ingress, _cert = manifests.make_all(SessionHostConfig(), "alice")
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod["spec"]
    assert "storageClassName" not in home["spec"]
    assert "ingressClassName" not in ingress["spec"]
    assert "annotations" not in ingress["metadata"]


@pytest.mark.parametrize("prefix", ["", "Dev-", "devbench_", "a" * 32])
def test_namespace_prefix_must_keep_namespaces_valid(prefix):
    with pytest.raises(ValueError, match="NAMESPACE_PREFIX"):
        SessionHostConfig(namespace_prefix=prefix)


def test_config_comes_from_settings(settings):
    settings.DEVBENCH_SESSIONHOST_DOMAIN = "pods.example.net"
    settings.DEVBENCH_SESSIONHOST_HOME_SIZE = "3Gi"
    settings.DEVBENCH_SESSIONHOST_INGRESS_ANNOTATIONS = {"a.example/b": "c"}
    config = SessionHostConfig.from_settings()
    assert config.host_for("Alice") == "alice.pods.example.net"
    assert config.url_for("Alice") == "https://alice.pods.example.net/"
    assert config.home_size == "3Gi"
    assert config.ingress_annotations == (("a.example/b", "c"),)


# --- deploy/ ---------------------------------------------------------------------------------------

def deploy_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}", document))
    return documents


@pytest.mark.parametrize(("where", "document"), deploy_documents(), ids=[w for w, _ in deploy_documents()])
def test_deploy_manifests_are_valid(where, document):
    validate(document)


def test_deploy_has_rbac_issuer_and_devbench_itself():
    kinds = {(document["kind"], document["metadata"]["name"]) for _where, document in deploy_documents()}
    assert {
        ("ServiceAccount", "devbench"), ("ClusterRole", "devbench-sessionhosts"),
        ("ClusterRoleBinding", "devbench-sessionhosts"), ("ClusterIssuer", "letsencrypt"),
        ("Deployment", "devbench-web"), ("Deployment", "devbench-worker"), ("Deployment", "devbench-beat"),
        ("Service", "devbench-web"), ("Ingress", "devbench"),
    } <= kinds


def test_cluster_role_grants_exactly_what_devbench_uses():
    """get/list/create/delete on every managed kind; the issuer named in settings exists."""
    role = next(d for _w, d in deploy_documents() if d["kind"] == "ClusterRole")
    granted = {
        (group, resource, verb)
        for rule in role["rules"] for group in rule["apiGroups"]
        for resource in rule["resources"] for verb in rule["verbs"]
    }
    groups = {
        "Namespace": ("", "namespaces"), "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
        "Pod": ("", "pods"), "Service": ("", "services"), "Ingress": ("networking.k8s.io", "ingresses"),
        "Certificate": ("cert-manager.io", "certificates"),
    }
    needed = {(*groups[kind], verb) for kind in KINDS for verb in ("get", "list", "create", "delete")}
    assert granted == needed
    binding = next(d for _w, d in deploy_documents() if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "devbench", "namespace": "devbench"}]
    for _w, document in deploy_documents():
        if document["kind"] == "Deployment":
            assert document["spec"]["template"]["spec"]["serviceAccountName"] == "devbench"


# --- the status rules ------------------------------------------------------------------------------

def pod(phase: str = "Pending", ready: str | None = None, annotations: dict | None = None) -> dict:
    status: dict = {"phase": phase}
    if ready is not None:
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]
    return {
        "metadata": {"creationTimestamp": "2026-11-21T23:00:00Z", "annotations": annotations or {}},
        "status": status,
    }


def certificate(status: str | None = None, reason: str = "", message: str = "") -> dict:
    if status is None:
        return {"metadata": {"name": "session-host-tls"}}
    condition = {"type": "Ready", "status": status, "reason": reason, "message": message}
    return {"metadata": {"name": "session-host-tls"}, "status": {"conditions": [condition]}}


@pytest.mark.parametrize(
    ("live_pod", "ready"),
    [
        (None, False),
        (pod("Pending"), False),
        (pod("Running", ready="False"), False),
        (pod("Running"), False),  # no Ready condition yet
        (pod("Running", ready="True"), True),
        (pod("Failed", ready="True"), False),
    ],
)
def test_ready_means_running_and_ready_condition_true(live_pod, ready):
    assert status_from(namespace="ns", pod=live_pod, certificate=None).ready is ready


@pytest.mark.parametrize(
    ("live_certificate", "ready", "reason"),
    [
        (None, False, "certificate not found"),
        (certificate(), False, "certificate not issued yet"),
        (certificate("False", "DoesNotExist", "Issuing certificate as Secret does not exist"), False,
         "DoesNotExist: Issuing certificate as Secret does not exist"),
        (certificate("Unknown", "Pending"), False, "Pending"),
        (certificate("True", "Ready", "Certificate is up to date and has not expired"), True, ""),
    ],
)
def test_certificate_readiness_and_pending_reason(live_certificate, ready, reason):
    status = status_from(namespace="ns", pod=None, certificate=live_certificate)
    assert (status.cert_ready, status.cert_pending_reason) == (ready, reason)


@pytest.mark.parametrize(("value", "count"), [("3", 3), (" 12 ", 12), ("0", 0), ("-2", 0), ("many", 0), (None, 0)])
def test_atch_session_count_comes_from_the_annotation(value, count):
    annotations = {} if value is None else {"devbench.io/atch-sessions": value}
    assert status_from(namespace="ns", pod=pod(annotations=annotations), certificate=None).atch_session_count == count


def test_body_has_the_original_keys_in_order_and_omits_empty_ones():
    full = SessionHostStatus(
        ready=True, pod_name="session-host", namespace="devbench-alice", cert_ready=False,
        cert_pending_reason="Pending", atch_session_count=2,
        created_at=datetime(2026, 11, 21, 23, 0, 0, 123456, tzinfo=UTC), pod_phase="Running",
    )
    assert list(full.as_json().items()) == [
        ("ready", True), ("podName", "session-host"), ("namespace", "devbench-alice"), ("certReady", False),
        ("certPendingReason", "Pending"), ("atchSessionCount", 2), ("createdAt", "2026-11-21T23:00:00Z"),
    ]
    bare = SessionHostStatus(ready=False, pod_name="session-host", namespace="devbench-alice", cert_ready=True)
    assert bare.as_json() == {
        "ready": False, "podName": "session-host", "namespace": "devbench-alice", "certReady": True,
    }
