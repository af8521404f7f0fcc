"""The dev-pod-api session-host endpoints against the Kubernetes emulator over real HTTP:
create-or-get, live status, auth, errors, and what DevBench asked of the API server."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client

from accounts import services as account_services
from sessionhosts.models import SessionHost
from tests.k8s_emulator import session_host_objects

pytestmark = pytest.mark.django_db

ENSURE = "/api/v1/pods/session-host"
NS = "devbench-alice"
EVERY_OBJECT = session_host_objects(NS)


def status_path(username: str = "alice") -> str:
    return f"/api/v1/pods/session-host/{username}/status"


@pytest.fixture
def bearer(user) -> dict:
    _key, raw = account_services.create_api_key(user=user, name="terminal")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def objects_of(kube) -> dict:
    return {plural: kube.names(plural) for plural in EVERY_OBJECT}


def pod_created_at(kube) -> str:
    return kube.get("pods", NS, "session-host")["metadata"]["creationTimestamp"]


# --- create-or-get ------------------------------------------------------------------------------

def test_first_post_creates_every_object_and_returns_the_status(kube, bearer):
    response = Client().post(ENSURE, **bearer)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "ready": False,
        "podName": "session-host",
        "namespace": NS,
        "certReady": False,
        "certPendingReason": "certificate not issued yet",
        "createdAt": pod_created_at(kube),
    }
    assert objects_of(kube) == EVERY_OBJECT
    namespace = kube.get("namespaces", None, NS)
    assert namespace["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "devbench", "devbench.io/user": "alice"}
    ingress = kube.get("ingresses", NS, "session-host")
    assert ingress["spec"]["rules"][0]["host"] == "alice.devbench.example.com"
    certificate = kube.get("certificates", NS, "session-host-tls")
    assert certificate["spec"]["dnsNames"] == ["alice.devbench.example.com"]
    # Nothing can exist in a namespace that does not: one GET, then one POST per object.
    assert [str(call) for call in kube.calls] == [
        f"GET /api/v1/namespaces/{NS}",
        "POST /api/v1/namespaces",
        f"POST /api/v1/namespaces/{NS}/persistentvolumeclaims",
        f"POST /api/v1/namespaces/{NS}/persistentvolumeclaims",
        f"POST /api/v1/namespaces/{NS}/pods",
        f"POST /api/v1/namespaces/{NS}/services",
        f"POST /apis/networking.k8s.io/v1/namespaces/{NS}/ingresses",
        f"POST /apis/cert-manager.io/v1/namespaces/{NS}/certificates",
    ]


def test_second_post_writes_nothing(kube, bearer):
    client = Client()
    first = client.post(ENSURE, **bearer).json()
    kube.clear_calls()
    second = client.post(ENSURE, **bearer)
    assert second.status_code == 200
    assert second.json() == first
    assert kube.writes() == []
    assert len(kube.calls) == 7  # one GET per object
    assert objects_of(kube) == EVERY_OBJECT


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_posts_end_with_one_set_of_objects(kube, user):
    _key, raw = account_services.create_api_key(user=user)
    results: list[int] = []
    barrier = threading.Barrier(10)

    def post() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(Client().post(ENSURE, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [200] * 10
    assert objects_of(kube) == EVERY_OBJECT
    creates = [call for call in kube.writes() if call.method == "POST"]
    assert len(creates) >= 7  # the losers' creates answered 409, which is success
    assert [call.method for call in kube.writes()] == ["POST"] * len(creates)  # nothing deleted or changed
    assert SessionHost.objects.filter(user=user).count() == 1


def test_a_missing_object_is_recreated_by_the_next_post(kube, bearer):
    client = Client()
    client.post(ENSURE, **bearer)
    kube.remove("services", NS, "session-host")
    kube.clear_calls()
    assert client.post(ENSURE, **bearer).status_code == 200
    assert [str(call) for call in kube.writes()] == [f"POST /api/v1/namespaces/{NS}/services"]
    assert objects_of(kube) == EVERY_OBJECT


def test_post_replaces_a_failed_pod(kube, bearer):
    client = Client()
    client.post(ENSURE, **bearer)
    kube.set_pod(NS, phase="Failed")
    kube.clear_calls()
    body = client.post(ENSURE, **bearer).json()
    assert [str(call) for call in kube.writes()] == [
        f"DELETE /api/v1/namespaces/{NS}/pods/session-host",
        f"POST /api/v1/namespaces/{NS}/pods",
    ]
    assert kube.get("pods", NS, "session-host")["status"]["phase"] == "Pending"
    assert body["ready"] is False


# --- status -----------------------------------------------------------------------------------

def test_status_with_the_pod_pending(kube, bearer):
    Client().post(ENSURE, **bearer)
    kube.clear_calls()
    response = Client().get(status_path(), **bearer)
    assert response.status_code == 200
    assert response.json() == {
        "ready": False, "podName": "session-host", "namespace": NS, "certReady": False,
        "certPendingReason": "certificate not issued yet", "createdAt": pod_created_at(kube),
    }
    # Live: the pod and the certificate, two GETs and nothing else.
    assert [str(call) for call in kube.calls] == [
        f"GET /api/v1/namespaces/{NS}/pods/session-host",
        f"GET /apis/cert-manager.io/v1/namespaces/{NS}/certificates/session-host-tls",
    ]


def test_status_ready_with_certificate_pending_and_its_reason(kube, bearer):
    Client().post(ENSURE, **bearer)
    kube.set_pod(NS, phase="Running", ready=True)
    kube.set_certificate(
        NS, ready=False, reason="DoesNotExist", message="Issuing certificate as Secret does not exist"
    )
    assert Client().get(status_path(), **bearer).json() == {
        "ready": True, "podName": "session-host", "namespace": NS, "certReady": False,
        "certPendingReason": "DoesNotExist: Issuing certificate as Secret does not exist",
        "createdAt": pod_created_at(kube),
    }


def test_status_all_ready_with_atch_sessions(kube, bearer):
    Client().post(ENSURE, **bearer)
    kube.set_pod(NS, phase="Running", ready=True, annotations={"devbench.io/atch-sessions": "3"})
    kube.set_certificate(NS, ready=True, reason="Ready", message="Certificate is up to date and has not expired")
    assert Client().get(status_path(), **bearer).json() == {
        "ready": True, "podName": "session-host", "namespace": NS, "certReady": True,
        "atchSessionCount": 3, "createdAt": pod_created_at(kube),
    }
    host = SessionHost.objects.get(user__username="alice")
    assert (host.state, host.ready, host.cert_ready, host.atch_session_count) == ("ready", True, True, 3)
    assert host.last_checked_at is not None and host.last_error == ""


def test_status_of_a_running_pod_not_yet_ready(kube, bearer):
    Client().post(ENSURE, **bearer)
    kube.set_pod(NS, phase="Running", ready=False)
    assert Client().get(status_path(), **bearer).json()["ready"] is False


def test_status_before_any_post_creates_nothing(kube, bearer):
    response = Client().get(status_path(), **bearer)
    assert response.status_code == 200
    assert response.json() == {
        "ready": False, "podName": "session-host", "namespace": NS, "certReady": False,
        "certPendingReason": "certificate not found",
    }
    assert kube.writes() == []
    assert objects_of(kube) == {plural: set() for plural in EVERY_OBJECT}
    assert SessionHost.objects.get(user__username="alice").state == "missing"


def test_status_path_accepts_the_username_in_any_case(kube, bearer):
    assert Client().get(status_path("ALICE"), **bearer).status_code == 200


# --- auth and errors --------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "path"), [("post", ENSURE), ("get", status_path())])
def test_anonymous_is_401(kube, method, path):
    response = getattr(Client(), method)(path)
    assert response.status_code == 401
    assert response.json() == {"error": "not authenticated"}
    assert kube.calls == []


def test_another_users_status_is_403_subject_mismatch(kube, bearer, make_user):
    make_user("bob")
    response = Client().get(status_path("bob"), **bearer)
    assert response.status_code == 403
    assert response.json() == {"error": "subject mismatch"}
    assert kube.calls == []


@pytest.mark.parametrize(("method", "path"), [("post", ENSURE), ("get", status_path())])
def test_not_configured_is_503(no_kube, bearer, method, path):
    response = getattr(Client(), method)(path, **bearer)
    assert response.status_code == 503
    assert response.json() == {"error": "session-host manager not configured"}


def test_session_cookie_works_with_the_csrf_token(kube, user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused = client.post(ENSURE)
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("CSRF Failed")
    assert kube.calls == []
    page = client.get("/dashboard")
    token = page.cookies["csrftoken"].value
    response = client.post(ENSURE, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json()["namespace"] == NS
    assert client.get(status_path()).status_code == 200


def test_api_server_refusal_is_500_with_its_reason(kube, bearer):
    kube.refuse("POST", f"/api/v1/namespaces/{NS}/pods", status=403,
                message='pods is forbidden: User "system:serviceaccount:devbench:devbench" cannot create pods')
    response = Client().post(ENSURE, **bearer)
    assert response.status_code == 500
    assert response.json() == {
        "error": "Kubernetes API error: cannot create Pod devbench-alice/session-host: 403 pods is forbidden: "
                 'User "system:serviceaccount:devbench:devbench" cannot create pods'
    }
    host = SessionHost.objects.get(user__username="alice")
    assert host.last_error.startswith("Kubernetes API error: cannot create Pod")
    assert host.last_error_at is not None


def test_unreachable_api_server_is_500_without_a_traceback(kube, bearer, settings, tmp_path):
    kubeconfig = tmp_path / "unreachable"
    kubeconfig.write_text(kube.kubeconfig().replace(kube.url, "http://127.0.0.1:9"))
    settings.DEVBENCH_KUBECONFIG = str(kubeconfig)
    settings.DEVBENCH_KUBE_TIMEOUT_SECONDS = 2
    response = Client().get(status_path(), **bearer)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error.startswith(
        "Kubernetes API server http://127.0.0.1:9 unreachable (get Pod devbench-alice/session-host)"
    )
    assert "Traceback" not in error


def test_unreadable_kubeconfig_is_500_naming_it(kube, bearer, settings, tmp_path):
    settings.DEVBENCH_KUBECONFIG = str(tmp_path / "missing")
    response = Client().post(ENSURE, **bearer)
    assert response.status_code == 500
    assert response.json()["error"].startswith(f"cannot load kubeconfig {tmp_path / 'missing'}")


def test_wrong_method_is_405_in_the_error_shape(kube, bearer):
    response = Client().get(ENSURE, **bearer)
    assert response.status_code == 405
    assert response.json() == {"error": 'Method "GET" not allowed.'}
