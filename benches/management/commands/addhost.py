"""Register a hypervisor host reached over SSH.

``python manage.py addhost NAME --ssh USER@HOST[:PORT] --identity KEYFILE --script REMOTE_PATH
[--known-hosts FILE] [--capacity N] [--public-host NAME] [--jump-host SPEC]``
"""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError

from benches import services
from devbench_site.errors import DomainError

SSH_TARGET_RE = re.compile(
    r"\A(?P<user>[A-Za-z0-9._-]+)@(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d{1,5}))?\Z"
)


class Command(BaseCommand):
    help = "Register a hypervisor host reached over SSH."

    def add_arguments(self, parser):
        parser.add_argument("name", help="A short name for the host (letters, digits, - and _).")
        parser.add_argument("--ssh", required=True, metavar="USER@HOST[:PORT]")
        parser.add_argument("--identity", required=True, metavar="KEYFILE", help="Private key file.")
        parser.add_argument("--script", required=True, metavar="REMOTE_PATH", help="The provision script.")
        parser.add_argument("--known-hosts", metavar="FILE", help="Pin the host key from this file.")
        parser.add_argument("--capacity", type=int, default=10, help="Maximum benches (default 10).")
        parser.add_argument("--public-host", default="", help="The name users connect to.")
        parser.add_argument("--jump-host", default="", help="ProxyJump for users' SSH configs.")
        parser.add_argument("--timeout", type=int, default=1800, help="Command timeout in seconds.")

    def handle(self, *args, **options):
        match = SSH_TARGET_RE.match(options["ssh"])
        if not match:
            raise CommandError("--ssh must look like USER@HOST or USER@HOST:PORT")
        if options["capacity"] < 1:
            raise CommandError("--capacity must be at least 1")
        try:
            host = services.register_host(
                name=options["name"],
                address=match["host"].strip("[]"),
                port=int(match["port"] or 22),
                username=match["user"],
                identity_file=options["identity"],
                script_path=options["script"],
                known_hosts_file=options["known_hosts"] or "",
                capacity=options["capacity"],
                public_host=options["public_host"],
                jump_host=options["jump_host"],
                command_timeout=options["timeout"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        pinned = "pinned from --known-hosts" if host.host_key else "will be pinned on first connection"
        self.stdout.write(f"Host {host.name} added ({host.username}@{host.address}:{host.port}); host key {pinned}.")
