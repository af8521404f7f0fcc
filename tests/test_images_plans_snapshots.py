"""Images, plans, resource quotas and snapshots on the built-in local host (the real agent,
simulated backend): what a create sends the agent, what the user sees refused and why, and the
snapshot jobs' effect on the database and on the agent's state."""

from __future__ import annotations

import base64
import json

import pytest

from accounts import services as account_services
from benches import services
from benches.models import DevBench, Host, Image, Job, Plan, Snapshot
from benches.provisioning import protocol
from tests.api_helpers import bearer_client, post_json
from tests.bench_fixtures import bench_named

pytestmark = pytest.mark.django_db

OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzW4xV1q3f2dS9xK7vL0mN5pQ8rT2uY6wE4iO1aS3dF alice@laptop"


@pytest.fixture
def api(user):
    return bearer_client(user)


@pytest.fixture
def catalog(local_agent):
    """Two images on the local host (one default) and two plans (one default)."""
    local = Host.objects.get(name="local")
    debian = Image.objects.create(name="Debian 12", image_id="debian-12", is_default=True)
    ubuntu = Image.objects.create(name="Ubuntu 24.04", image_id="ubuntu-24.04")
    debian.hosts.add(local)
    ubuntu.hosts.add(local)
    small = Plan.objects.create(name="Small", vcpus=1, memory_mib=1024, disk_gib=10, is_default=True)
    large = Plan.objects.create(name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    local_agent.configure(simulated_images="debian-12,ubuntu-24.04")
    return {"debian": debian, "ubuntu": ubuntu, "small": small, "large": large, "local": local}


def agent_record(local_agent, vm_name: str) -> dict:
    return json.loads((local_agent.state_dir / "vms" / f"{vm_name}.json").read_text())


# --- the protocol --------------------------------------------------------------------------------

def test_create_options_become_quoted_flags_in_a_fixed_order():
    options = protocol.CreateOptions(image_id="debian-12", vcpus=2, memory_mib=2048, disk_gib=20, user="alice",
                                     ssh_keys=(OWNER_KEY,))
    line = protocol.build_command("/opt/agent", "create", "alice_dev", create_options=options)
    encoded = base64.b64encode(OWNER_KEY.encode()).decode()
    assert line == (f"/opt/agent create alice_dev --image debian-12 --vcpus 2 --memory 2048 --disk 20 --user alice "
                    f"--ssh-key {encoded}")
    assert protocol.build_command("/opt/agent", "snapshot", "alice_dev", snapshot="before") == (
        "/opt/agent snapshot alice_dev before")


@pytest.mark.parametrize("options, message", [
    (protocol.CreateOptions(image_id="../etc"), "Invalid image id: '../etc'"),
    (protocol.CreateOptions(vcpus=65), "--vcpus must be 1–64, not 65"),
    (protocol.CreateOptions(memory_mib=64), "--memory must be 128–262144, not 64"),
    (protocol.CreateOptions(user="Root;rm"), "Invalid VM user name: 'Root;rm'"),
    (protocol.CreateOptions(ssh_keys=("ssh-ed25519 AAAA\nrm -rf /",)), "An SSH key is not one OpenSSH public key line"),
    (protocol.CreateOptions(ssh_keys=(OWNER_KEY,) * 33), "At most 32 SSH keys go to a VM, not 33"),
])
def test_create_options_outside_the_protocol_are_refused(options, message):
    with pytest.raises(protocol.ProtocolError) as raised:
        protocol.build_command("/opt/agent", "create", "alice_dev", create_options=options)
    assert str(raised.value) == message


@pytest.mark.parametrize("snapshot", ["", "-x", "a b", "x" * 33, "a;b", "ä"])
def test_bad_snapshot_names_never_reach_a_command_line(snapshot):
    with pytest.raises(protocol.ProtocolError):
        protocol.build_command("/opt/agent", "restore", "alice_dev", snapshot=snapshot)


# --- create with an image and a plan ---------------------------------------------------------------

def test_create_with_image_and_plan_passes_them_to_the_agent(api, user, catalog, local_agent, run_jobs):
    account_services.add_ssh_key(user=user, public_key=OWNER_KEY)
    response = post_json(api, "/api/v1/benches/", {"name": "big", "image": "Ubuntu 24.04", "plan": "Large"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["image"], body["plan"], body["vcpus"], body["memoryMib"], body["diskGib"]) == (
        "Ubuntu 24.04", "Large", 4, 8192, 40)
    [job] = run_jobs()
    assert job.state == "succeeded", job.error
    record = agent_record(local_agent, "alice_big")
    bench = bench_named(user, "big")
    assert (record["image"], record["vcpus"], record["memory"], record["disk"], record["user"]) == (
        "ubuntu-24.04", 4, 8192, 40, "alice")
    assert record["ssh_keys"] == [OWNER_KEY, bench.public_key]
    assert bench.public_key.startswith("ssh-ed25519 ") and bench.private_key_encrypted


def test_create_without_names_takes_the_defaults(api, user, catalog, local_agent, run_jobs):
    response = post_json(api, "/create-devbench", {"name": "plain"})
    assert response.status_code == 200, response.json()
    run_jobs()
    bench = bench_named(user, "plain")
    assert (bench.image, bench.plan, bench.vcpus, bench.memory_mib, bench.disk_gib) == (
        catalog["debian"], catalog["small"], 1, 1024, 10)
    assert agent_record(local_agent, "alice_plain")["image"] == "debian-12"


@pytest.mark.parametrize("field, value, message", [
    ("image", "Windows", "Unknown image: 'Windows' (images: Debian 12, Ubuntu 24.04)"),
    ("plan", "Huge", "Unknown plan: 'Huge' (plans: Small, Large)"),
])
def test_unknown_image_or_plan_is_400_and_creates_nothing(api, user, catalog, field, value, message):
    response = post_json(api, "/api/v1/benches/", {"name": "x", field: value})
    assert response.status_code == 400
    assert response.json() == {"error": message, "fields": {field: [message]}}
    compatible = post_json(bearer_client(user), "/create-devbench", {"name": "x", field: value})
    assert (compatible.status_code, compatible.json()["error"]) == (400, message)
    assert not DevBench.objects.exists() and not Job.objects.exists()


def test_disabled_image_is_not_offered(api, user, catalog):
    catalog["ubuntu"].enabled = False
    catalog["ubuntu"].save()
    assert api.get("/api/v1/images/").json() == [
        {"name": "Debian 12", "description": "", "isDefault": True},
    ]
    assert api.get("/api/v1/plans/").json() == [
        {"name": "Small", "vcpus": 1, "memoryMib": 1024, "diskGib": 10, "isDefault": True},
        {"name": "Large", "vcpus": 4, "memoryMib": 8192, "diskGib": 40, "isDefault": False},
    ]
    response = post_json(api, "/api/v1/benches/", {"name": "x", "image": "Ubuntu 24.04"})
    assert response.status_code == 400


def test_image_on_no_enabled_host_is_503(api, user, catalog):
    catalog["ubuntu"].hosts.clear()
    response = post_json(api, "/api/v1/benches/", {"name": "x", "image": "Ubuntu 24.04"})
    assert response.status_code == 503
    assert response.json() == {"error": "No enabled host has the image Ubuntu 24.04; ask an admin"}
    assert not DevBench.objects.exists()


def test_plans_go_only_to_hosts_whose_agent_takes_sizes(api, user, catalog):
    Host.objects.filter(name="local").update(capabilities=["list", "images"])
    response = post_json(api, "/api/v1/benches/", {"name": "x", "plan": "Large"})
    assert response.status_code == 503, response.json()
    assert not DevBench.objects.exists()


def test_host_without_the_additions_gets_the_plain_create(user, local_agent, run_jobs):
    Host.objects.filter(name="local").update(capabilities=[])
    services.create_bench(user=user, name="old")
    [job] = run_jobs()
    assert job.state == "succeeded"
    record = agent_record(local_agent, "alice_old")
    assert (record["image"], record["user"], record["ssh_keys"]) == ("debian-12", "devbench", [])


# --- resource quotas -------------------------------------------------------------------------------

def test_vcpu_quota_refuses_the_bench_that_would_pass_it(api, user, catalog):
    user.vcpu_quota = 5
    user.save()
    assert post_json(api, "/api/v1/benches/", {"name": "a", "plan": "Large"}).status_code == 201
    assert post_json(api, "/api/v1/benches/", {"name": "b", "plan": "Small"}).status_code == 201
    refused = post_json(api, "/api/v1/benches/", {"name": "c", "plan": "Small"})
    assert refused.status_code == 400
    assert refused.json() == {"error": "Quota reached: plan Small needs 1 vCPUs and your benches use 5 of your 5. "
                                       "Delete a bench or choose a smaller plan."}
    assert sorted(DevBench.objects.values_list("name", flat=True)) == ["a", "b"]


def test_site_memory_quota_applies_without_a_users_own(api, user, catalog, settings):
    settings.DEVBENCH_DEFAULT_MEMORY_QUOTA_MIB = 9000
    assert post_json(api, "/api/v1/benches/", {"name": "a", "plan": "Large"}).status_code == 201
    refused = post_json(api, "/api/v1/benches/", {"name": "b", "plan": "Large"})
    assert refused.json()["error"].startswith("Quota reached: plan Large needs 8192 MiB of memory and your benches "
                                              "use 8192 of your 9000.")


def test_without_resource_quotas_only_the_bench_count_limits(api, user, catalog, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 2
    for name in ("a", "b"):
        assert post_json(api, "/api/v1/benches/", {"name": name, "plan": "Large"}).status_code == 201
    refused = post_json(api, "/api/v1/benches/", {"name": "c", "plan": "Small"})
    assert refused.json() == {"error": "DevBench quota reached: you have 2 of 2. Delete one first."}


# --- snapshots -----------------------------------------------------------------------------------

@pytest.fixture
def running_bench(user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="snappy")
    run_jobs()
    bench.refresh_from_db()
    assert bench.status == "active"
    return bench


def test_snapshot_take_list_restore_delete(api, user, local_agent, running_bench, run_jobs):
    taken = post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "before-upgrade"})
    assert taken.status_code == 202, taken.json()
    assert (taken.json()["command"], taken.json()["argument"], taken.json()["state"]) == (
        "snapshot", "before-upgrade", "queued")
    assert api.get(f"/api/v1/benches/{running_bench.pk}/snapshots/").json() == []  # not until it is done
    [job] = run_jobs()
    assert job.state == "succeeded", job.error
    [listed] = api.get(f"/api/v1/benches/{running_bench.pk}/snapshots/").json()
    assert (listed["name"], listed["createdBy"]) == ("before-upgrade", "alice")
    assert [s["name"] for s in agent_record(local_agent, "alice_snappy")["snapshots"]] == ["before-upgrade"]

    restored = api.post(f"/api/v1/benches/{running_bench.pk}/snapshots/before-upgrade/restore/")
    assert restored.status_code == 202
    [job] = run_jobs()
    assert job.state == "succeeded", job.error
    running_bench.refresh_from_db()
    assert running_bench.status == "inactive"  # the agent stops the VM first; it stays stopped
    assert agent_record(local_agent, "alice_snappy")["restored"] == "before-upgrade"

    deleted = api.delete(f"/api/v1/benches/{running_bench.pk}/snapshots/before-upgrade/")
    assert (deleted.status_code, deleted.json()["command"]) == (202, "delete-snapshot")
    run_jobs()
    assert api.get(f"/api/v1/benches/{running_bench.pk}/snapshots/").json() == []
    assert agent_record(local_agent, "alice_snappy")["snapshots"] == []
    assert list(Job.objects.filter(bench=running_bench).order_by("pk").values_list("command", "requested_by__username")
                ) == [("create", "alice"), ("snapshot", "alice"), ("restore", "alice"), ("delete-snapshot", "alice")]


@pytest.mark.parametrize("name", ["", "-lead", "has space", "x" * 33, None, ["a"]])
def test_bad_snapshot_name_is_400_and_queues_nothing(api, running_bench, name):
    response = post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": name})
    assert response.status_code == 400
    assert Job.objects.filter(bench=running_bench).count() == 1


def test_duplicate_snapshot_and_the_limit_are_400(api, running_bench, settings):
    settings.DEVBENCH_MAX_SNAPSHOTS_PER_BENCH = 2
    Snapshot.objects.create(bench=running_bench, name="one")
    duplicate = post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "one"})
    message = "Snapshot one already exists"
    assert duplicate.json() == {"error": message, "fields": {"name": [message]}}
    Snapshot.objects.create(bench=running_bench, name="two")
    over = post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "three"})
    assert (over.status_code, over.json()) == (
        400, {"error": "Snapshot limit reached: a bench keeps at most 2. Delete one first."})
    assert Job.objects.filter(bench=running_bench).count() == 1


