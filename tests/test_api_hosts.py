"""Hosts in the JSON API (admins): register, list, change, disable, delete when empty, and
test the connection against a real sshd."""

from __future__ import annotations

import pytest

from benches import services
from benches.models import DevBench, Host, Job
from benches.provisioning import host_keys
from tests.api_helpers import bearer_client, patch_json, post_json

# Transactional where jobs run (``run_jobs`` asks for it).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_ssh_connections")]

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ3bh8d7gd9hX4u3iD4y1hQ+3cwbWfm3KOqUNIr+k0fY"
HOST_KEYS = {"id", "name", "kind", "address", "port", "username", "identityFile", "hasPrivateKey", "scriptPath",
             "publicHost", "jumpHost", "capacity", "enabled", "hostKey", "commandTimeout", "capabilities", "backend",
             "benchCount", "createdAt", "updatedAt"}


@pytest.fixture
def admin_api(admin_user):
    return bearer_client(admin_user)


def register(admin_api, sshd_host, tmp_path, **overrides):
    script = sshd_host.make_agent_script(tmp_path)
    body = {
        "name": "hv1", "address": sshd_host.host, "port": sshd_host.port, "username": sshd_host.username,
        "identityFile": str(sshd_host.client_key_path), "scriptPath": str(script), "capacity": 4,
        **overrides,
    }
    return post_json(admin_api, "/api/v1/hosts/", body)


def test_register_pins_from_known_hosts_and_never_shows_the_private_key(admin_api, sshd_host, tmp_path):
    response = register(admin_api, sshd_host, tmp_path, knownHostsFile=str(sshd_host.known_hosts_path),
                        identityFile="", privateKey=sshd_host.client_key_path.read_text())
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == HOST_KEYS
    assert (body["name"], body["kind"], body["port"], body["capacity"], body["benchCount"]) == (
        "hv1", "ssh", sshd_host.port, 4, 0)
    assert body["hostKey"] == sshd_host.host_public_key
    assert body["hasPrivateKey"] is True and body["identityFile"] == ""
    assert "PRIVATE KEY" not in response.content.decode()
    assert Host.objects.get(name="hv1").private_key_encrypted


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"scriptPath": "/x;id"}, "scriptPath"), ({"port": 70000}, "port"), ({"name": "no spaces"}, "name"),
     ({"identityFile": "/nonexistent/key"}, "identityFile"), ({"jumpHost": "a\nProxyCommand x"}, "jumpHost"),
     ({"privateKey": "not a key"}, "privateKey"), ({"address": "x" * 300}, "address")],
)
def test_register_refusals_name_the_field(admin_api, sshd_host, tmp_path, overrides, field):
    response = register(admin_api, sshd_host, tmp_path, **overrides)
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == [field]
    assert not Host.objects.filter(name__in=["hv1", "no spaces"]).exists()


def test_duplicate_name_is_400(admin_api, sshd_host, tmp_path):
    assert register(admin_api, sshd_host, tmp_path).status_code == 201
    response = register(admin_api, sshd_host, tmp_path)
    assert response.status_code == 400
    assert response.json()["error"] == "A host named 'hv1' already exists"


def test_test_connection_reports_latency_and_pins_the_key_on_first_use(admin_api, sshd_host, tmp_path):
    host_id = register(admin_api, sshd_host, tmp_path).json()["id"]
    assert Host.objects.get(pk=host_id).host_key == ""
    response = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["error"] == ""
    assert 0 < body["latencyMs"] < 30000
    assert body["hostKey"] == sshd_host.host_public_key
    key = host_keys.pinned_keys(Host(host_key=sshd_host.host_public_key))[0]
    assert body["fingerprint"] == host_keys.fingerprint(key) and body["fingerprint"].startswith("SHA256:")
    assert Host.objects.get(pk=host_id).host_key == sshd_host.host_public_key


def test_test_connection_with_a_wrong_pinned_key_or_down_host_is_ok_false(admin_api, sshd_host, tmp_path):
    host_id = register(admin_api, sshd_host, tmp_path).json()["id"]
    assert patch_json(admin_api, f"/api/v1/hosts/{host_id}/", {"hostKey": OTHER_KEY}).status_code == 200
    mismatch = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/").json()
    assert mismatch["ok"] is False and mismatch["error"].startswith("Host key verification failed for hv1")
    assert Host.objects.get(pk=host_id).host_key == OTHER_KEY  # never replaced silently

    patch_json(admin_api, f"/api/v1/hosts/{host_id}/", {"hostKey": sshd_host.host_public_key, "port": 1})
    down = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/").json()
    assert down == {"ok": False, "latencyMs": None, "hostKey": None, "fingerprint": None,
                    "error": down["error"], "capabilities": None, "backend": ""}
    assert down["error"].startswith("Could not connect to host hv1 (127.0.0.1:1) after 3 attempts")


def test_test_connection_of_the_local_host(admin_api, local_agent):
    host = Host.objects.get(name="local")
    body = admin_api.post(f"/api/v1/hosts/{host.pk}/test-connection/").json()
    assert body["ok"] is True and body["hostKey"] is None and body["latencyMs"] > 0
    assert (body["capabilities"], body["backend"]) == (AGENT_CAPABILITIES, "simulated")


AGENT_CAPABILITIES = ["images", "list", "plans", "snapshots", "ssh-keys"]


