"""The host agent (hostagent/devbench-agent) as DevBench sees it: run as a subprocess with a temp
config, through a fake VBoxManage for the VirtualBox backend, and through a real OpenSSH sshd."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from tests.agent_fixtures import HUMAN_CREATED, HUMAN_SSH, HUMAN_VNC, search
from tests.sshd import (
    AGENT_CONFIG_KEYS,
    AGENT_PATH,
    agent_python,
    make_agent_script,
    process_alive,
    require_sshd,
    session_processes,
)

# --------------------------------------------------------------------------- create and its output


def test_create_prints_the_original_human_lines_and_distinct_ports(agent):
    first = agent.run("create", "alice_dev")
    second = agent.run("create", "bob_dev-2")

    assert first.returncode == 0 and second.returncode == 0
    assert search(HUMAN_CREATED, first.stdout) == "alice_dev"
    assert search(HUMAN_CREATED, second.stdout) == "bob_dev-2"
    ports = [(int(search(HUMAN_SSH, r.stdout)), int(search(HUMAN_VNC, r.stdout))) for r in (first, second)]
    assert ports == [(6000, 5000), (6001, 5001)]
    assert first.stderr == ""


def test_create_reports_progress_lines_from_10_to_100(agent):
    result = agent.run("create", "alice_dev")

    lines = result.stdout.splitlines()
    progress = [int(m.group(1)) for line in lines if (m := re.fullmatch(r"PROGRESS=(\d+)", line))]
    assert progress == list(range(10, 101, 10))
    assert lines[1] == "Cloning base image..."
    assert "Configuring network..." in lines
    assert lines.index("Configuring network...") > lines.index("PROGRESS=100")


def test_create_output_streams_line_by_line(make_agent):
    agent = make_agent(step_delay=0.05)
    process = agent.popen("create", "alice_dev")
    try:
        first_line = process.stdout.readline()
        assert first_line == "Creating VM alice_dev (simulated)\n"
        assert process.poll() is None, "the first line must arrive while the agent is still working"
    finally:
        rest, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "VM alice_dev Created and Ready" in rest


def test_machine_format_prints_key_value_lines(make_agent):
    agent = make_agent(output_format="machine", host_ip="192.0.2.7")

    created = agent.run("create", "alice_dev")
    status = agent.run("status", "alice_dev")

    assert created.returncode == 0
    lines = created.stdout.splitlines()
    assert lines[-4:] == ["VM_NAME=alice_dev", "SSH_PORT=6000", "VNC_PORT=5000", "VM_IP=192.0.2.7"]
    assert "Created and Ready" not in created.stdout
    assert status.returncode == 0
    assert "STATUS=running" in status.stdout.splitlines()
    assert "Status:" not in status.stdout


def test_omit_ports_creates_without_printing_ports(make_agent):
    agent = make_agent(omit_ports=True)

    result = agent.run("create", "alice_dev")

    assert result.returncode == 0
    assert search(HUMAN_CREATED, result.stdout) == "alice_dev"
    assert "Port" not in result.stdout.split("Starting VM")[-1]
    assert agent.status("alice_dev") == "running"


def test_create_lines_adds_numbered_timestamped_lines(make_agent):
    agent = make_agent(create_lines=50)
    before = time.time()

    result = agent.run("create", "alice_dev")

    matches = [re.fullmatch(r"line (\d+) (\d+\.\d{3})", line) for line in result.stdout.splitlines()]
    numbered = [(int(m.group(1)), float(m.group(2))) for m in matches if m]
    assert [number for number, _ in numbered] == list(range(1, 51))
    stamps = [stamp for _, stamp in numbered]
    assert stamps == sorted(stamps) and before - 1 <= stamps[0] <= time.time() + 1


def test_create_of_an_existing_vm_fails_clearly_and_keeps_it(agent):
    agent.create("alice_dev")

    again = agent.run("create", "alice_dev")

    assert again.returncode == 1
    assert "VM alice_dev already exists" in again.stderr
    assert agent.record("alice_dev")["ssh_port"] == 6000
    assert agent.status("alice_dev") == "running"


def test_ten_concurrent_creates_get_unique_ports(make_agent):
    agent = make_agent(step_delay=0.01)
    names = [f"user{chr(97 + i)}_bench{i}" for i in range(10)]

    processes = [agent.popen("create", name) for name in names]
    results = [(process, *process.communicate(timeout=30)) for process in processes]

    assert all(process.returncode == 0 for process, _, _ in results), [err for _, _, err in results]
    ssh_ports = sorted(int(search(HUMAN_SSH, out)) for _, out, _ in results)
    vnc_ports = sorted(int(search(HUMAN_VNC, out)) for _, out, _ in results)
    assert ssh_ports == list(range(6000, 6010))
    assert vnc_ports == list(range(5000, 5010))


def test_ports_of_a_deleted_vm_are_reused_and_bases_are_configurable(make_agent):
    agent = make_agent(ssh_port_base=7100, vnc_port_base=7000)
    assert agent.create("alice_one") == (7100, 7000)
    assert agent.create("alice_two") == (7101, 7001)

    assert agent.run("delete", "alice_one").returncode == 0

    assert agent.create("alice_three") == (7100, 7000)


# --------------------------------------------------------------------------- status, transitions, delete


@pytest.mark.parametrize("state", ["running", "stopped", "poweroff", "saved", "paused", "aborted"])
def test_status_prints_the_vm_state(agent, state):
    agent.create("alice_dev")
    record = agent.record("alice_dev")
    record["state"] = state
    (agent.state_dir / "vms" / "alice_dev.json").write_text(json.dumps(record))

    result = agent.run("status", "alice_dev")

    assert result.returncode == 0
    assert result.stdout.splitlines() == [f"Status: {state}"]


def test_stop_start_and_activate_move_the_vm_between_states(agent):
    agent.create("alice_dev")

    stop = agent.run("stop", "alice_dev")
    assert stop.returncode == 0 and "Status: poweroff" in stop.stdout
    assert agent.status("alice_dev") == "poweroff"

    stop_again = agent.run("stop", "alice_dev")
    assert stop_again.returncode == 0 and "already stopped" in stop_again.stdout

    start = agent.run("start", "alice_dev")
    assert start.returncode == 0 and "Status: running" in start.stdout
    assert search(HUMAN_SSH, start.stdout) == "6000"
    assert agent.status("alice_dev") == "running"

    start_again = agent.run("start", "alice_dev")
    assert start_again.returncode == 0 and "already running" in start_again.stdout

    agent.run("stop", "alice_dev")
    activate = agent.run("activate", "alice_dev")
    assert activate.returncode == 0 and "VM alice_dev activated" in activate.stdout
    assert agent.status("alice_dev") == "running"

    activate_again = agent.run("activate", "alice_dev")
    assert activate_again.returncode == 0 and "already running" in activate_again.stdout


@pytest.mark.parametrize("command", ["start", "stop", "activate"])
def test_commands_on_a_missing_vm_exit_3(agent, command):
    result = agent.run(command, "alice_ghost")

    assert result.returncode == 3
    assert "VM alice_ghost not found" in result.stderr


def test_delete_then_status_is_notfound_with_exit_3(agent):
    agent.create("alice_dev")

    deleted = agent.run("delete", "alice_dev")
    status = agent.run("status", "alice_dev")

    assert deleted.returncode == 0 and "VM alice_dev deleted" in deleted.stdout
    assert status.returncode == 3
    assert status.stdout.splitlines() == ["Status: notfound"]
    assert agent.record("alice_dev") is None


def test_delete_of_a_missing_vm_succeeds_so_retries_are_safe(agent):
    result = agent.run("delete", "alice_ghost")

    assert result.returncode == 0
    assert "already deleted" in result.stdout


def test_a_vm_whose_creator_was_killed_reports_aborted_and_can_be_deleted(agent):
    agent.create("alice_dev")
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = agent.record("alice_dev")
    record.update(state="creating", pid=dead.pid)
    (agent.state_dir / "vms" / "alice_dev.json").write_text(json.dumps(record))

    assert agent.status("alice_dev") == "aborted"
    assert agent.run("delete", "alice_dev").returncode == 0
    assert agent.status("alice_dev") == "notfound"


# --------------------------------------------------------------------------- list


def test_list_prints_one_line_per_vm_and_filters_by_prefix(agent):
    agent.create("alice_one")
    agent.create("alice_two")
    agent.create("bob_one")
    agent.run("stop", "alice_two")

    everything = agent.run("list")
    alices = agent.run("list", "alice_")

    assert everything.returncode == 0
    assert everything.stdout.splitlines() == [
        "VM_NAME=alice_one STATUS=running SSH_PORT=6000 VNC_PORT=5000",
        "VM_NAME=alice_two STATUS=poweroff SSH_PORT=6001 VNC_PORT=5001",
        "VM_NAME=bob_one STATUS=running SSH_PORT=6002 VNC_PORT=5002",
    ]
    assert alices.stdout.splitlines() == everything.stdout.splitlines()[:2]


def test_list_with_no_vms_prints_nothing(agent):
    result = agent.run("list")

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# --------------------------------------------------------------------------- failures, hangs, signals


@pytest.mark.parametrize("command", ["create", "status", "stop", "delete", "list"])
def test_fail_commands_exit_1_with_output_and_an_error_line(make_agent, command):
    agent = make_agent(fail_commands=[command])
    if command != "create":
        agent_ok = make_agent(state_dir=agent.state_dir)
        agent_ok.create("alice_dev")

    result = agent.run(command, "alice_dev") if command != "list" else agent.run("list")

    assert result.returncode == 1
    assert result.stdout.strip(), "some output comes before the failure"
    assert "simulated failure" in result.stderr
    expected = "notfound" if command == "create" else "running"
    assert make_agent(state_dir=agent.state_dir).status("alice_dev") == expected


@pytest.mark.parametrize(
    ("command", "signum"), [("create", signal.SIGTERM), ("create", signal.SIGHUP), ("delete", signal.SIGTERM)]
)
def test_hang_commands_hang_until_a_signal_stops_them_promptly(make_agent, command, signum):
    agent = make_agent(hang_commands=[command])
    if command == "delete":
        make_agent(state_dir=agent.state_dir).create("alice_dev")
    process = agent.popen(command, "alice_dev")
    assert process.stdout.readline().strip()
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.5)

    started = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=5)

    assert time.monotonic() - started < 1.5
    assert process.returncode == 128 + signum
    assert signal.Signals(signum).name in stderr
    expected = "notfound" if command == "create" else "running"
    assert make_agent(state_dir=agent.state_dir).status("alice_dev") == expected
    assert not list((agent.state_dir / "vms").glob("*.tmp*"))


def test_sigterm_during_a_slow_create_leaves_no_half_made_vm(make_agent):
    agent = make_agent(step_delay=0.2)
    process = agent.popen("create", "alice_dev")
    while "PROGRESS=10" not in process.stdout.readline():
        pass
    assert agent.record("alice_dev")["state"] == "creating"

    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=5)

    assert process.returncode == 143
    assert agent.record("alice_dev") is None
    assert make_agent(state_dir=agent.state_dir).create("alice_dev") == (6000, 5000)


# --------------------------------------------------------------------------- argument validation

BAD_NAMES = [
    "x;id",
    "alice_$(id)",
    "alice_`id`",
    "alice_a\nb",
    "alice_a b",
    "alice_bänch",
    "alice_" + "a" * 49,
    "",
    "alice",
    "alice_",
    "_bench",
    "al1ce_bench",
    "alice_../../etc",
    "alice_x;rm -rf",
    "-alice_x",
    "alice_x\n",
]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("command", ["create", "delete"])
def test_invalid_vm_names_exit_2_and_change_nothing(agent, name, command):
    result = agent.run(command, name)

    assert result.returncode == 2
    assert "invalid VM name" in result.stderr
    assert result.stdout == ""
    assert not agent.state_dir.exists()


def test_longest_valid_name_is_accepted(agent):
    assert agent.run("create", "alice_" + "a" * 48).returncode == 0


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["destroy", "alice_dev"],
        ["create"],
        ["create", "alice_dev", "extra"],
        ["list", "bad prefix"],
        ["list", "a", "b"],
        ["CREATE", "alice_dev"],
    ],
)
def test_usage_errors_exit_2(agent, argv):
    result = agent.run(*argv)

    assert result.returncode == 2
    assert "usage: devbench-agent" in result.stderr
    assert not agent.state_dir.exists()


# --------------------------------------------------------------------------- configuration


def test_config_is_read_from_home_when_no_env_names_it(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "devbench-agent.conf").write_text(
        "# operator settings\nSTATE_DIR=~/vms\nSTEP_DELAY = 0\nOUTPUT_FORMAT='machine'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEVBENCH_AGENT_CONFIG"} | {"HOME": str(home)}

    result = subprocess.run(
        [agent_python(), str(AGENT_PATH), "create", "alice_dev"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "VM_NAME=alice_dev" in result.stdout
    assert (home / "vms" / "vms" / "alice_dev.json").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("BACKEND=xen\n", "bad BACKEND"),
        ("STEP_DELAY=-1\n", "bad STEP_DELAY"),
        ("OUTPUT_FORMT=machine\n", "unknown setting"),
        ("FAIL_COMMANDS=create,explode\n", "unknown command"),
        ("SSH_PORT_BASE=70000\n", "bad SSH_PORT_BASE"),
    ],
)
def test_a_bad_config_fails_with_the_line_named(tmp_path, content, message):
    conf = tmp_path / "agent.conf"
    conf.write_text(content)

    result = subprocess.run(
        [agent_python(), str(AGENT_PATH), "status", "alice_dev"],
        capture_output=True,
        text=True,
        env={**os.environ, "DEVBENCH_AGENT_CONFIG": str(conf)},
        timeout=30,
        check=False,
    )

    assert result.returncode == 1
    assert message in result.stderr and f"{conf}:1" in result.stderr


def test_a_missing_named_config_file_is_an_error(tmp_path):
    result = subprocess.run(
        [agent_python(), str(AGENT_PATH), "status", "alice_dev"],
        capture_output=True,
        text=True,
        env={**os.environ, "DEVBENCH_AGENT_CONFIG": str(tmp_path / "nope.conf")},
        timeout=30,
        check=False,
    )

    assert result.returncode == 1 and "does not exist" in result.stderr


@pytest.fixture
def agent_module(monkeypatch):
    """hostagent/devbench-agent imported as a module, for its pure functions."""
    loader = importlib.machinery.SourceFileLoader("devbench_agent", str(AGENT_PATH))
    spec = importlib.util.spec_from_loader("devbench_agent", loader)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "devbench_agent", module)
    loader.exec_module(module)
    return module


def test_fixture_knows_every_agent_config_key(agent_module):
    assert set(agent_module.CONFIG_KEYS) == set(AGENT_CONFIG_KEYS)
    with pytest.raises(TypeError, match="unknown agent config key"):
        make_agent_script("/nonexistent-never-written", step_dleay=1)


# --------------------------------------------------------------------------- VirtualBox backend (fake VBoxManage)

FAKE_VBOXMANAGE = '''\
"""Test double of VBoxManage: VMs in a JSON file, every argv appended to a log."""
import json, os, sys, time, uuid

state_path, log_path = os.environ["FAKE_VBOX_STATE"], os.environ["FAKE_VBOX_LOG"]
argv = sys.argv[1:]
with open(log_path, "a") as log:
    log.write(json.dumps(argv) + "\\n")
vms = json.load(open(state_path)) if os.path.exists(state_path) else {}


def save():
    with open(state_path, "w") as handle:
        json.dump(vms, handle)


def need(name):
    if name not in vms:
        sys.stderr.write(f"VBoxManage: error: Could not find a registered machine named '{name}'\\n")
        sys.exit(1)
    return vms[name]


command = argv[0]
if command == "list" and argv[1:] == ["vms"]:
    for name, vm in vms.items():
        print(f'"{name}" {{{vm["uuid"]}}}')
elif command == "showvminfo":
    vm = need(argv[1])
    print(f'name="{argv[1]}"')
    print(f'VMState="{vm["state"]}"')
    for index, rule in enumerate(vm["natpf"]):
        print(f'Forwarding({index})="{rule}"')
    print(f'vrde="{"on" if vm["vrdeport"] else "off"}"')
    print(f'vrdeport={vm["vrdeport"] or -1}')
elif command == "clonevm":
    need(argv[1])
    name = argv[argv.index("--name") + 1]
    for percent in range(0, 101, 10):
        sys.stderr.write(f"{percent}%...")
        sys.stderr.flush()
        if percent == 30 and os.environ.get("FAKE_VBOX_FAIL") == "clonevm":
            sys.stderr.write("\\nVBoxManage: error: Could not create the clone medium (VERR_DISK_FULL)\\n")
            sys.exit(1)
    sys.stderr.write("\\n")
    vms[name] = {"uuid": str(uuid.uuid4()), "state": "poweroff", "natpf": [], "vrdeport": 0}
    save()
    print(f'Machine has been successfully cloned as "{name}"')
elif command == "modifyvm":
    vm = need(argv[1])
    if "--natpf1" in argv:
        vm["natpf"].append(argv[argv.index("--natpf1") + 1])
    if "--vrdeport" in argv:
        vm["vrdeport"] = int(argv[argv.index("--vrdeport") + 1])
    save()
elif command == "startvm":
    need(argv[1])["state"] = "running"
    save()
    print(f'VM "{argv[1]}" has been successfully started.')
elif command == "controlvm":
    vm = need(argv[1])
    action = argv[2]
    if action == "poweroff" or (action == "acpipowerbutton" and not os.environ.get("FAKE_VBOX_IGNORE_ACPI")):
        vm["state"] = "poweroff"
    elif action == "resume":
        vm["state"] = "running"
    save()
elif command == "discardstate":
    need(argv[1])["state"] = "poweroff"
    save()
elif command == "unregistervm":
    need(argv[1])
    del vms[argv[1]]
    save()
else:
    sys.stderr.write(f"VBoxManage: error: unknown command {argv}\\n")
    sys.exit(2)
'''


@dataclass
class FakeVBox:
    state_path: Path
    log_path: Path
    env: dict

    def add_vm(self, name: str, state: str = "poweroff", natpf: list | None = None, vrdeport: int = 0) -> None:
        vms = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        vms[name] = {
            "uuid": f"0b1c2d3e-0000-4000-8000-{len(vms):012d}",
            "state": state,
            "natpf": natpf or [],
            "vrdeport": vrdeport,
        }
        self.state_path.write_text(json.dumps(vms))

    def vms(self) -> dict:
        return json.loads(self.state_path.read_text())

    def calls(self) -> list[list[str]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def mutations(self) -> list[list[str]]:
        return [call for call in self.calls() if call[0] not in ("list", "showvminfo")]

    def clear_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def fake_vbox(tmp_path):
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    script = bin_dir / "VBoxManage"
    script.write_text(f"#!{sys.executable}\n" + FAKE_VBOXMANAGE)
    script.chmod(0o755)
    state_path, log_path = tmp_path / "vbox-state.json", tmp_path / "vbox-calls.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_VBOX_STATE": str(state_path),
        "FAKE_VBOX_LOG": str(log_path),
    }
    fake = FakeVBox(state_path=state_path, log_path=log_path, env=env)
    fake.add_vm("devbench-base")
    return fake


@pytest.fixture
def vbox_agent(make_agent, fake_vbox):
    return make_agent(extra_env=fake_vbox.env, backend="virtualbox", base_vm="devbench-base", stop_timeout=0.3)


def test_virtualbox_create_clones_forwards_ports_and_starts_headless(vbox_agent, fake_vbox):
    result = vbox_agent.run("create", "alice_dev")

    assert result.returncode == 0, result.stderr
    assert fake_vbox.mutations() == [
        ["clonevm", "devbench-base", "--name", "alice_dev", "--register", "--mode", "machine"],
        ["modifyvm", "alice_dev", "--natpf1", "ssh,tcp,,6000,,22"],
        ["modifyvm", "alice_dev", "--vrde", "on", "--vrdeport", "5000"],
        ["startvm", "alice_dev", "--type", "headless"],
    ]
    lines = result.stdout.splitlines()
    assert lines[-3:] == ["VM alice_dev Created and Ready", "SSH Port: 6000", "VNC Port: 5000"]
    assert [line for line in lines if line.startswith("PROGRESS=")] == [f"PROGRESS={p}" for p in range(0, 101, 10)]
    assert fake_vbox.vms()["alice_dev"]["state"] == "running"


def test_virtualbox_linked_clone_from_a_snapshot(make_agent, fake_vbox):
    agent = make_agent(extra_env=fake_vbox.env, backend="virtualbox", base_vm="devbench-base", snapshot="golden")

    assert agent.run("create", "alice_dev").returncode == 0

    assert fake_vbox.mutations()[0] == [
        "clonevm",
        "devbench-base",
        "--snapshot",
        "golden",
        "--options",
        "link",
        "--name",
        "alice_dev",
        "--register",
    ]


def test_virtualbox_ports_skip_those_of_existing_vms(vbox_agent, fake_vbox):
    fake_vbox.add_vm("legacy_vm", state="running", natpf=["ssh,tcp,,6000,,22"], vrdeport=5000)
    fake_vbox.add_vm("other_vm", state="poweroff", natpf=["web,tcp,,6001,,80"])

    assert vbox_agent.create("alice_dev") == (6002, 5001)
    assert vbox_agent.create("bob_dev") == (6003, 5002)


def test_virtualbox_status_maps_vmstate(vbox_agent, fake_vbox):
    fake_vbox.add_vm("alice_on", state="running")
    fake_vbox.add_vm("alice_off", state="poweroff")
    fake_vbox.add_vm("alice_odd", state="aborted-saved")

    assert vbox_agent.run("status", "alice_on").stdout.splitlines() == ["Status: running"]
    assert vbox_agent.run("status", "alice_off").stdout.splitlines() == ["Status: poweroff"]
    assert vbox_agent.status("alice_odd") == "aborted"
    missing = vbox_agent.run("status", "alice_ghost")
    assert (missing.returncode, missing.stdout) == (3, "Status: notfound\n")


def test_virtualbox_stop_falls_back_to_poweroff_when_acpi_is_ignored(make_agent, fake_vbox):
    fake_vbox.add_vm("alice_dev", state="running")
    agent = make_agent(
        extra_env={**fake_vbox.env, "FAKE_VBOX_IGNORE_ACPI": "1"},
        backend="virtualbox",
        base_vm="devbench-base",
        stop_timeout=0.3,
    )

    result = agent.run("stop", "alice_dev")

    assert result.returncode == 0, result.stderr
    assert fake_vbox.mutations() == [
        ["controlvm", "alice_dev", "acpipowerbutton"],
        ["controlvm", "alice_dev", "poweroff"],
    ]
    assert "did not shut down" in result.stdout
    assert "Status: poweroff" in result.stdout


def test_virtualbox_stop_start_activate(vbox_agent, fake_vbox):
    vbox_agent.create("alice_dev")
    fake_vbox.clear_log()

    assert vbox_agent.run("stop", "alice_dev").returncode == 0
    assert vbox_agent.run("stop", "alice_dev").returncode == 0
    assert vbox_agent.status("alice_dev") == "poweroff"
    activate = vbox_agent.run("activate", "alice_dev")
    assert activate.returncode == 0 and "SSH Port: 6000" in activate.stdout
    assert vbox_agent.run("activate", "alice_dev").returncode == 0

    assert fake_vbox.mutations() == [
        ["controlvm", "alice_dev", "acpipowerbutton"],
        ["startvm", "alice_dev", "--type", "headless"],
    ]


def test_virtualbox_delete_powers_off_then_unregisters(vbox_agent, fake_vbox):
    vbox_agent.create("alice_dev")
    fake_vbox.clear_log()

    deleted = vbox_agent.run("delete", "alice_dev")
    again = vbox_agent.run("delete", "alice_dev")

    assert deleted.returncode == 0 and again.returncode == 0
    assert fake_vbox.mutations() == [["controlvm", "alice_dev", "poweroff"], ["unregistervm", "alice_dev", "--delete"]]
    assert "alice_dev" not in fake_vbox.vms()
    assert vbox_agent.record("alice_dev") is None


def test_virtualbox_failed_clone_rolls_back(make_agent, fake_vbox):
    agent = make_agent(
        extra_env={**fake_vbox.env, "FAKE_VBOX_FAIL": "clonevm"}, backend="virtualbox", base_vm="devbench-base"
    )

    result = agent.run("create", "alice_dev")

    assert result.returncode == 1
    assert "clonevm failed" in result.stderr and "VERR_DISK_FULL" in result.stderr
    assert "PROGRESS=30" in result.stdout
    assert set(fake_vbox.vms()) == {"devbench-base"}
    assert agent.record("alice_dev") is None


def test_virtualbox_list_shows_managed_vms_only(vbox_agent, fake_vbox):
    vbox_agent.create("alice_dev")
    fake_vbox.add_vm("bob_old", state="saved", natpf=["ssh,tcp,,6100,,22"], vrdeport=5100)
    fake_vbox.add_vm("Windows 11", state="running")

    result = vbox_agent.run("list")

    assert result.stdout.splitlines() == [
        "VM_NAME=alice_dev STATUS=running SSH_PORT=6000 VNC_PORT=5000",
        "VM_NAME=bob_old STATUS=saved SSH_PORT=6100 VNC_PORT=5100",
    ]


# `VBoxManage showvminfo --machinereadable` as VBoxManageInfo.cpp writes it: strings quoted with
# \" and \\ escaped (a description may span lines), numbers bare, storage keys quoted, the NAT rules
# as name,proto,hostip,hostport,guestip,guestport, and vrdeport=-1 (the VRDE server's current
# port) with the configured one in vrdeports while the VM is off.
MACHINEREADABLE_SAMPLE = r"""name="alice_dev"
groups="/"
ostype="Debian (64-bit)"
UUID="0b1c2d3e-0000-4000-8000-000000000001"
CfgFile="C:\\VMs\\alice_dev\\alice_dev.vbox"
description="made by \"devbench\"
VMState=\"running\"
Forwarding(0)=\"evil,tcp,,1,,22\""
memory=2048
VMState="poweroff"
VMStateChangeTime="2026-12-04T03:00:00.000000000"
"SATA Controller-0-0"="C:\\VMs\\alice_dev\\disk.vdi"
natnet1="nat"
mtu="0"
Forwarding(0)="ssh,tcp,,6004,,22"
Forwarding(1)="web,tcp,127.0.0.1,8080,,80"
nic1="nat"
vrde="on"
vrdeport=-1
vrdeports="5004"
vrdeaddress=""
vrdeproperty[TCP/Ports]="5004"
vrdeproperty[VNCPassword]=<not set>
VideoMode="1024,768,32"@0,0 1
"""


def test_machinereadable_parsing_follows_the_documented_format(agent_module):
    info = agent_module.parse_machinereadable(MACHINEREADABLE_SAMPLE)

    assert info["VMState"] == "poweroff", "a line inside the quoted description is not a key"
    assert info["description"] == 'made by "devbench"\nVMState="running"\nForwarding(0)="evil,tcp,,1,,22"'
    assert info["CfgFile"] == r"C:\VMs\alice_dev\alice_dev.vbox"
    assert info["SATA Controller-0-0"] == r"C:\VMs\alice_dev\disk.vdi"
    assert (info["memory"], info["vrdeport"], info["vrdeproperty[VNCPassword]"]) == ("2048", "-1", "<not set>")
    assert agent_module.clean_state(info["VMState"]) == "poweroff"
    assert agent_module.vbox_ports(info) == (6004, 5004, {6004, 8080, 5004})


def test_virtualbox_without_vboxmanage_fails_cleanly(make_agent):
    agent = make_agent(backend="virtualbox", base_vm="devbench-base", vboxmanage="/nonexistent/VBoxManage")

    result = agent.run("create", "alice_dev")

    assert result.returncode == 1 and "cannot run /nonexistent/VBoxManage" in result.stderr


# --------------------------------------------------------------------------- through a real sshd


def test_agent_runs_over_sshd_with_the_pinned_host_key(sshd_host, tmp_path):
    script = sshd_host.make_agent_script(tmp_path, step_delay=0.01)
    client = sshd_host.connect()
    try:
        _, stdout, stderr = client.exec_command(f"{script} create alice_remote")
        first = stdout.readline()
        lines = [first.rstrip("\n"), *stdout.read().decode().splitlines()]
        code = stdout.channel.recv_exit_status()
    finally:
        client.close()

    assert code == 0, stderr.read()
    assert lines[0] == "Creating VM alice_remote (simulated)"
    assert lines[-3:] == ["VM alice_remote Created and Ready", "SSH Port: 6000", "VNC Port: 5000"]


def test_openssh_client_with_strict_host_key_checking_runs_the_agent(sshd_host, tmp_path):
    script = sshd_host.make_agent_script(tmp_path, output_format="machine")

    missing = sshd_host.run(str(script), "status", "alice_remote")
    bad = sshd_host.run(str(script), "status", "alice_$(id)")

    assert (missing.returncode, missing.stdout) == (3, "STATUS=notfound\n")
    assert bad.returncode == 2 and "invalid VM name" in bad.stderr
    assert not (tmp_path / "devbench-agent.state").exists()


def test_a_wrong_known_hosts_entry_is_refused(sshd_host, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "impostor")], check=True)
    impostor = " ".join((tmp_path / "impostor.pub").read_text().split()[:2])
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd_host.host}]:{sshd_host.port} {impostor}\n")

    result = subprocess.run(
        sshd_host.ssh_argv("true", known_hosts=wrong), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr

    with pytest.raises(paramiko.BadHostKeyException):
        _paramiko_with_known_hosts(sshd_host, wrong)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        _paramiko_with_known_hosts(sshd_host, empty)


def _paramiko_with_known_hosts(host, known_hosts: Path) -> None:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            host.host,
            port=host.port,
            username=host.username,
            key_filename=str(host.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    finally:
        client.close()


def test_parallel_sessions_on_one_connection_get_unique_ports(sshd_host, tmp_path):
    script = sshd_host.make_agent_script(tmp_path, output_format="machine", step_delay=0.01)
    client = sshd_host.connect()

    def create(index: int) -> tuple[int, str]:
        _, stdout, _ = client.exec_command(f"{script} create user_bench{index}")
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            results = list(pool.map(create, range(10)))
        _, stdout, _ = client.exec_command(f"{script} list user_")
        listing = stdout.read().decode().splitlines()
    finally:
        client.close()

    assert [code for code, _ in results] == [0] * 10
    assert sorted(int(re.search(r"SSH_PORT=(\d+)", out).group(1)) for _, out in results) == list(range(6000, 6010))
    assert len(listing) == 10 and all("STATUS=running" in line for line in listing)


def test_closing_the_ssh_channel_stops_a_hanging_agent(sshd_host, tmp_path):
    script = sshd_host.make_agent_script(tmp_path, hang_commands=["create"])
    state = tmp_path / "devbench-agent.state" / "vms" / "alice_hang.json"
    client = sshd_host.connect()
    try:
        channel = client.get_transport().open_session()
        channel.exec_command(f"{script} create alice_hang")
        assert channel.makefile("r").readline().startswith("Creating VM alice_hang")
        pid = json.loads(state.read_text())["pid"]
        assert process_alive(pid)

        channel.close()
        deadline = time.monotonic() + 5
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.close()

    assert not process_alive(pid)
    assert not state.exists(), "the interrupted create was rolled back"


def test_a_stopped_host_refuses_connections_and_comes_back(sshd_factory, tmp_path):
    host = sshd_factory()
    script = host.make_agent_script(tmp_path, hang_commands=["status"])
    client = host.connect()
    try:
        channel = client.get_transport().open_session()
        channel.exec_command(f"{script} status alice_dev")
        channel.makefile("r").readline()
        session_pids = session_processes(host.port)
        assert session_pids
        sshd_pid = host.pid

        with host.down():
            assert not process_alive(sshd_pid)
            assert not any(process_alive(pid) for pid in session_pids), "no stray agent or session processes"
            with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
                host.connect()
    finally:
        client.close()

    assert host.run("echo", "back").stdout == "back\n"


def test_require_sshd_skips_or_fails_when_sshd_is_missing(monkeypatch):
    import tests.sshd as sshd_module

    monkeypatch.setattr(sshd_module, "SSHD", Path("/nonexistent/sshd"))
    monkeypatch.delenv("DEVBENCH_REQUIRE_SSHD", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_sshd()
    monkeypatch.setenv("DEVBENCH_REQUIRE_SSHD", "1")
    with pytest.raises(pytest.fail.Exception, match="DEVBENCH_REQUIRE_SSHD=1"):
        require_sshd()


def test_agent_script_wrapper_runs_with_its_own_config(tmp_path):
    script = make_agent_script(tmp_path, output_format="machine", script_name="host-a")

    result = subprocess.run(
        [str(script), "create", "alice_dev"],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if k != "DEVBENCH_AGENT_CONFIG"},
        check=False,
    )

    assert result.returncode == 0
    assert "SSH_PORT=6000" in result.stdout.splitlines()
    assert (tmp_path / "host-a.state" / "vms" / "alice_dev.json").exists()
    assert script.read_text().startswith("#!/bin/sh\nDEVBENCH_AGENT_CONFIG=")
