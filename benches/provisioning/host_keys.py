"""SSH credentials and host-key pinning for hosts.

A host's key is pinned in ``Host.host_key``: given by ``addhost --known-hosts`` or learned on
the first connection. A later mismatch fails the job with a clear error; there is no
``StrictHostKeyChecking=no`` anywhere. Private keys are read from a file or stored encrypted
with a key derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import io

import paramiko
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from ..models import Host

_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class UnexpectedHostKey(paramiko.SSHException):
    """The host offered a key type that is not pinned while a key is pinned."""

    def __init__(self, key: paramiko.PKey):
        super().__init__("unexpected host key")
        self.key = key


def _fernet() -> Fernet:
    digest = hashlib.sha256(("devbench-host-private-key:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_private_key(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt_private_key(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("The stored private key cannot be decrypted (was SECRET_KEY changed?)") from None


def parse_private_key(text: str) -> paramiko.PKey:
    """A paramiko key from PEM/OpenSSH text; ValueError when it is none of the known types."""
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("Not a supported unencrypted private key (ed25519, ECDSA or RSA)")


def load_private_key(host: Host) -> paramiko.PKey | None:
    if host.private_key_encrypted:
        return parse_private_key(decrypt_private_key(host.private_key_encrypted))
    if host.identity_file:
        with open(host.identity_file) as handle:
            return parse_private_key(handle.read())
    return None


def known_hosts_name(host: Host) -> str:
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def pinned_keys(host: Host) -> list[paramiko.PKey]:
    keys = []
    for line in host.host_key.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            keys.append(paramiko.PKey.from_type_string(parts[0], base64.b64decode(parts[1])))
    return keys


def key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:..."


def keys_from_known_hosts(path: str, address: str, port: int) -> list[str]:
    """The ``type base64`` lines for a host in a known_hosts file (hashed names included)."""
    known = paramiko.HostKeys(path)
    name = address if port == 22 else f"[{address}]:{port}"
    entry = known.lookup(name) or {}
    return [key_line(key) for key in entry.values()]


def mismatch_message(host: Host, key: paramiko.PKey) -> str:
    return (
        f"Host key verification failed for {host.name} ({known_hosts_name(host)}): it presented "
        f"{key.get_name()} {fingerprint(key)}, which is not the pinned key. If the host was "
        "reinstalled, update its host key in the admin panel."
    )


class PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Accept an unknown key only when nothing is pinned yet (trust on first use)."""

    def __init__(self, host: Host):
        self.host = host
        self.learned: str | None = None

    def missing_host_key(self, client, hostname, key) -> None:
        if self.host.host_key.strip():
            raise UnexpectedHostKey(key)
        self.learned = key_line(key)
