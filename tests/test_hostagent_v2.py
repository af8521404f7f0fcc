"""Host protocol v2 on the agent's simulated backend (docs/host-protocol.md): capabilities, create
options validated as the protocol says, images and snapshots — the agent run as a subprocess."""

from __future__ import annotations

import re

import pytest

from tests.agent_fixtures import b64, make_keypair

SIMULATED_CAPABILITIES = "CAPABILITIES=list images plans ssh-keys snapshots\nBACKEND=simulated\n"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> list[str]:
    directory = tmp_path_factory.mktemp("keys")
    return [make_keypair(directory, f"key{i}", comment=f"alice@laptop-{i}")[1] for i in range(2)]


# --------------------------------------------------------------------------- capabilities and images


def test_capabilities_of_the_simulated_backend(agent):
    result = agent.run("capabilities")

    assert (result.returncode, result.stdout, result.stderr) == (0, SIMULATED_CAPABILITIES, "")
    assert not agent.state_dir.exists()


def test_the_virtualbox_backend_has_list_only_and_refuses_v2_options(make_agent):
    agent = make_agent(backend="virtualbox", base_vm="devbench-base", vboxmanage="/nonexistent/VBoxManage")

    capabilities = agent.run("capabilities")
    with_image = agent.run("create", "alice_dev", "--image", "debian-12")
    snapshots = agent.run("snapshots", "alice_dev")

    assert (capabilities.returncode, capabilities.stdout) == (0, "CAPABILITIES=list\nBACKEND=virtualbox\n")
    assert with_image.returncode == 2 and "does not support the images options" in with_image.stderr
    assert snapshots.returncode == 2 and "has no snapshots command" in snapshots.stderr
    assert "nonexistent" not in with_image.stderr + snapshots.stderr, "VBoxManage was never run"


def test_images_lists_the_default_image(agent):
    result = agent.run("images")

    assert (result.returncode, result.stdout) == (0, "IMAGE=debian-12 SIZE=2147483648\n")


def test_images_come_sorted_from_the_config(make_agent):
    agent = make_agent(simulated_images="ubuntu-24.04:3758096384, debian-12, alpine-3.20:104857600")

    result = agent.run("images")

    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "IMAGE=alpine-3.20 SIZE=104857600",
        "IMAGE=debian-12 SIZE=2147483648",
        "IMAGE=ubuntu-24.04 SIZE=3758096384",
    ]


@pytest.mark.parametrize("argv", [["capabilities", "x"], ["images", "alice_dev"]])
def test_host_commands_take_no_arguments(agent, argv):
    result = agent.run(*argv)

    assert result.returncode == 2 and "takes no arguments" in result.stderr


# --------------------------------------------------------------------------- create options


