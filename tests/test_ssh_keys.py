"""Users' SSH public keys: the page, the API and the rules (a key must be a key; one line; no
duplicates; a limit), and that a new bench's VM is given them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from accounts import services
from accounts.models import SSHKey
from accounts.ssh_keys import INVALID_MESSAGE
from tests.api_helpers import bearer_client, post_json

pytestmark = pytest.mark.django_db


def public_line(private_key, comment: str = "") -> str:
    line = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return (line.decode() + (f" {comment}" if comment else "")).strip()


def fingerprint(line: str) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(line.split()[1])).digest()).decode().rstrip("=")


@pytest.fixture
def ed_key() -> str:
    return public_line(ed25519.Ed25519PrivateKey.generate(), "alice@laptop")


@pytest.fixture
def api(user):
    return bearer_client(user)


def test_page_adds_lists_and_deletes_a_key(user_client, user, ed_key):
    empty = user_client.get("/account/ssh-keys")
    assert empty.status_code == 200 and b"You have no SSH keys yet." in empty.content
    added = user_client.post("/account/ssh-keys/add", {"name": "", "public_key": f"  {ed_key}\n"})
    assert (added.status_code, added["Location"]) == (302, "/account/ssh-keys")  # a reload adds nothing
    key = SSHKey.objects.get()
    assert (key.name, key.public_key, key.fingerprint) == ("alice@laptop", ed_key, fingerprint(ed_key))
    page = user_client.get("/account/ssh-keys").content.decode()
    assert fingerprint(ed_key) in page and "alice@laptop" in page
    deleted = user_client.post(f"/account/ssh-keys/{key.pk}/delete")
    assert deleted.status_code == 302 and not SSHKey.objects.exists()


@pytest.mark.parametrize("text, message", [
    ("", INVALID_MESSAGE),
    ("hello world", INVALID_MESSAGE),
    ("ssh-ed25519 AAAAnotakey", INVALID_MESSAGE),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", INVALID_MESSAGE),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBzW4xV1q3f2dS9xK7vL0mN5pQ8rT2uY6wE4iO1aS3dF\nssh-rsa AAAA",
     "Paste one key at a time: a key is a single line."),
])
def test_page_refuses_what_is_not_one_key_and_keeps_the_input(user_client, text, message):
    response = user_client.post("/account/ssh-keys/add", {"name": "laptop", "public_key": text})
    assert response.status_code == 400
    assert response.context["error"] == message and response.context["entered_name"] == "laptop"
    assert not SSHKey.objects.exists()


def test_rsa_and_ecdsa_keys_are_accepted_dsa_is_not(user):
    rsa_line = public_line(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ecdsa_line = public_line(ec.generate_private_key(ec.SECP256R1()), "ci")
    assert services.add_ssh_key(user=user, public_key=rsa_line).name == "ssh-rsa"
    assert services.add_ssh_key(user=user, public_key=ecdsa_line).name == "ci"
    dsa_line = public_line(dsa.generate_private_key(key_size=1024))  # noqa: S505 - OpenSSH's DSA keys are 1024-bit
    with pytest.raises(services.InvalidInput) as refused:
        services.add_ssh_key(user=user, public_key=dsa_line)
    assert refused.value.message == "DSA keys are not accepted by current OpenSSH: use an ed25519 key."


def test_control_characters_in_the_comment_are_dropped(user):
    line = public_line(ed25519.Ed25519PrivateKey.generate())
    key = services.add_ssh_key(user=user, public_key=f"{line} evil\x1b[2Jcomment")
    assert key.public_key == f"{line} evil[2Jcomment"


def test_api_adds_lists_and_deletes(api, ed_key):
    created = post_json(api, "/api/v1/ssh-keys/", {"publicKey": ed_key, "name": "laptop"})
    assert created.status_code == 201
    body = created.json()
    assert body | {"id": 0, "createdAt": None} == {
        "id": 0, "name": "laptop", "keyType": "ssh-ed25519", "publicKey": ed_key,
        "fingerprint": fingerprint(ed_key), "createdAt": None,
    }
    listed = api.get("/api/v1/ssh-keys/").json()
    assert [key["id"] for key in listed["results"]] == [body["id"]]
    duplicate = post_json(api, "/api/v1/ssh-keys/", {"publicKey": ed_key})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"] == f"You already have this key ({fingerprint(ed_key)})"
    assert api.delete(f"/api/v1/ssh-keys/{body['id']}/").status_code == 204
    assert api.delete(f"/api/v1/ssh-keys/{body['id']}/").status_code == 404


def test_keys_are_owner_only(api, make_user, ed_key):
    bob = make_user("bob")
    key = services.add_ssh_key(user=bob, public_key=ed_key)
    assert api.get("/api/v1/ssh-keys/").json()["results"] == []
    assert api.delete(f"/api/v1/ssh-keys/{key.pk}/").status_code == 404
    assert SSHKey.objects.filter(pk=key.pk).exists()
    # The same key may belong to two people (a shared deploy key): it is unique per user only.
    assert post_json(api, "/api/v1/ssh-keys/", {"publicKey": ed_key}).status_code == 201


def test_the_limit_holds(user, settings):
    settings.DEVBENCH_MAX_SSH_KEYS_PER_USER = 2
    for _ in range(2):
        services.add_ssh_key(user=user, public_key=public_line(ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(services.InvalidInput) as refused:
        services.add_ssh_key(user=user, public_key=public_line(ed25519.Ed25519PrivateKey.generate()))
    assert refused.value.message == "SSH key limit reached: you can keep 2. Delete one first."
    assert SSHKey.objects.count() == 2


def test_the_page_needs_csrf(csrf_client, user, ed_key):
    csrf_client.force_login(user)
    response = csrf_client.post("/account/ssh-keys/add", {"public_key": ed_key})
    assert response.status_code == 403 and not SSHKey.objects.exists()
