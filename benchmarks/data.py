"""The rows a benchmark starts from: users, their API keys and session cookies, and sshd hosts
registered with DevBench (plus how many SSH logins an sshd has accepted)."""

from __future__ import annotations

from pathlib import Path


def letters(number: int, width: int = 4) -> str:
    """A letters-only rendering of ``number`` (usernames allow letters only)."""
    out = []
    for _ in range(width):
        number, digit = divmod(number, 26)
        out.append(chr(ord("a") + digit))
    return "".join(reversed(out))


def make_users(prefix: str, count: int) -> list:
    """``count`` users without a usable password (no Argon2 cost), in one INSERT."""
    from accounts.models import User

    users = [User(username=f"{prefix}{letters(i)}", email=f"{prefix}{letters(i)}@example.com", password="!")  # noqa: S106 - unusable
             for i in range(count)]
    User.objects.bulk_create(users, batch_size=500)
    return list(User.objects.filter(username__startswith=prefix).order_by("username"))


def api_keys_for(users) -> dict[int, str]:
    from accounts.services import create_api_key

    return {user.pk: create_api_key(user=user, name="bench")[1] for user in users}


def session_cookie_for(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def register_sshd_host(name: str, sshd, script: Path, capacity: int = 100000):
    from benches import services

    return services.register_host(
        name=name, address=sshd.host, port=sshd.port, username=sshd.username,
        identity_file=str(sshd.client_key_path), script_path=str(script),
        known_hosts_file=str(sshd.known_hosts_path), capacity=capacity,
    )


def sshd_accepted(sshd) -> int:
    """How many SSH connections this sshd has authenticated so far (from its VERBOSE log)."""
    try:
        return sshd.log_path.read_text(errors="replace").count("Accepted publickey")
    except OSError:
        return 0
