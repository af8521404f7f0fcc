"""The admin's host form saves through the host services, as ``addhost`` and the API: what the
services refuse is shown on the form as its field's error and nothing is stored."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from benches.models import Host
from benches.provisioning import host_keys

ADD_URL = "/admin/benches/host/add/"
GOOD = {
    "name": "hv1", "address": "hv1.example.com", "port": 22, "username": "devbench", "identity_file": "",
    "private_key": "", "script_path": "/opt/devbench/provision.sh", "public_host": "", "jump_host": "",
    "capacity": 5, "enabled": "on", "host_key": "", "command_timeout": 600,
}
SCRIPT_PATH_ERROR = "Use only letters, digits and . _ / ~ + -"
ADDRESS_ERROR = "The address must not contain spaces or control characters"


def openssh_private_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def field_errors(response, field: str) -> list[str]:
    """The error texts the admin shows for ``field``."""
    errors = response.context["adminform"].form.errors
    return [str(message) for message in errors.get(field, [])]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [("address", "evil host;x", ADDRESS_ERROR), ("script_path", "/opt/x;reboot", SCRIPT_PATH_ERROR),
     ("script_path", "/opt/$(id)", SCRIPT_PATH_ERROR), ("jump_host", "a b", None),
     ("private_key", "not a key", None)],
)
def test_adding_a_host_with_a_bad_setting_shows_the_error_and_stores_nothing(admin_client_, field, value, error):
    response = admin_client_.post(ADD_URL, {**GOOD, field: value})
    assert response.status_code == 200  # the form again, with the error
    errors = field_errors(response, field)
    assert errors and (error is None or errors == [error])
    assert error is None or error in response.content.decode()
    assert not Host.objects.filter(name="hv1").exists()


def test_adding_a_good_host_saves_it_with_the_pasted_key_encrypted(admin_client_):
    key_text = openssh_private_key()
    response = admin_client_.post(ADD_URL, {**GOOD, "private_key": key_text})
    assert response.status_code == 302, response.content.decode()[:2000]
    host = Host.objects.get(name="hv1")
    assert (host.kind, host.address, host.script_path, host.capacity, host.enabled) == (
        "ssh", "hv1.example.com", "/opt/devbench/provision.sh", 5, True)
    assert host.private_key_encrypted and "PRIVATE KEY" not in host.private_key_encrypted
    assert host_keys.load_private_key(host) is not None
    page = admin_client_.get(f"/admin/benches/host/{host.pk}/change/").content.decode()
    assert key_text.splitlines()[1] not in page


@pytest.fixture
def hv1(db) -> Host:
    return Host.objects.create(name="hv1", kind=Host.Kind.SSH, address="hv1.example.com", username="devbench",
                               script_path="/opt/devbench/provision.sh", capacity=5)


def change_form(client, host: Host) -> dict:
    """The change form's current values, as a browser would send them back."""
    page = client.get(f"/admin/benches/host/{host.pk}/change/")
    form = page.context["adminform"].form
    values = {name: form.initial.get(name, "") for name in form.fields}
    values["enabled"] = "on" if values.get("enabled") else ""
    return {name: "" if value is None else value for name, value in values.items()}


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [("address", "evil host;x", ADDRESS_ERROR), ("script_path", "/opt/x;reboot", SCRIPT_PATH_ERROR),
     ("address", "", "This field is required.")],
)
def test_changing_a_host_to_a_bad_setting_shows_the_error_and_stores_nothing(admin_client_, hv1, field, value,
                                                                             error):
    response = admin_client_.post(f"/admin/benches/host/{hv1.pk}/change/",
                                  {**change_form(admin_client_, hv1), field: value, "capacity": 9})
    assert response.status_code == 200
    assert field_errors(response, field) == [error]
    stored = Host.objects.get(pk=hv1.pk)
    assert (stored.address, stored.script_path, stored.capacity) == (
        "hv1.example.com", "/opt/devbench/provision.sh", 5)


def test_changing_a_host_saves_good_settings_and_a_pasted_key_encrypted(admin_client_, hv1):
    response = admin_client_.post(f"/admin/benches/host/{hv1.pk}/change/", {
        **change_form(admin_client_, hv1), "address": "10.0.0.7", "capacity": 9, "enabled": "",
        "private_key": openssh_private_key(),
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Host.objects.get(pk=hv1.pk)
    assert (stored.name, stored.address, stored.capacity, stored.enabled) == ("hv1", "10.0.0.7", 9, False)
    assert stored.private_key_encrypted and "PRIVATE KEY" not in stored.private_key_encrypted


def test_a_hosts_name_and_kind_are_not_editable(admin_client_, hv1):
    page = admin_client_.get(f"/admin/benches/host/{hv1.pk}/change/").content.decode()
    assert not re.search(r'name="name"', page) and not re.search(r'name="kind"', page)
