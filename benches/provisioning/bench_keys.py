"""DevBench's own SSH key for each bench: made at create, installed in the VM with the owner's keys
(so that DevBench can reach the VM for its console and terminal), stored encrypted as hosts' keys are."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

COMMENT = "devbench"


def new_key_pair() -> tuple[str, str]:
    """A fresh Ed25519 key: the private key in OpenSSH format and its public key line."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {COMMENT}"

