"""OpenSSH public keys as users paste them: parsed with ``cryptography`` (so a key that is not a
key is refused, not passed on to a VM), normalised to one ``type blob [comment]`` line, and
fingerprinted as ``ssh-keygen -l`` does (SHA256, base64 without padding)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MAX_LINE_LENGTH = 8192  # an RSA 16384-bit key is about 2,800 characters
COMMENT_MAX_LENGTH = 100
INVALID_MESSAGE = (
    "Not an OpenSSH public key: paste one line as in ~/.ssh/id_ed25519.pub "
    "(ssh-ed25519, ecdsa-sha2-* or ssh-rsa, then the key, then an optional comment)."
)


class InvalidPublicKey(ValueError):
    pass


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob: str
    comment: str

    @property
    def line(self) -> str:
        """The one line ``authorized_keys`` gets: no options, no control characters."""
        return f"{self.key_type} {self.blob} {self.comment}".rstrip()

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_key(text: object) -> PublicKey:
    """The key in ``text`` (one line; surrounding blanks ignored), else InvalidPublicKey."""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_LINE_LENGTH:
        raise InvalidPublicKey(INVALID_MESSAGE)
    line = text.strip()
    if "\n" in line or "\r" in line:
        raise InvalidPublicKey("Paste one key at a time: a key is a single line.")
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise InvalidPublicKey(INVALID_MESSAGE)
    key_type, blob = parts[0], parts[1]
    comment = "".join(ch for ch in (parts[2] if len(parts) > 2 else "") if ch.isprintable())
    try:
        key = load_ssh_public_key(f"{key_type} {blob}".encode())
        base64.b64decode(blob, validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidPublicKey(INVALID_MESSAGE) from exc
    except Exception as exc:  # an unsupported algorithm (UnsupportedAlgorithm) reads the same
        raise InvalidPublicKey(INVALID_MESSAGE) from exc
    if isinstance(key, dsa.DSAPublicKey):  # OpenSSH has refused DSA since 7.0
        raise InvalidPublicKey("DSA keys are not accepted by current OpenSSH: use an ed25519 key.")
    return PublicKey(key_type=key_type, blob=blob, comment=comment.strip()[:COMMENT_MAX_LENGTH])
