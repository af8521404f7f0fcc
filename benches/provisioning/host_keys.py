"""SSH credentials and host-key pinning for hosts.

A host's key is pinned in ``Host.host_key``: given by ``addhost --known-hosts`` or learned on
the first connection. A later mismatch fails the job with a clear error; there is no
``StrictHostKeyChecking=no`` anywhere. Private keys are read from a file or stored encrypted
with a key derived from SECRET_KEY. After a rotation of SECRET_KEY the stored keys still
decrypt while the old key is listed in SECRET_KEY_FALLBACKS; ``reencrypt_stored_private_keys``
(the ``reencrypt_host_keys`` command) moves them to the current key so the old one can go.
"""

from __future__ import annotations

import base64
import hashlib
import io

import paramiko
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from ..models import Host

_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


class UnexpectedHostKey(paramiko.SSHException):
    """The host offered a key type that is not pinned while a key is pinned."""

    def __init__(self, key: paramiko.PKey):
        super().__init__("unexpected host key")
        self.key = key


class UndecryptablePrivateKey(ValueError):
    """A stored private key that neither SECRET_KEY nor any of SECRET_KEY_FALLBACKS decrypts."""


UNDECRYPTABLE_ADVICE = (
    "it was encrypted under a SECRET_KEY that is neither the current one nor in SECRET_KEY_FALLBACKS. "
    "Add the previous SECRET_KEY to SECRET_KEY_FALLBACKS (then run `manage.py reencrypt_host_keys`), "
    "or paste the host's private key again in the admin panel."
)


def _fernet_for(secret: str) -> Fernet:
    digest = hashlib.sha256(("devbench-host-private-key:" + secret).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _fernet() -> MultiFernet:
    """Encrypts with the current SECRET_KEY; decrypts with it, then with each fallback in order."""
    secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return MultiFernet([_fernet_for(secret) for secret in secrets])


def encrypt_private_key(text: str) -> str:
    """The private key text encrypted with the current SECRET_KEY, for ``Host.private_key_encrypted``."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt_private_key(token: str) -> str:
    """The private key text; UndecryptablePrivateKey when no configured key opens it."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptablePrivateKey(f"The stored private key cannot be decrypted: {UNDECRYPTABLE_ADVICE}") from None


def reencrypt_stored_private_keys() -> tuple[list[str], list[str]]:
    """Encrypt every stored private key (hosts', and DevBench's own key of each bench) with the
    current SECRET_KEY.

    Returns the names of those re-encrypted and of those whose key no configured secret decrypts
    (left unchanged): hosts by name, benches as ``DevBench <id>``. Run after a rotation, before
    dropping the old key from the fallbacks.
    """
    from ..models import DevBench

    fernet = _fernet()
    done: list[str] = []
    failed: list[str] = []
    rows = [
        *((host, host.name) for host in Host.objects.exclude(private_key_encrypted="").order_by("name")),
        *(
            (bench, f"DevBench {bench.pk}")
            for bench in DevBench.objects.exclude(private_key_encrypted="").order_by("pk")
        ),
    ]
    for row, label in rows:
        try:
            token = fernet.rotate(row.private_key_encrypted.encode()).decode()
        except InvalidToken:
            failed.append(label)
            continue
        # update() on the one column: an admin editing the row at the same time keeps the rest.
        type(row).objects.filter(pk=row.pk, private_key_encrypted=row.private_key_encrypted).update(
            private_key_encrypted=token)
        done.append(label)
    return done, failed


def parse_private_key(text: str) -> paramiko.PKey:
    """A paramiko key from PEM/OpenSSH text; ValueError when it is none of the known types."""
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError("Not a supported unencrypted private key (ed25519, ECDSA or RSA)")


def load_private_key(host: Host) -> paramiko.PKey | None:
    """The host's private key (stored or from its identity file); None to use neither.

    A stored key that cannot be decrypted raises the transport's TransportError, so that a job
    fails and a connection test reports it with the advice, like any other connection failure.
    """
    if host.private_key_encrypted:
        try:
            text = decrypt_private_key(host.private_key_encrypted)
        except UndecryptablePrivateKey:
            from .transport import TransportError  # imported here: transport imports this module

            raise TransportError(
                f"The stored private key of host {host.name} cannot be decrypted: {UNDECRYPTABLE_ADVICE}"
            ) from None
        return parse_private_key(text)
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
