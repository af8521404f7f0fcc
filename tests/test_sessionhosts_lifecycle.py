"""Session hosts over time: the Celery tasks, drift repair by resync (one LIST per kind), deleting
users with their namespace, the admin panel's list and the dashboard card."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.template.loader import render_to_string
from django.test import Client

from accounts import services as account_services
from accounts.models import User
from sessionhosts import services, tasks
from sessionhosts.models import SessionHost

pytestmark = pytest.mark.django_db

MANAGED = {"labelSelector": "app.kubernetes.io/managed-by=devbench"}
LISTS = [
    "GET /api/v1/namespaces",
    "GET /api/v1/persistentvolumeclaims",
    "GET /api/v1/pods",
    "GET /api/v1/services",
    "GET /apis/networking.k8s.io/v1/ingresses",
    "GET /apis/cert-manager.io/v1/certificates",
]


@pytest.fixture
def bearer_for():
    def headers(user: User) -> dict:
        _key, raw = account_services.create_api_key(user=user)
        return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    return headers


@pytest.fixture
def three_hosts(kube, make_user) -> list[User]:
    users = [make_user(name) for name in ("alice", "bob", "carol")]
    for user in users:
        services.ensure_session_host(user=user)
    kube.clear_calls()
    return users


# --- tasks and resync ---------------------------------------------------------------------------

def test_reconcile_task_creates_one_users_session_host(kube, user):
    tasks.reconcile_session_host.apply(args=[user.pk]).get()
    assert kube.names("pods") == {("devbench-alice", "session-host")}
    assert SessionHost.objects.get(user=user).state == "pending"


def test_resync_of_healthy_hosts_is_one_list_per_kind_and_nothing_else(kube, three_hosts):
    report = tasks.resync_session_hosts.apply().get()
    assert [str(call) for call in kube.calls] == LISTS
    assert all(call.query == MANAGED for call in kube.calls)
    assert report == {
        "checked": 3, "created": [], "deleted": [], "users_purged": [], "errors": {}, "orphans": [],
    }


def test_resync_repairs_drift_without_a_get_per_user(kube, three_hosts):
    kube.remove("services", "devbench-alice", "session-host")
    kube.remove("persistentvolumeclaims", "devbench-bob", "workspace")
    kube.set_pod("devbench-carol", phase="Failed")
    kube.clear_calls()

    report = services.resync_session_hosts()

    assert [str(call) for call in kube.calls] == [
        *LISTS,
        "POST /api/v1/namespaces/devbench-alice/services",
        "POST /api/v1/namespaces/devbench-bob/persistentvolumeclaims",
        "DELETE /api/v1/namespaces/devbench-carol/pods/session-host",
        "POST /api/v1/namespaces/devbench-carol/pods",
    ]
    assert report.created == [
        "Service devbench-alice/session-host", "PersistentVolumeClaim devbench-bob/workspace",
        "Pod devbench-carol/session-host",
    ]
    assert report.deleted == ["Pod devbench-carol/session-host"]
    assert kube.get("services", "devbench-alice", "session-host") is not None
    assert kube.get("persistentvolumeclaims", "devbench-bob", "workspace") is not None
    assert kube.get("pods", "devbench-carol", "session-host")["status"]["phase"] == "Pending"


def test_resync_recreates_a_deleted_namespace_with_everything_in_it(kube, three_hosts):
    kube.remove("namespaces", None, "devbench-bob")
    kube.clear_calls()
    report = services.resync_session_hosts()
    assert len(report.created) == 7
    assert {call.path for call in kube.writes()} >= {"/api/v1/namespaces", "/api/v1/namespaces/devbench-bob/pods"}
    assert ("devbench-bob", "session-host") in kube.names("pods")


def test_resync_records_the_last_known_state(kube, three_hosts, django_assert_num_queries):
    kube.set_pod("devbench-alice", phase="Running", ready=True, annotations={"devbench.io/atch-sessions": "2"})
    kube.set_certificate("devbench-alice", ready=True)
    SessionHost.objects.filter(user__username="carol").update(last_error="stale")
    services.resync_session_hosts()
    alice = SessionHost.objects.get(user__username="alice")
    assert (alice.state, alice.ready, alice.cert_ready, alice.atch_session_count) == ("ready", True, True, 2)
    assert SessionHost.objects.get(user__username="bob").state == "pending"
    assert SessionHost.objects.get(user__username="carol").last_error == ""

    # Nothing changed since: the hosts with their users, then one UPDATE of last_checked_at.
    SessionHost.objects.update(last_checked_at=None)
    with django_assert_num_queries(2):
        services.resync_session_hosts()
    assert not SessionHost.objects.filter(last_checked_at=None).exists()
    kube.set_pod("devbench-bob", phase="Running", ready=True)
    with django_assert_num_queries(3):  # and bob's UPDATE
        services.resync_session_hosts()
    assert SessionHost.objects.get(user__username="bob").ready is True


def test_resync_leaves_deactivated_users_alone_and_reports_unknown_namespaces(kube, three_hosts):
    bob = three_hosts[1]
    bob.is_active = False
    bob.save()
    kube.remove("pods", "devbench-bob", "session-host")
    kube.put("namespaces", None, "devbench-ghost", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "devbench-ghost", "labels": {"app.kubernetes.io/managed-by": "devbench"}},
    })
    report = services.resync_session_hosts()
    assert report.created == []
    assert report.orphans == ["devbench-ghost"]
    assert kube.get("namespaces", None, "devbench-ghost") is not None  # reported, never deleted


def test_resync_without_kubernetes_does_nothing(no_kube, make_user):
    assert services.resync_session_hosts().checked == 0


def test_beat_runs_the_resync():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sessionhost-resync"]
    assert entry["task"] == tasks.resync_session_hosts.name == "sessionhosts.tasks.resync_session_hosts"
    assert entry["schedule"] == django_settings.DEVBENCH_SESSIONHOST_RESYNC_SECONDS


# --- deleting users -----------------------------------------------------------------------------

def test_admin_route_delete_user_deletes_the_namespace(kube, user, admin_client_):
    services.ensure_session_host(user=user)
    response = admin_client_.post(f"/admin/delete-user/{user.pk}")
    assert response.json() == {"success": True}
    assert kube.get("namespaces", None, "devbench-alice") is None
    assert kube.names("pods") == set() and kube.names("persistentvolumeclaims") == set()
    assert not User.objects.filter(pk=user.pk).exists()
    assert not SessionHost.objects.exists()


def test_admin_panel_delete_confirmation_deletes_the_namespace(kube, user, admin_client_):
    services.ensure_session_host(user=user)
    confirmation = admin_client_.get(f"/admin/accounts/user/{user.pk}/delete/")
    assert "Cannot delete" not in confirmation.content.decode()
    response = admin_client_.post(f"/admin/accounts/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert kube.get("namespaces", None, "devbench-alice") is None
    assert not User.objects.filter(pk=user.pk).exists()


def test_admin_deletes_a_session_host_with_its_namespace(kube, user, admin_client_):
    services.ensure_session_host(user=user)
    host = SessionHost.objects.get(user=user)
    response = admin_client_.post(f"/admin/sessionhosts/sessionhost/{host.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert kube.get("namespaces", None, "devbench-alice") is None
    assert not SessionHost.objects.exists()
    assert User.objects.get(pk=user.pk).is_active  # the user keeps their account and may start anew


def test_a_deleted_session_host_is_not_recreated_while_its_namespace_terminates(kube, user, bearer_for):
    services.ensure_session_host(user=user)
    kube.patch("namespaces", None, "devbench-alice", {"metadata": {"finalizers": ["kubernetes"]}})
    assert services.delete_session_host(user=user) is False

    assert services.resync_session_hosts().created == []
    response = Client().post("/api/v1/pods/session-host", **bearer_for(user))
    assert response.status_code == 503
    assert response.json() == {"error": "namespace devbench-alice is being deleted; try again once it is gone"}

    kube.remove("namespaces", None, "devbench-alice")
    report = services.resync_session_hosts()
    assert (report.created, report.users_purged) == ([], [])
    assert not SessionHost.objects.exists()
    assert Client().post("/api/v1/pods/session-host", **bearer_for(user)).status_code == 200  # starts anew
    assert ("devbench-alice", "session-host") in kube.names("pods")


def test_user_stays_until_a_terminating_namespace_is_gone(kube, user, admin_user):
    services.ensure_session_host(user=user)
    kube.patch("namespaces", None, "devbench-alice", {"metadata": {"finalizers": ["kubernetes"]}})

    assert account_services.delete_user(admin=admin_user, user=user) is False

    namespace = kube.get("namespaces", None, "devbench-alice")
    assert namespace["metadata"]["deletionTimestamp"]
    user.refresh_from_db()
    assert user.is_active is False and user.deletion_requested_at is not None
    assert SessionHost.objects.get(user=user).state == "deleting"

    kube.clear_calls()
    assert services.resync_session_hosts().users_purged == []  # still terminating: wait
    assert kube.writes() == []  # and no second DELETE
    assert User.objects.filter(pk=user.pk).exists()

    kube.remove("namespaces", None, "devbench-alice")  # the namespace controller finished
    report = services.resync_session_hosts()
    assert report.users_purged == ["alice"]
    assert not User.objects.filter(pk=user.pk).exists()
    assert not SessionHost.objects.exists()


def test_reconcile_task_finishes_a_pending_deletion(kube, user, admin_user):
    services.ensure_session_host(user=user)
    kube.patch("namespaces", None, "devbench-alice", {"metadata": {"finalizers": ["kubernetes"]}})
    account_services.delete_user(admin=admin_user, user=user)
    kube.remove("namespaces", None, "devbench-alice")
    tasks.reconcile_session_host.apply(args=[user.pk]).get()
    assert not User.objects.filter(pk=user.pk).exists()


def test_user_is_kept_when_the_cluster_cannot_be_asked(kube, user, admin_user, settings):
    services.ensure_session_host(user=user)
    settings.DEVBENCH_KUBECONFIG = ""
    assert account_services.delete_user(admin=admin_user, user=user) is False
    host = SessionHost.objects.get(user=user)
    assert (host.state, host.last_error) == ("deleting", "session-host manager not configured")
    assert kube.get("namespaces", None, "devbench-alice") is not None
    assert User.objects.filter(pk=user.pk).exists()


def test_deleting_a_user_without_a_session_host_asks_nothing_of_the_cluster(kube, user, admin_user):
    assert account_services.delete_user(admin=admin_user, user=user) is True
    assert kube.calls == []


# --- admin panel and dashboard card -------------------------------------------------------------

def test_admin_lists_every_session_host_read_only(kube, three_hosts, admin_client_, django_assert_max_num_queries):
    SessionHost.objects.filter(user=three_hosts[0]).update(last_error="boom")
    with django_assert_max_num_queries(12):
        response = admin_client_.get("/admin/sessionhosts/sessionhost/")
    assert response.status_code == 200
    page = response.content.decode()
    for namespace in ("devbench-alice", "devbench-bob", "devbench-carol"):
        assert namespace in page
    assert "boom" in page
    assert admin_client_.get("/admin/sessionhosts/sessionhost/add/").status_code == 403
    host = SessionHost.objects.get(user=three_hosts[0])
    detail = admin_client_.get(f"/admin/sessionhosts/sessionhost/{host.pk}/change/")
    assert detail.status_code == 200 and 'type="submit" value="Save"' not in detail.content.decode()


def test_admin_check_now_action_reads_live_status(kube, three_hosts, admin_client_):
    kube.set_pod("devbench-bob", phase="Running", ready=True)
    bob = SessionHost.objects.get(user__username="bob")
    action = {"action": "check_now", "index": 0, "_selected_action": [bob.pk]}
    response = admin_client_.post("/admin/sessionhosts/sessionhost/", action, follow=True)
    assert "Bob: ready" in response.content.decode()  # the admin capitalises messages
    assert SessionHost.objects.get(pk=bob.pk).state == "ready"


def test_dashboard_card_renders_the_url_and_loads_its_script(user, settings):
    settings.DEVBENCH_SESSIONHOST_DOMAIN = "sessions.example.org"
    html = render_to_string("sessionhosts/_card.html", {"user": user})
    assert 'id="session-host-card"' in html
    assert 'data-status-url="/api/v1/pods/session-host/alice/status"' in html
    assert 'data-ensure-url="/api/v1/pods/session-host"' in html
    assert 'href="https://alice.sessions.example.org/"' in html
    assert 'src="/static/js/sessionhost.js"' in html
    assert "<script>" not in html and "style=" not in html  # the CSP allows no inline code


def test_session_host_script_is_served(user_client):
    response = Client().get("/static/js/sessionhost.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"X-CSRFToken" in body and b"csrf-token" in body
    assert b"/api/v1" not in body  # the URLs come from the card's data attributes
