"""The Kubernetes API server answering 409, 500 or not at all, with faults injected into the real
HTTP emulator (``kube.faults``) or a loopback server that accepts and never answers: the endpoints
answer 500 naming the object and the server's reason, the Celery tasks retry with backoff until it
recovers, every call is bounded by ``DEVBENCH_KUBE_TIMEOUT_SECONDS``, and nothing is duplicated."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from celery.signals import task_retry
from django.test import Client

from accounts import services as account_services
from accounts.models import User
from sessionhosts import services, tasks
from sessionhosts.kube import KubernetesAPIError, KubernetesAPIUnavailable
from sessionhosts.models import SessionHost
from tests.k8s_emulator import session_host_objects

pytestmark = pytest.mark.django_db

ENSURE = "/api/v1/pods/session-host"
STATUS = "/api/v1/pods/session-host/alice/status"
NS = "devbench-alice"
EVERY_OBJECT = session_host_objects(NS)
CREATE_PATHS = {  # the POST path of each kind, as regular expressions for kube.faults
    "namespaces": r"^/api/v1/namespaces$",
    "persistentvolumeclaims": r"/persistentvolumeclaims$",
    "pods": r"/pods$",
    "services": r"/services$",
    "ingresses": r"/ingresses$",
    "certificates": r"/certificates$",
}
ETCD_DOWN = "etcdserver: request timed out"
TIMEOUT = 1.0  # DEVBENCH_KUBE_TIMEOUT_SECONDS in the no-answer tests
# What a bound on elapsed time allows beyond the timeout: a behaviour bound, with room for a machine
# busy with other test workers; a request without the bound would hang until the test's own timeout.
MARGIN = 5.0


@pytest.fixture
def bearer(user) -> dict:
    _key, raw = account_services.create_api_key(user=user)
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture
def retries() -> Iterator[list[float]]:
    """The countdown of every task retry, in order (Celery's ``task_retry`` signal).

    ``task.apply()`` then runs a task as a worker does: a retry runs it again (at once; the
    countdown is only recorded) instead of raising ``Retry`` into the test, as the project's
    ``CELERY_TASK_EAGER_PROPAGATES`` would. A final failure still raises from ``.get()``.
    """
    countdowns: list[float] = []

    def record(sender=None, reason=None, **kwargs) -> None:
        countdowns.append(reason.when)

    conf = tasks.reconcile_session_host.app.conf
    propagates = conf.task_eager_propagates
    conf.task_eager_propagates = False
    task_retry.connect(record, weak=False)
    yield countdowns
    task_retry.disconnect(record)
    conf.task_eager_propagates = propagates


def objects_of(kube) -> dict:
    return {plural: kube.names(plural) for plural in EVERY_OBJECT}


def count(kube, method: str, path_end: str) -> int:
    return sum(1 for call in kube.calls if call.method == method and call.path.endswith(path_end))


def first_post_body(kube) -> dict:
    return {
        "ready": False, "podName": "session-host", "namespace": NS, "certReady": False,
        "certPendingReason": "certificate not issued yet",
        "createdAt": kube.get("pods", NS, "session-host")["metadata"]["creationTimestamp"],
    }


def assert_backoff(countdowns: list[float], settings) -> None:
    """Full-jitter exponential backoff: the n-th wait is at most min(cap, base * 2**n)."""
    base, cap = settings.DEVBENCH_KUBE_RETRY_BACKOFF_SECONDS, settings.DEVBENCH_KUBE_RETRY_BACKOFF_MAX_SECONDS
    for attempt, countdown in enumerate(countdowns):
        assert 0 <= countdown <= min(cap, base * 2**attempt)


def assert_every_namespace_is_tracked(kube) -> None:
    """Never a managed namespace that no SessionHost row records."""
    tracked = set(SessionHost.objects.values_list("namespace", flat=True))
    assert {name for _ns, name in kube.names("namespaces")} <= tracked


# --- 409 on create ------------------------------------------------------------------------------

def test_every_create_losing_a_race_is_success_with_one_object_of_each_kind(kube, bearer):
    # "Someone else" creates each object between our GET and our POST: the server applies the
    # POST and answers 409 AlreadyExists, as it does to the loser of a race.
    for plural, path in CREATE_PATHS.items():
        kube.faults.fail_next("POST", path, status=409, commit=True, count=len(EVERY_OBJECT[plural]))

    response = Client().post(ENSURE, **bearer)

    assert response.status_code == 200
    assert response.json() == first_post_body(kube)
    assert objects_of(kube) == EVERY_OBJECT
    assert kube.faults.pending() == 0
    assert [call.method for call in kube.writes()] == ["POST"] * 7  # one create each, no retry, no delete
    assert len(kube.calls) == 1 + 7 + 7  # the namespace GET; each 409 followed by a GET of the winner's


@pytest.mark.parametrize("plural", ["namespaces", "pods", "services"])
def test_a_409_for_an_object_that_is_not_there_is_followed_by_a_new_create(kube, bearer, plural):
    kube.faults.fail_next("POST", CREATE_PATHS[plural], status=409)  # AlreadyExists, yet nothing exists

    response = Client().post(ENSURE, **bearer)

    assert response.status_code == 200
    assert response.json() == first_post_body(kube)
    assert objects_of(kube) == EVERY_OBJECT
    assert len(kube.writes()) == 8  # 7 creates, one of them twice (409, GET 404, create again)


def test_a_409_that_never_ends_is_500_naming_the_object(kube, bearer):
    kube.faults.fail_next("POST", CREATE_PATHS["pods"], status=409, count=5)
    response = Client().post(ENSURE, **bearer)
    assert response.status_code == 500
    assert response.json() == {
        "error": "Kubernetes API error: cannot create Pod devbench-alice/session-host: "
                 "answered 409 AlreadyExists 3 times while a GET finds nothing"
    }
    assert count(kube, "POST", "/pods") == 3  # bounded


# --- 500 from the API server --------------------------------------------------------------------

def test_post_is_500_with_the_reason_while_the_server_fails_and_200_once_it_recovers(kube, bearer):
    kube.faults.fail_next("POST", CREATE_PATHS["pods"], status=500, message=ETCD_DOWN, count=2)
    client = Client()
    failing = {"error": f"Kubernetes API error: cannot create Pod devbench-alice/session-host: 500 {ETCD_DOWN}"}

    for _ in range(2):
        response = client.post(ENSURE, **bearer)
        assert (response.status_code, response.json()) == (500, failing)
        host = SessionHost.objects.get(user__username="alice")
        assert (host.last_error, host.last_error_at is not None) == (failing["error"], True)

    response = client.post(ENSURE, **bearer)
    assert (response.status_code, response.json()) == (200, first_post_body(kube))
    assert objects_of(kube) == EVERY_OBJECT
    assert count(kube, "POST", "/pods") == 3
    assert count(kube, "POST", "/services") == 1  # created once, read by the later calls
    assert all(call.method == "POST" for call in kube.writes())
    host = SessionHost.objects.get(user__username="alice")
    assert (host.state, host.last_error, host.last_error_at) == ("pending", "", None)


def test_status_is_500_with_the_reason_while_the_server_fails(kube, bearer):
    Client().post(ENSURE, **bearer)
    unable = "the server is currently unable to handle the request"
    kube.faults.fail_next("GET", r"/pods/session-host$", status=503, message=unable)
    response = Client().get(STATUS, **bearer)
    assert response.status_code == 500
    assert response.json() == {"error": f"Kubernetes API error: cannot get Pod {NS}/session-host: 503 {unable}"}
    assert SessionHost.objects.get(user__username="alice").last_error == response.json()["error"]
    assert Client().get(STATUS, **bearer).status_code == 200
    assert SessionHost.objects.get(user__username="alice").last_error == ""


def test_reconcile_task_retries_with_backoff_until_the_server_recovers(kube, user, retries, settings):
    kube.faults.fail_next("POST", CREATE_PATHS["pods"], status=500, message=ETCD_DOWN, count=3)

    tasks.reconcile_session_host.apply(args=[user.pk]).get()

    assert len(retries) == 3
    assert_backoff(retries, settings)
    assert objects_of(kube) == EVERY_OBJECT
    assert count(kube, "GET", f"/namespaces/{NS}") == 4  # four attempts, each starting with a read
    assert count(kube, "POST", "/pods") == 4
    assert count(kube, "POST", "/namespaces") == 1 and count(kube, "POST", "/persistentvolumeclaims") == 2
    host = SessionHost.objects.get(user=user)
    assert (host.state, host.last_error) == ("pending", "")


def test_reconcile_task_gives_up_after_its_retries_with_the_reason(kube, user, retries, settings):
    settings.DEVBENCH_KUBE_RETRY_MAX = 2
    kube.faults.fail_next("POST", CREATE_PATHS["pods"], status=500, message=ETCD_DOWN, count=10)

    with pytest.raises(KubernetesAPIUnavailable, match=f"cannot create Pod {NS}/session-host: 500 {ETCD_DOWN}"):
        tasks.reconcile_session_host.apply(args=[user.pk]).get()

    assert len(retries) == 2
    assert count(kube, "POST", "/pods") == 3
    assert kube.names("pods") == set()  # never made, and what came before it made once:
    assert len(kube.names("namespaces")) == 1 and len(kube.names("persistentvolumeclaims")) == 2
    assert ETCD_DOWN in SessionHost.objects.get(user=user).last_error

    kube.faults.clear()  # the server recovers; the next run (resync or task) completes the set
    tasks.reconcile_session_host.apply(args=[user.pk]).get()
    assert objects_of(kube) == EVERY_OBJECT


def test_a_create_applied_but_answered_500_is_not_made_twice(kube, user, retries):
    kube.faults.fail_next("POST", CREATE_PATHS["pods"], status=500, message=ETCD_DOWN, commit=True)
    tasks.reconcile_session_host.apply(args=[user.pk]).get()
    assert len(retries) == 1
    assert count(kube, "POST", "/pods") == 1  # the retry read the pod first and found it
    assert objects_of(kube) == EVERY_OBJECT


def test_a_refusal_is_not_retried(kube, user, retries):
    kube.refuse("POST", f"/api/v1/namespaces/{NS}/pods", status=403, message="pods is forbidden")
    with pytest.raises(KubernetesAPIError, match="403 pods is forbidden") as failure:
        tasks.reconcile_session_host.apply(args=[user.pk]).get()
    assert not isinstance(failure.value, KubernetesAPIUnavailable)
    assert retries == []
    assert count(kube, "POST", "/pods") == 1


def test_resync_retries_a_failed_list_and_writes_nothing_until_it_succeeds(kube, make_user, retries, settings):
    for name in ("alice", "bob"):
        services.ensure_session_host(user=make_user(name))
    kube.remove("services", NS, "session-host")  # drift to repair
    kube.clear_calls()
    kube.faults.fail_next("GET", r"^/api/v1/pods$", status=500, message=ETCD_DOWN, count=2)

    report = tasks.resync_session_hosts.apply().get()

    assert len(retries) == 2
    assert_backoff(retries, settings)
    assert count(kube, "GET", "/api/v1/namespaces") == 3  # three resyncs, the first two cut short
    assert report["created"] == ["Service devbench-alice/session-host"]
    assert [str(call) for call in kube.writes()] == [f"POST /api/v1/namespaces/{NS}/services"]
    assert len(kube.names("pods")) == 2 and len(kube.names("services")) == 2


# --- no answer at all ---------------------------------------------------------------------------

@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers (the kernel does the accepting)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def closed_port() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"


def point_at(kube, url: str, settings, tmp_path) -> None:
    kubeconfig = tmp_path / "elsewhere"
    kubeconfig.write_text(kube.kubeconfig().replace(kube.url, url))
    settings.DEVBENCH_KUBECONFIG = str(kubeconfig)
    settings.DEVBENCH_KUBE_TIMEOUT_SECONDS = TIMEOUT


@pytest.mark.parametrize(
    ("server", "reason"),
    [("silent_server", "no answer within 1 s"), ("closed_port", "cannot connect: Connection refused")],
)
@pytest.mark.parametrize(
    ("method", "path", "what"),
    [("post", ENSURE, "get Namespace devbench-alice"), ("get", STATUS, "get Pod devbench-alice/session-host")],
)
def test_no_answer_is_500_within_the_timeout(
    kube, bearer, settings, tmp_path, request, server, reason, method, path, what
):
    url = request.getfixturevalue(server)
    point_at(kube, url, settings, tmp_path)

    started = time.monotonic()
    response = getattr(Client(), method)(path, **bearer)
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + MARGIN  # one bounded request, no hidden retries
    assert response.status_code == 500
    assert response.json() == {"error": f"Kubernetes API server {url} unreachable ({what}): {reason}"}
    assert SessionHost.objects.get(user__username="alice").last_error == response.json()["error"]


def test_a_request_left_hanging_is_500_within_the_timeout_and_the_next_post_completes(kube, bearer, settings):
    settings.DEVBENCH_KUBE_TIMEOUT_SECONDS = TIMEOUT
    kube.faults.hang_next("POST", CREATE_PATHS["pods"])

    started = time.monotonic()
    response = Client().post(ENSURE, **bearer)
    elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + MARGIN
    assert (response.status_code, response.json()) == (500, {
        "error": f"Kubernetes API server {kube.url} unreachable (create Pod devbench-alice/session-host): "
                 "no answer within 1 s"
    })
    assert "Traceback" not in response.content.decode()
    kube.faults.clear()
    assert Client().post(ENSURE, **bearer).status_code == 200
    assert objects_of(kube) == EVERY_OBJECT


def test_resync_against_a_silent_server_ends_within_its_bounded_retries(
    kube, user, settings, tmp_path, silent_server, retries
):
    services.ensure_session_host(user=user)
    point_at(kube, silent_server, settings, tmp_path)
    settings.DEVBENCH_KUBE_RETRY_MAX = 1

    started = time.monotonic()
    with pytest.raises(KubernetesAPIUnavailable, match="list Namespace objects"):
        tasks.resync_session_hosts.apply().get()
    elapsed = time.monotonic() - started

    assert len(retries) == 1
    assert elapsed < 2 * TIMEOUT + MARGIN  # two attempts (eager: no countdown), one bounded LIST each
    assert User.objects.filter(pk=user.pk).exists() and SessionHost.objects.filter(user=user).exists()


# --- deleting a user while the API server fails -------------------------------------------------

def test_deleting_a_user_while_the_server_fails_keeps_them_until_it_recovers(kube, user, admin_user):
    services.ensure_session_host(user=user)
    kube.faults.fail_next("DELETE", rf"^/api/v1/namespaces/{NS}$", status=500, message=ETCD_DOWN, count=2)

    assert account_services.delete_user(admin=admin_user, user=user) is False
    user.refresh_from_db()
    assert (user.is_active, user.deletion_requested_at is not None) == (False, True)
    host = SessionHost.objects.get(user=user)
    assert host.state == "deleting"
    assert host.last_error == f"Kubernetes API error: cannot delete Namespace devbench-alice: 500 {ETCD_DOWN}"
    assert_every_namespace_is_tracked(kube)

    report = services.resync_session_hosts()  # still failing: tried again, kept
    assert report.errors == {"alice": host.last_error} and report.users_purged == []
    assert kube.get("namespaces", None, NS) is not None
    assert_every_namespace_is_tracked(kube)

    assert services.resync_session_hosts().deleted == [f"Namespace {NS}"]  # recovered: deleted
    assert_every_namespace_is_tracked(kube)
    assert services.resync_session_hosts().users_purged == ["alice"]  # and seen gone
    assert not User.objects.filter(pk=user.pk).exists() and not SessionHost.objects.exists()
    assert kube.names("namespaces") == set()


def test_reconcile_task_retries_a_failed_namespace_deletion_then_removes_the_user(kube, user, admin_user, retries):
    services.ensure_session_host(user=user)
    kube.faults.fail_next("DELETE", rf"^/api/v1/namespaces/{NS}$", status=503, count=3)
    account_services.delete_user(admin=admin_user, user=user)
    assert User.objects.filter(pk=user.pk).exists()

    tasks.reconcile_session_host.apply(args=[user.pk]).get()

    assert len(retries) == 2  # the deletion's first try was the receiver's, then two task attempts failed
    assert count(kube, "DELETE", f"/namespaces/{NS}") == 4
    assert not User.objects.filter(pk=user.pk).exists() and not SessionHost.objects.exists()
    assert kube.names("namespaces") == set()


def test_a_namespace_deletion_applied_but_answered_500_is_finished_by_the_resync(kube, user, admin_user):
    services.ensure_session_host(user=user)
    kube.faults.fail_next("DELETE", rf"^/api/v1/namespaces/{NS}$", status=500, commit=True)
    assert account_services.delete_user(admin=admin_user, user=user) is False
    assert kube.names("namespaces") == set()  # gone, though DevBench heard 500: the record stays
    assert services.resync_session_hosts().users_purged == ["alice"]
    assert count(kube, "DELETE", f"/namespaces/{NS}") == 1
    assert not User.objects.filter(pk=user.pk).exists()
