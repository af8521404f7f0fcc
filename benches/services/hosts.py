"""Hypervisor hosts: registering and changing SSH hosts, picking a host for a new bench and checking
a host's connection (the built-in ``local`` host: ``local_host``)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import paramiko
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.utils import timezone

from devbench_site.errors import Conflict, InvalidInput, NotFound, Unavailable

from .. import selectors
from ..models import DevBench, Host, Image, Plan
from ..provisioning import host_keys, protocol
from ..provisioning.transport import TransportError, transport_for

logger = logging.getLogger(__name__)


def register_host(
    *,
    name: str,
    address: str,
    port: int,
    username: str,
    script_path: str,
    identity_file: str = "",
    private_key: str = "",
    known_hosts_file: str = "",
    capacity: int = 10,
    public_host: str = "",
    jump_host: str = "",
    command_timeout: int = 1800,
    host_key: str = "",
    enabled: bool = True,
) -> Host:
    """Register an SSH host. Its key is pinned from ``known_hosts_file``, given as ``host_key``
    (known_hosts lines without the host names), or pinned on first connection."""
    if Host.objects.filter(name=name).exists():
        raise InvalidInput(f"A host named {name!r} already exists")
    _check_host_settings(
        script_path=script_path, port=port, address=address, username=username, public_host=public_host,
        jump_host=jump_host, host_key=host_key,
    )
    _require_address(address)
    encrypted = ""
    if private_key:
        encrypted = _encrypted_private_key(private_key)
    elif identity_file:
        _check_identity_file(identity_file)
    pinned = host_key
    if known_hosts_file:
        try:
            lines = host_keys.keys_from_known_hosts(known_hosts_file, address, port)
        except OSError as exc:
            raise InvalidInput(f"Cannot read the known_hosts file: {exc.strerror}") from None
        if not lines:
            raise InvalidInput(f"The known_hosts file has no key for {address} port {port}")
        pinned = "\n".join(lines)
    host = Host(
        name=name,
        kind=Host.Kind.SSH,
        address=address,
        port=port,
        username=username,
        identity_file=identity_file if not private_key else "",
        private_key_encrypted=encrypted,
        script_path=script_path,
        public_host=public_host,
        jump_host=jump_host,
        capacity=capacity,
        host_key=pinned,
        command_timeout=command_timeout,
        enabled=enabled,
    )
    _clean_host(host)
    host.save(force_insert=True)
    return host


def _check_host_settings(**values) -> None:
    """The rules for a host's settings beyond the model's own field checks (see ``_clean_host``)."""
    if "script_path" in values and not protocol.SCRIPT_PATH_RE.match(values["script_path"] or ""):
        raise InvalidInput(
            "The script path may contain only letters, digits and . _ / ~ + -",
            fields={"script_path": ["Use only letters, digits and . _ / ~ + -"]},
        )
    if "port" in values and not (isinstance(values["port"], int) and 0 < values["port"] < 65536):
        raise InvalidInput("The SSH port must be between 1 and 65535", fields={"port": ["Between 1 and 65535."]})
    for field in ("address", "username", "public_host", "jump_host"):
        # These end up in SSH connections and in users' ~/.ssh/config: one token each.
        if field in values and not _SINGLE_TOKEN_RE.match(values[field] or ""):
            message = f"The {field.replace('_', ' ')} must not contain spaces or control characters"
            raise InvalidInput(message, fields={field: [message]})
    if values.get("host_key"):
        try:
            keys = host_keys.pinned_keys(Host(host_key=values["host_key"]))
        except (ValueError, paramiko.SSHException):
            keys = []
        if not keys:
            message = "The host key must be one 'type base64' line per key, as in known_hosts"
            raise InvalidInput(message, fields={"host_key": [message]}) from None


_SINGLE_TOKEN_RE = re.compile(r"\A[^\s\x00-\x1f\x7f]*\Z")


def _require_address(address: str) -> None:
    if not address:
        raise InvalidInput("An SSH host needs an address", fields={"address": ["This field is required."]})


def _encrypted_private_key(private_key: str) -> str:
    try:
        host_keys.parse_private_key(private_key)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"private_key": [str(exc)]}) from None
    return host_keys.encrypt_private_key(private_key)


def _check_identity_file(identity_file: str) -> None:
    try:
        with open(identity_file) as handle:
            host_keys.parse_private_key(handle.read())
    except OSError as exc:
        message = f"Cannot read the identity file: {exc.strerror}"
        raise InvalidInput(message, fields={"identity_file": [message]}) from None
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"identity_file": [str(exc)]}) from None


def _clean_host(host: Host) -> None:
    """The model's own checks (lengths, ranges, slug name, uniqueness) as an InvalidInput."""
    try:
        host.full_clean()
    except ValidationError as exc:
        fields = exc.message_dict
        first_field, messages = next(iter(fields.items()))
        prefix = "" if first_field == NON_FIELD_ERRORS else f"{first_field.replace('_', ' ')}: "
        raise InvalidInput(prefix + messages[0], fields=fields) from None