def test_missing_snapshot_is_404(api, running_bench):
    assert api.post(f"/api/v1/benches/{running_bench.pk}/snapshots/nope/restore/").json() == {
        "error": "Snapshot nope not found"}
    assert api.delete(f"/api/v1/benches/{running_bench.pk}/snapshots/nope/").status_code == 404


def test_host_without_snapshots_says_so(api, running_bench):
    Host.objects.filter(name="local").update(capabilities=["list"])
    response = post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "x"})
    assert (response.status_code, response.json()) == (
        409, {"error": "Snapshots are not available on host local: its agent does not support them"})
    assert api.get(f"/api/v1/benches/{running_bench.pk}/").json()["snapshotsAvailable"] is False


def test_failed_snapshot_records_no_snapshot(api, running_bench, local_agent, run_jobs):
    local_agent.configure(fail_commands=["snapshot"])
    post_json(api, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "x"})
    [job] = run_jobs()
    assert job.state == "failed"
    running_bench.refresh_from_db()
    assert not Snapshot.objects.exists() and running_bench.last_error


def test_another_users_bench_snapshots_are_404(make_user, running_bench):
    other = bearer_client(make_user("bob"))
    assert other.get(f"/api/v1/benches/{running_bench.pk}/snapshots/").status_code == 404
    assert post_json(other, f"/api/v1/benches/{running_bench.pk}/snapshots/", {"name": "x"}).status_code == 404
    assert not Job.objects.filter(command="snapshot").exists()
