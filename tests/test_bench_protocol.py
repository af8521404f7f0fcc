"""The remote protocol as pure functions: quoting, both output formats, the status mapping."""

from __future__ import annotations

import shlex

import pytest

from benches.provisioning import protocol

HUMAN_CREATE = """Cloning VM...
PROGRESS=50
VM alice_test-vm Created and Ready
SSH Port: 6004
VNC Port: 5004
"""

MACHINE_CREATE = """cloning
VM_NAME=alice_test-vm
SSH_PORT=6010
VNC_PORT=5010
VM_IP=10.0.2.15
"""


def test_build_command_quotes_every_argument():
    line = protocol.build_command("/opt/devbench/provision.sh", "create", "alice_test-vm")
    assert line == "/opt/devbench/provision.sh create alice_test-vm"
    assert shlex.split(line) == ["/opt/devbench/provision.sh", "create", "alice_test-vm"]


@pytest.mark.parametrize(
    "vm_name",
    ["alice_x;id", "alice_$(id)", "alice_`id`", "alice_a\nb", "alice_a b", "alice_é", "alice_" + "x" * 49,
     "alice_", "_x", "alice_x'y", "alice_x|y", "alice_x&y", "../etc", ""],
)
def test_build_command_refuses_names_that_could_inject(vm_name):
    with pytest.raises(protocol.ProtocolError):
        protocol.build_command("/opt/provision.sh", "create", vm_name)


@pytest.mark.parametrize("command", ["rm", "create;id", "", "CREATE"])
def test_build_command_refuses_unknown_commands(command):
    with pytest.raises(protocol.ProtocolError):
        protocol.build_command("/opt/provision.sh", command, "alice_vm")


@pytest.mark.parametrize("script", ["/opt/x;id", "/opt/$(id)", "/opt/a b", ""])
def test_build_command_refuses_odd_script_paths(script):
    with pytest.raises(protocol.ProtocolError):
        protocol.build_command(script, "status", "alice_vm")


def test_list_command_has_no_vm_name():
    assert protocol.build_command("/opt/agent", "list") == "/opt/agent list"


def test_parse_human_create_output():
    result = protocol.parse_create_output(HUMAN_CREATE)
    assert result == protocol.CreateResult(vm_name="alice_test-vm", ssh_port=6004, vnc_port=5004, vm_ip=None)


def test_parse_machine_create_output():
    result = protocol.parse_create_output(MACHINE_CREATE)
    assert result == protocol.CreateResult(vm_name="alice_test-vm", ssh_port=6010, vnc_port=5010, vm_ip="10.0.2.15")


def test_keys_count_only_at_the_start_of_a_line_and_the_last_port_wins():
    """A long create (thousands of lines of the script's own output) with keys quoted inside
    lines, which are not the script's answer, and a port printed twice."""
    noise = "".join(f"step {i}: echo SSH Port: 1{i} VNC_PORT=2{i} VM_NAME=x{i} VM_IP=9.9.9.{i}\n" for i in range(3000))
    output = ("xSSH Port: 7000\nSSH Port: 6001\n" + noise + " VM_NAME=indented\nVM_NAME=alice_vm\n"
              "SSH_PORT=6002\n  VNC Port: 5999\nVNC Port: 5002\nVM_IP=10.0.0.7\nxVNC_PORT=5998\n")
    result = protocol.parse_create_output(output)
    assert result == protocol.CreateResult(vm_name="alice_vm", ssh_port=6002, vnc_port=5002, vm_ip="10.0.0.7")
    assert protocol.parse_create_output("VM_NAME=a_b\nxVM_NAME=c_d\nSSH Port: 1\nVNC Port: 2").vm_name == "a_b"
    assert protocol.parse_create_output("SSH Port: 1\nVNC Port: 2\nVM a_b Created and Ready").vm_name == "a_b"
    assert protocol.parse_status_output("Status: running\nxStatus: stopped\n", 0) == "active"
    assert protocol.parse_status_output("xSTATUS=running\n", 0) == "unknown"
    assert protocol.last_progress("PROGRESS=30\nxPROGRESS=90\n") == 30


@pytest.mark.parametrize(
    ("output", "missing"),
    [("VM x Created and Ready\n", "SSH port and VNC port"), ("SSH Port: 6000\n", "VNC port"),
     ("VNC_PORT=5000\n", "SSH port")],
)
def test_create_without_ports_is_a_protocol_error(output, missing):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_create_output(output)
    assert str(info.value) == f"The create script exited 0 but printed no {missing}"


@pytest.mark.parametrize(
    ("output", "exit_code", "status"),
    [
        ("Status: running\n", 0, "active"),
        ("STATUS=active\n", 0, "active"),
        ("Status: inactive\n", 0, "inactive"),
        ("STATUS=inactive\n", 0, "inactive"),
        ("Status: stopped\n", 0, "inactive"),
        ("STATUS=poweroff\n", 0, "inactive"),
        ("Status: saved\n", 0, "inactive"),
        ("Status: paused\n", 0, "inactive"),
        ("Status: aborted\n", 0, "inactive"),
        ("Status: starting\n", 0, "unknown"),
        ("nothing useful\n", 0, "unknown"),
        ("Status: running\n", 1, "unknown"),
        ("", None, "unknown"),
        ("the VM is inactive\nStatus: inactive\n", 0, "inactive"),
    ],
)
def test_status_mapping_compares_whole_words(output, exit_code, status):
    assert protocol.parse_status_output(output, exit_code) == status


def test_parse_list_output():
    output = "VM_NAME=alice_a STATUS=running SSH_PORT=6000 VNC_PORT=5000\nVM_NAME=bob_b STATUS=poweroff\ngarbage\n"
    assert protocol.parse_list_output(output) == {"alice_a": "active", "bob_b": "inactive"}


def test_last_progress():
    assert protocol.last_progress("PROGRESS=10\nx\nPROGRESS=40\n") == 40
    assert protocol.last_progress("no progress") is None


@pytest.mark.parametrize(
    ("output", "parsed"),
    [("CAPABILITIES=list images plans ssh-keys snapshots\nBACKEND=libvirt\n",
      (["images", "list", "plans", "snapshots", "ssh-keys"], "libvirt")),
     ("CAPABILITIES=snapshots teleport\n", (["snapshots"], "")),  # unknown words are left out
     ("CAPABILITIES=\nBACKEND=simulated\n", ([], "simulated")),
     ("something else\nBACKEND=Bad;name\n", ([], "")),
     ("", ([], ""))],
)
def test_capabilities_output_is_parsed_to_known_words(output, parsed):
    assert protocol.parse_capabilities(output) == parsed


def test_the_capabilities_command_line_has_no_vm_name():
    assert protocol.build_command("/opt/agent", "capabilities") == "/opt/agent capabilities"