def pick_host(*, image: Image | None = None, plan: Plan | None = None) -> Host:
    """The enabled host with the most free capacity, locked for this transaction: one that has
    ``image`` (when given), and whose agent takes a size (``plans``) when ``plan`` is not the
    default one — a host without it makes every bench its own default size.

    A host's benches are counted again once it is locked: every create locks its host before
    adding a bench, so creates at once cannot all take a host's last place (the count made before
    the lock can be stale by then). A host found full then is passed over for the next one.
    The ``local`` host is created after migrations (``benches.receivers``), not here.
    """
    needs = "plans" if plan is not None and not plan.is_default else ""
    candidates = selectors.host_ids_by_free_capacity(with_local=settings.DEVBENCH_LOCAL_HOST, image=image, needs=needs)
    for pk in candidates:
        try:  # get(), not first(): one row by its key needs no ORDER BY to compile
            host = Host.objects.select_for_update().get(pk=pk, enabled=True)
        except Host.DoesNotExist:
            continue
        if selectors.bench_count_on(host.pk) < host.capacity:
            return host
    if image is not None and not image.hosts.filter(enabled=True).exists():
        raise Unavailable(f"No enabled host has the image {image.name}; ask an admin")
    raise Unavailable("No host has free capacity for a new DevBench; ask an admin")


HOST_EDITABLE_FIELDS = (
    "address", "port", "username", "identity_file", "script_path", "public_host", "jump_host", "capacity",
    "host_key", "command_timeout",
)