def test_test_connection_asks_the_agent_what_it_can_do_and_stores_it(admin_api, sshd_host, tmp_path):
    host_id = register(admin_api, sshd_host, tmp_path).json()["id"]
    assert admin_api.get(f"/api/v1/hosts/{host_id}/").json()["capabilities"] == []  # not asked yet
    body = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/").json()
    assert body["ok"] is True
    assert (body["capabilities"], body["backend"]) == (AGENT_CAPABILITIES, "simulated")
    shown = admin_api.get(f"/api/v1/hosts/{host_id}/").json()
    assert (shown["capabilities"], shown["backend"]) == (AGENT_CAPABILITIES, "simulated")


def test_an_agent_without_the_capabilities_command_has_none_of_the_additions(admin_api, sshd_host, tmp_path):
    """A provision script from before protocol v2 answers ``capabilities`` with a usage error."""
    script = tmp_path / "old-agent"
    script.write_text('#!/bin/sh\ncase "$1" in capabilities) echo "usage: old-agent COMMAND NAME" >&2; exit 2;; esac\n')
    script.chmod(0o755)
    host_id = register(admin_api, sshd_host, tmp_path, scriptPath=str(script)).json()["id"]
    Host.objects.filter(pk=host_id).update(capabilities=["list", "snapshots"], backend="simulated")
    body = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/").json()
    assert body["ok"] is True and (body["capabilities"], body["backend"]) == ([], "")
    assert Host.objects.filter(pk=host_id).values_list("capabilities", "backend").get() == ([], "")


def test_a_failing_capabilities_command_keeps_what_was_stored(admin_api, sshd_host, tmp_path):
    script = tmp_path / "broken-agent"
    script.write_text('#!/bin/sh\ncase "$1" in capabilities) exit 1;; esac\n')
    script.chmod(0o755)
    host_id = register(admin_api, sshd_host, tmp_path, scriptPath=str(script)).json()["id"]
    Host.objects.filter(pk=host_id).update(capabilities=["list"], backend="virtualbox")
    body = admin_api.post(f"/api/v1/hosts/{host_id}/test-connection/").json()
    assert body["ok"] is True and (body["capabilities"], body["backend"]) == (["list"], "virtualbox")


def test_update_disable_enable(admin_api, sshd_host, tmp_path, user, local_agent):
    host_id = register(admin_api, sshd_host, tmp_path).json()["id"]
    response = patch_json(admin_api, f"/api/v1/hosts/{host_id}/", {"capacity": 9, "publicHost": "hv1.example.com"})
    assert response.status_code == 200
    assert (response.json()["capacity"], response.json()["publicHost"], response.json()["port"]) == (
        9, "hv1.example.com", sshd_host.port)
    bad = patch_json(admin_api, f"/api/v1/hosts/{host_id}/", {"hostKey": "garbage"})
    assert bad.status_code == 400 and list(bad.json()["fields"]) == ["hostKey"]

    disabled = admin_api.post(f"/api/v1/hosts/{host_id}/disable/")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    # A disabled host gets no new bench: this one goes to the local host.
    assert services.create_bench(user=user, name="elsewhere").host.name == "local"
    assert admin_api.post(f"/api/v1/hosts/{host_id}/enable/").json()["enabled"] is True


def test_delete_only_when_empty(admin_api, user, local_agent, run_jobs):
    local = Host.objects.get(name="local")
    bench = services.create_bench(user=user, name="keeps")
    run_jobs()
    response = admin_api.delete(f"/api/v1/hosts/{local.pk}/")
    assert (response.status_code, response.json()) == (
        409, {"error": "Host local still has 1 DevBench; delete them first"})
    services.delete_bench(bench=bench, actor=user)
    run_jobs()
    assert not DevBench.objects.exists()
    assert admin_api.delete(f"/api/v1/hosts/{local.pk}/").status_code == 204
    assert not Host.objects.filter(pk=local.pk).exists()
    assert Job.objects.filter(host=None).count() == 2  # the jobs stay, as the audit trail


def test_host_list_without_n_plus_one(admin_api, make_user, local_agent, settings, django_assert_max_num_queries):
    settings.DEVBENCH_DEFAULT_QUOTA = 10
    for index in range(5):
        services.register_host(name=f"hv{index}", address="10.0.0.1", port=22, username="devbench",
                               script_path="/opt/agent", capacity=0)
    for name in ("carol", "dave"):
        owner = make_user(name)
        for index in range(3):
            services.create_bench(user=owner, name=f"vm{index}")
    admin_api.get("/api/v1/me/")  # the key's last use is recorded (once a minute)
    with django_assert_max_num_queries(3):  # the key, the count, the page
        body = admin_api.get("/api/v1/hosts/").json()
    assert [(host["name"], host["benchCount"]) for host in body["results"]] == [
        ("hv0", 0), ("hv1", 0), ("hv2", 0), ("hv3", 0), ("hv4", 0), ("local", 6)]


def test_admin_panel_actions_use_the_same_services(admin_client_, local_agent):
    host = Host.objects.get(name="local")
    response = admin_client_.post("/admin/benches/host/", {"action": "test_connection", "_selected_action": [host.pk]},
                                  follow=True)
    [message] = [str(message) for message in response.context["messages"]]
    assert message.startswith("local: reachable in ")
    admin_client_.post("/admin/benches/host/", {"action": "disable_hosts", "_selected_action": [host.pk]})
    host.refresh_from_db()
    assert host.enabled is False
