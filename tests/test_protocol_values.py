"""The values a create prints are checked before they are stored: ports as ports, VM_IP as an IP
address, the VM name as a name DevBench builds; anything else refuses the create's result."""

from __future__ import annotations

import pytest

from benches import services
from benches.models import DevBench
from benches.provisioning import protocol, transport

PORTS = "SSH_PORT=6010\nVNC_PORT=5010\n"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (PORTS + "VM_IP=<img src=x onerror=alert(1)>\n",
         "The create script printed an invalid VM_IP: '<img src=x onerror=alert(1)>'"),
        (PORTS + "VM_IP=10.0.0.256\n", "The create script printed an invalid VM_IP: '10.0.0.256'"),
        (PORTS + "VM_IP=fe80::1%eth0\n", "The create script printed an invalid VM_IP: 'fe80::1%eth0'"),
        (PORTS + "VM_IP=example.com\n", "The create script printed an invalid VM_IP: 'example.com'"),
        ("SSH Port: 0\nVNC Port: 5000\n", "The create script printed an invalid SSH port: '0'"),
        ("SSH_PORT=6000\nVNC_PORT=99999\n", "The create script printed an invalid VNC port: '99999'"),
        ("SSH_PORT=60a1\nVNC_PORT=5000\n", "The create script printed an invalid SSH port: '60a1'"),
        ("SSH_PORT=\u0666\u0660\nVNC_PORT=5000\n", "The create script printed an invalid SSH port: '\u0666\u0660'"),
        ("VM_NAME=$(id)\n" + PORTS, "The create script printed an invalid VM name: '$(id)'"),
        (PORTS + "VM_IP=" + "1" * 100 + "\n",
         "The create script printed an invalid VM_IP: '" + "1" * 64 + "…'"),
    ],
)
def test_a_value_that_is_not_what_its_key_says_is_refused(output, message):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.parse_create_output(output)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("line", "stored"),
    [("VM_IP=192.0.2.10", "192.0.2.10"), ("VM_IP=2001:DB8:0:0::1", "2001:db8::1"), ("VM_IP=::1", "::1")],
)
def test_an_ip_address_is_accepted_as_written_by_python(line, stored):
    assert protocol.parse_create_output(PORTS + line + "\n").vm_ip == stored


@pytest.fixture
def script_host(ssh_agent, tmp_path):
    """An SSH host whose script's create prints ``output`` and exits 0."""
    transport.close_all()
    host, _control = ssh_agent("hv1")

    def make(output: str):
        script = tmp_path / "create-script"
        script.write_text("#!/bin/sh\ncat <<'EOF'\n" + output + "EOF\n")
        script.chmod(0o755)
        host.script_path = str(script)
        host.save(update_fields=["script_path"])
        return host

    yield make
    transport.close_all()


@pytest.mark.django_db(transaction=True)
def test_a_create_printing_html_as_its_ip_leaves_the_bench_in_error(script_host, user, run_jobs, user_client):
    script_host("VM_NAME=alice_web\n" + PORTS + "VM_IP=<img src=x onerror=alert(1)>\n")
    bench = services.create_bench(user=user, name="web")
    run_jobs()
    bench = DevBench.objects.get(pk=bench.pk)
    assert (bench.status, bench.vm_ip, bench.ssh_info, bench.vnc_info) == ("error", None, "", "")
    assert bench.last_error == "The create script printed an invalid VM_IP: '<img src=x onerror=alert(1)>'"
    body = user_client.get(f"/api/v1/benches/{bench.pk}/").json()
    assert (body["status"], body["vmIp"], body["lastError"]) == ("error", None, bench.last_error)


@pytest.mark.django_db(transaction=True)
def test_a_create_printing_an_ip_stores_it(script_host, user, run_jobs, user_client):
    script_host("VM_NAME=alice_web\n" + PORTS + "VM_IP=192.0.2.10\n")
    bench = services.create_bench(user=user, name="web")
    run_jobs()
    body = user_client.get(f"/api/v1/benches/{bench.pk}/").json()
    assert (body["status"], body["vmIp"], body["sshInfo"], body["vncInfo"]) == ("active", "192.0.2.10", "6010", "5010")


def test_an_empty_vm_ip_is_no_address():
    assert protocol.parse_create_output(PORTS + "VM_IP=\n").vm_ip is None