def update_host(*, host: Host, changes: dict, private_key: str = "") -> Host:
    """Change some of a host's settings (``HOST_EDITABLE_FIELDS``); a private key is stored encrypted.

    Clearing ``host_key`` makes the next connection pin the key the host presents.
    """
    unknown = sorted(set(changes) - set(HOST_EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(f"These host settings cannot be changed: {', '.join(unknown)}")
    _check_host_settings(**changes)
    if "address" in changes and host.kind == Host.Kind.SSH:
        _require_address(changes["address"])
    if changes.get("identity_file") and not private_key:
        _check_identity_file(changes["identity_file"])
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        for field, value in changes.items():
            setattr(host, field, value)
        if changes.get("identity_file") and not private_key:
            host.private_key_encrypted = ""  # the identity file replaces a stored key
        if private_key:
            host.private_key_encrypted = _encrypted_private_key(private_key)
            host.identity_file = ""
        _clean_host(host)
        host.save()
    logger.info("host %s updated: %s", host.name, ", ".join(sorted(changes)) or "private key")
    return host


def set_host_enabled(*, host: Host, enabled: bool) -> Host:
    """Enable or disable a host. A disabled host gets no new benches; its benches keep working."""
    Host.objects.filter(pk=host.pk).update(enabled=enabled, updated_at=timezone.now())
    host.refresh_from_db()
    logger.info("host %s %s", host.name, "enabled" if enabled else "disabled")
    return host


def delete_host(*, host: Host) -> None:
    """Delete a host that has no benches (its jobs stay, as the audit trail)."""
    with transaction.atomic():
        locked = Host.objects.select_for_update().filter(pk=host.pk).first()
        if locked is None:
            raise NotFound("Host not found")
        count = DevBench.objects.filter(host=locked).count()
        if count:
            raise Conflict(
                f"Host {locked.name} still has {count} DevBench{'es' if count != 1 else ''}; delete them first"
            )
        locked.delete()
    logger.info("host %s deleted", host.name)


def remember_learned_host_key(host: Host, transport) -> None:
    learned = getattr(transport, "learned_host_key", None)
    if learned and not host.host_key:
        Host.objects.filter(pk=host.pk, host_key="").update(host_key=learned)
        host.host_key = learned
        logger.info("pinned host key of %s on first connection", host.name)


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of ``check_host_connection``."""

    ok: bool
    latency_ms: float | None = None
    host_key: str | None = None
    fingerprint: str | None = None
    error: str = ""
    capabilities: list[str] | None = None  # None: not asked (the connection failed first)
    backend: str = ""


CONNECTION_CHECK_COMMAND = "true"


def check_host_connection(*, host: Host) -> ConnectionCheck:
    """Run a harmless command (``true``) on the host and report how long it took and which host
    key it presented. An unpinned key is pinned, as on any first connection."""
    transport = transport_for(host)
    started = time.monotonic()
    try:
        result = transport.run(
            CONNECTION_CHECK_COMMAND, on_output=lambda stream, text: None, timeout=settings.DEVBENCH_STATUS_TIMEOUT
        )
    except TransportError as exc:
        return ConnectionCheck(ok=False, error=str(exc))
    finally:
        remember_learned_host_key(host, transport)
    latency_ms = round((time.monotonic() - started) * 1000, 1)
    key = transport.remote_host_key()
    host_key = host_keys.key_line(key) if key is not None else None
    fingerprint = host_keys.fingerprint(key) if key is not None else None
    if result.exit_code != 0:
        error = "The test command timed out" if result.timed_out else (
            f"The test command exited with code {result.exit_code}")
        return ConnectionCheck(ok=False, latency_ms=latency_ms, host_key=host_key, fingerprint=fingerprint,
                               error=error)
    capabilities, backend = refresh_host_capabilities(host=host, transport=transport)
    return ConnectionCheck(ok=True, latency_ms=latency_ms, host_key=host_key, fingerprint=fingerprint,
                           capabilities=capabilities, backend=backend)


def refresh_host_capabilities(*, host: Host, transport) -> tuple[list[str], str]:
    """Ask the host's agent what it can do (``capabilities``) and store the answer on the host.

    An agent that does not know the command (a usage error, exit 2) has none of the additions;
    any other failure leaves what was stored, and says so in the log."""
    try:
        result = transport.run(
            protocol.build_command(host.script_path, protocol.CAPABILITIES_COMMAND),
            on_output=lambda stream, text: None, timeout=settings.DEVBENCH_STATUS_TIMEOUT,
        )
    except TransportError as exc:
        logger.warning("capabilities of %s not read: %s", host.name, exc)
        return list(host.capabilities), host.backend
    if result.exit_code == 0:
        capabilities, backend = protocol.parse_capabilities(result.stdout)
    elif result.exit_code == protocol.USAGE_ERROR_EXIT_CODE:
        capabilities, backend = [], ""
    else:
        logger.warning("capabilities of %s not read: exit code %s", host.name, result.exit_code)
        return list(host.capabilities), host.backend
    if (capabilities, backend) != (host.capabilities, host.backend):
        Host.objects.filter(pk=host.pk).update(capabilities=capabilities, backend=backend, updated_at=timezone.now())
        host.capabilities, host.backend = capabilities, backend
    return capabilities, backend