def test_create_records_every_option(agent, keys):
    result = agent.run(
        "create", "alice_dev",
        "--ssh-key", b64(keys[0]),
        "--memory", "4096",
        "--image", "debian-12",
        "--user", "alice",
        "--disk", "40",
        "--ssh-key", b64(keys[1]),
        "--vcpus", "4",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "Image debian-12, 4 vCPUs, 4096 MiB memory, 40 GiB disk, user alice with 2 SSH keys" in result.stdout
    record = agent.record("alice_dev")
    assert {key: record[key] for key in ("image", "vcpus", "memory", "disk", "user", "ssh_keys")} == {
        "image": "debian-12",
        "vcpus": 4,
        "memory": 4096,
        "disk": 40,
        "user": "alice",
        "ssh_keys": keys,
    }
    assert record["state"] == "running" and record["snapshots"] == []


def test_create_without_options_uses_the_configured_defaults(make_agent):
    agent = make_agent(
        simulated_images="debian-12,tiny", default_image="tiny", default_vcpus=1, default_memory=512, default_disk=3
    )

    assert agent.create("alice_dev") == (6000, 5000)

    record = agent.record("alice_dev")
    assert (record["image"], record["vcpus"], record["memory"], record["disk"]) == ("tiny", 1, 512, 3)
    assert (record["user"], record["ssh_keys"]) == ("devbench", [])


def test_the_largest_and_smallest_sizes_are_accepted(agent):
    agent.create("alice_big", "--vcpus", "64", "--memory", "262144", "--disk", "4096")
    agent.create("alice_small", "--vcpus", "1", "--memory", "128", "--disk", "1", "--user", "_" + "a" * 31)

    assert [agent.record("alice_big")[k] for k in ("vcpus", "memory", "disk")] == [64, 262144, 4096]
    assert [agent.record("alice_small")[k] for k in ("vcpus", "memory", "disk")] == [1, 128, 1]


def test_thirty_two_ssh_keys_are_accepted(agent, keys):
    options = [part for _ in range(16) for key in keys for part in ("--ssh-key", b64(key))]

    agent.create("alice_dev", *options)

    assert len(agent.record("alice_dev")["ssh_keys"]) == 32


def _key_variants(key: str) -> dict[str, str]:
    kind, blob, _comment = key.split(" ", 2)
    return {
        "not base64": "ssh-ed25519 AAAA",
        "urlsafe base64": b64(key)[:-4] + "-_-_",
        "three padding signs": b64(key[:-1]) + "===",
        "two lines": b64(key + "\n" + key),
        "trailing newline": b64(key + "\n"),
        "options prefix": b64('command="id" ' + key),
        "type mismatch": b64(f"ssh-rsa {blob}"),
        "garbage blob": b64(f"{kind} QUFBQQ=="),
        "no blob": b64(kind),
        "control char in comment": b64(f"{kind} {blob} a\x1bb"),
        "too long": b64(f"{kind} {blob} " + "x" * 6200),
    }


BAD_OPTIONS = [
    ["--colour", "red"],
    ["--image"],
    ["--vcpus", "0"],
    ["--vcpus", "65"],
    ["--vcpus", "+4"],
    ["--vcpus", "-1"],
    ["--vcpus", "4.0"],
    ["--vcpus", " 4"],
    ["--vcpus", "٤"],
    ["--memory", "127"],
    ["--memory", "262145"],
    ["--disk", "0"],
    ["--disk", "4097"],
    ["--disk", "99999999"],
    ["--image", "../etc"],
    ["--image", ".hidden"],
    ["--image", "a" * 65],
    ["--image", "deb ian"],
    ["--user", "Alice"],
    ["--user", "1alice"],
    ["--user", "a" * 33],
    ["--user", "al;ce"],
    ["--vcpus", "2", "--vcpus", "2"],
    ["--user", "alice", "--user", "alice"],
    ["--IMAGE", "debian-12"],
    ["debian-12"],
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=lambda options: " ".join(options)[:40])
def test_bad_create_options_are_usage_errors_and_touch_nothing(agent, options):
    result = agent.run("create", "alice_dev", *options)

    assert result.returncode == 2, result.stderr
    assert "usage: devbench-agent" in result.stderr and result.stdout == ""
    assert not agent.state_dir.exists()


@pytest.mark.parametrize(
    "variant",
    [
        "not base64",
        "urlsafe base64",
        "three padding signs",
        "two lines",
        "trailing newline",
        "options prefix",
        "type mismatch",
        "garbage blob",
        "no blob",
        "control char in comment",
        "too long",
    ],
)
def test_a_bad_ssh_key_is_a_usage_error(agent, keys, variant):
    good, bad = b64(keys[0]), _key_variants(keys[0])[variant]

    result = agent.run("create", "alice_dev", "--ssh-key", good, "--ssh-key", bad)

    assert result.returncode == 2 and "bad --ssh-key" in result.stderr
    assert not agent.state_dir.exists()


def test_thirty_three_ssh_keys_are_too_many(agent, keys):
    result = agent.run("create", "alice_dev", *[part for _ in range(33) for part in ("--ssh-key", b64(keys[0]))])

    assert result.returncode == 2 and "at most 32 --ssh-key" in result.stderr
    assert not agent.state_dir.exists()


def test_an_image_the_host_lacks_fails_and_leaves_nothing(agent):
    result = agent.run("create", "alice_dev", "--image", "windows-11")

    assert result.returncode == 1
    assert result.stderr == "ERROR: image windows-11 not found on this host (images: debian-12)\n"
    assert agent.record("alice_dev") is None
    assert agent.create("alice_dev") == (6000, 5000)


# --------------------------------------------------------------------------- snapshots


def _snapshot_names(agent, name: str) -> list[str]:
    result = agent.run("snapshots", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in lines:
        assert re.fullmatch(r"SNAPSHOT=\S+ CREATED=\S+", line) and ISO_UTC.fullmatch(line.split("CREATED=")[1])
    return [line.split()[0].removeprefix("SNAPSHOT=") for line in lines]


def test_snapshot_list_restore_and_delete(agent):
    agent.create("alice_dev")
    assert _snapshot_names(agent, "alice_dev") == []

    first = agent.run("snapshot", "alice_dev", "clean")
    agent.run("snapshot", "alice_dev", "Before-Upgrade_2")

    assert (first.returncode, first.stdout.splitlines()[-1]) == (0, "Snapshot clean of alice_dev taken")
    assert _snapshot_names(agent, "alice_dev") == ["clean", "Before-Upgrade_2"]
    assert agent.status("alice_dev") == "running"

    restored = agent.run("restore", "alice_dev", "clean")

    assert restored.returncode == 0, restored.stderr
    assert "Snapshot clean of alice_dev restored" in restored.stdout.splitlines()
    assert restored.stdout.splitlines()[-1] == "Status: poweroff"
    assert agent.status("alice_dev") == "poweroff", "a running VM is stopped first and left stopped"
    assert agent.record("alice_dev")["restored"] == "clean"

    deleted = agent.run("delete-snapshot", "alice_dev", "clean")

    assert (deleted.returncode, deleted.stdout.splitlines()[-1]) == (0, "Snapshot clean of alice_dev deleted")
    assert _snapshot_names(agent, "alice_dev") == ["Before-Upgrade_2"]


def test_snapshot_errors_are_exit_1_with_the_protocol_messages(agent):
    agent.create("alice_dev")
    agent.run("snapshot", "alice_dev", "clean")

    again = agent.run("snapshot", "alice_dev", "clean")
    restore_missing = agent.run("restore", "alice_dev", "nope")
    delete_missing = agent.run("delete-snapshot", "alice_dev", "nope")

    assert (again.returncode, again.stderr) == (1, "ERROR: snapshot clean already exists\n")
    assert (restore_missing.returncode, restore_missing.stderr) == (1, "ERROR: snapshot nope not found\n")
    assert (delete_missing.returncode, delete_missing.stderr) == (1, "ERROR: snapshot nope not found\n")
    assert agent.status("alice_dev") == "running", "a failed restore does not stop the VM"
    assert _snapshot_names(agent, "alice_dev") == ["clean"]


@pytest.mark.parametrize(
    "argv",
    [["snapshots", "alice_ghost"], ["snapshot", "alice_ghost", "s"], ["restore", "alice_ghost", "s"],
     ["delete-snapshot", "alice_ghost", "s"]],
)  # fmt: skip
def test_snapshot_commands_on_a_missing_vm_exit_3(agent, argv):
    result = agent.run(*argv)

    assert (result.returncode, result.stderr) == (3, "ERROR: VM alice_ghost not found\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["snapshot", "alice_dev"],
        ["snapshot", "alice_dev", "a", "b"],
        ["snapshot", "alice_dev", "-s"],
        ["snapshot", "alice_dev", "_s"],
        ["snapshot", "alice_dev", "s.1"],
        ["restore", "alice_dev", "s" * 33],
        ["delete-snapshot", "alice_dev", "s;id"],
        ["snapshot", "x;id", "s"],
        ["snapshots"],
        ["snapshots", "alice_dev", "s"],
    ],
)
def test_bad_snapshot_arguments_are_usage_errors(agent, argv):
    result = agent.run(*argv)

    assert result.returncode == 2 and "usage: devbench-agent" in result.stderr
    assert not agent.state_dir.exists()


def test_the_longest_snapshot_name_is_accepted(agent):
    agent.create("alice_dev")

    assert agent.run("snapshot", "alice_dev", "s" * 32).returncode == 0


def test_delete_removes_the_snapshots(agent):
    agent.create("alice_dev")
    agent.run("snapshot", "alice_dev", "clean")

    assert agent.run("delete", "alice_dev").returncode == 0
    agent.create("alice_dev")

    assert _snapshot_names(agent, "alice_dev") == []


def test_fail_commands_covers_snapshot_commands(make_agent):
    agent = make_agent(fail_commands=["snapshot", "restore"])
    make_agent(state_dir=agent.state_dir).create("alice_dev")

    snapshot = agent.run("snapshot", "alice_dev", "clean")

    assert snapshot.returncode == 1 and "simulated failure" in snapshot.stderr
    assert _snapshot_names(agent, "alice_dev") == []


# --------------------------------------------------------------------------- doctor and libvirt settings


def test_doctor_of_the_simulated_backend_needs_nothing(agent):
    result = agent.run("doctor")

    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "All good: this host can run DevBench VMs with the simulated backend."


def test_doctor_names_what_a_libvirt_host_lacks_in_plain_words(make_agent, tmp_path):
    agent = make_agent(
        backend="libvirt",
        virsh="/nonexistent/virsh",
        qemu_img="/nonexistent/qemu-img",
        images_dir=tmp_path / "no-images",
        disk_dir=tmp_path / "disks",
    )

    result = agent.run("doctor")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "MISSING  /nonexistent/virsh is not installed (apt-get install libvirt-clients)" in lines
    assert "MISSING  /nonexistent/qemu-img is not installed (apt-get install qemu-utils)" in lines
    assert any(line.startswith(f"MISSING  IMAGES_DIR {tmp_path / 'no-images'} does not exist") for line in lines)
    assert lines[-1].endswith("problems: fix the MISSING lines above.")
    assert not (tmp_path / "disks").exists(), "doctor only looks"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"vnc_port_base": 5000}, "libvirt's VNC ports start at 5900"),
        ({"forward_address": "localhost"}, "bad FORWARD_ADDRESS"),
        ({"accel": "hvf"}, "bad ACCEL"),
    ],
)
def test_bad_libvirt_settings_are_config_errors(make_agent, config, message):
    agent = make_agent(backend="libvirt", **config)

    result = agent.run("list")

    assert result.returncode == 1 and message in result.stderr
