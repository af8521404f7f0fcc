"""Parse requests and render benches, jobs, log chunks and hosts as the API's camelCase JSON.

Only shapes and types live here; the rules (names, quotas, host settings) are in
``benches.services``, which every caller goes through.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from devbench_site.api.schema import documented, ecma

from .. import naming
from ..models import DevBench, Host, Job, JobChunk
from ..provisioning import messages, protocol, terminal

PG_INT_MAX = 2**31 - 1  # PositiveIntegerField's range on every backend
ONE_TOKEN = {"pattern": r"^[^\s]*$", "maxLength": 255}  # what services._check_host_settings accepts
RESPONSE_CODES = ["200", "201", "202"]


@extend_schema_field({
    "type": "string",
    "pattern": ecma(protocol.BENCH_NAME_RE),
    "description": (
        f"Letters, digits, `-` and `_`; at most {naming.MAX_LENGTH} characters; unique per user regardless of case."
    ),
})
class BenchNameField(serializers.CharField):
    """A bench name as sent; ``services.validate_bench_name`` decides (one rule for every route)."""

    def __init__(self, **kwargs):
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):  # a JSON number is no name (``1e400`` would become "inf")
            self.fail("invalid")
        return super().to_internal_value(data)


BENCH_EXAMPLE = {
    "id": 123,
    "name": "test-vm",
    "actualName": "alice_test-vm",
    "status": "active",
    "host": "hv1",
    "sshInfo": "6004",
    "vncInfo": "5004",
    "vmIp": "10.0.2.15",
    "lastError": "",
    "createdAt": "2025-11-23T12:00:00Z",
    "updatedAt": "2025-11-23T12:05:00Z",
    "latestJobId": 456,
    "image": "Debian 12",
    "plan": "Small",
    "vcpus": 2,
    "memoryMib": 2048,
    "diskGib": 20,
    "snapshotsAvailable": True,
}


@extend_schema_serializer(examples=[
    OpenApiExample("An active bench", value=BENCH_EXAMPLE, response_only=True, status_codes=RESPONSE_CODES),
])
class BenchSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    actualName = serializers.CharField(source="actual_name", read_only=True, help_text="The VM's name on its host.")
    status = serializers.ChoiceField(choices=DevBench.Status.choices, read_only=True)
    host = serializers.CharField(source="host.name", read_only=True, help_text="The host's name.")
    sshInfo = serializers.CharField(source="ssh_info", read_only=True, help_text="SSH port on the host.")
    vncInfo = serializers.CharField(source="vnc_info", read_only=True, help_text="VNC port on the host.")
    vmIp = serializers.IPAddressField(source="vm_ip", read_only=True, allow_null=True)
    lastError = serializers.CharField(source="last_error", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)
    latestJobId = serializers.IntegerField(source="latest_job_id", read_only=True, allow_null=True)
    image = serializers.CharField(source="image.name", read_only=True, allow_null=True,
                                  help_text="The image's name; null: the host's default image.")
    plan = serializers.CharField(source="plan.name", read_only=True, allow_null=True,
                                 help_text="The plan's name; null: none (the host's default size, or a removed plan).")
    vcpus = serializers.IntegerField(read_only=True, help_text="The size it was made with; 0: the host's default.")
    memoryMib = serializers.IntegerField(source="memory_mib", read_only=True)
    diskGib = serializers.IntegerField(source="disk_gib", read_only=True)
    snapshotsAvailable = serializers.SerializerMethodField(help_text="Whether the bench's host takes snapshots.")

    def get_snapshotsAvailable(self, bench: DevBench) -> bool:
        return "snapshots" in (bench.host.capabilities or [])


@extend_schema_serializer(examples=[
    OpenApiExample("Create", value={"name": "test-vm"}, request_only=True),
    OpenApiExample("Create from an image and plan", value={"name": "test-vm", "image": "Debian 12", "plan": "Small"},
                   request_only=True),
])
class BenchCreateSerializer(serializers.Serializer):
    name = BenchNameField()
    image = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                  help_text="An image's name (`GET /api/v1/images/`); the default image when absent.")
    plan = serializers.CharField(required=False, allow_blank=True, max_length=64,
                                 help_text="A plan's name (`GET /api/v1/plans/`); the default plan when absent.")


@extend_schema_serializer(examples=[OpenApiExample("An image", value={
    "name": "Debian 12", "description": "Debian 12 (bookworm) generic cloud image", "isDefault": True,
}, response_only=True)])
class ImageSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    isDefault = serializers.BooleanField(source="is_default", read_only=True)


@extend_schema_serializer(examples=[OpenApiExample("A plan", value={
    "name": "Small", "vcpus": 2, "memoryMib": 2048, "diskGib": 20, "isDefault": True,
}, response_only=True)])
class PlanSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    vcpus = serializers.IntegerField(read_only=True)
    memoryMib = serializers.IntegerField(source="memory_mib", read_only=True)
    diskGib = serializers.IntegerField(source="disk_gib", read_only=True)
    isDefault = serializers.BooleanField(source="is_default", read_only=True)


@extend_schema_serializer(examples=[OpenApiExample("A snapshot", value={
    "name": "before-upgrade", "createdAt": "2025-11-23T12:10:00Z", "createdBy": "alice",
}, response_only=True)])
class SnapshotSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    createdBy = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)


@extend_schema_serializer(examples=[OpenApiExample("Take", value={"name": "before-upgrade"}, request_only=True)])
class SnapshotCreateSerializer(serializers.Serializer):
    name = documented(
        serializers.CharField(allow_blank=True, trim_whitespace=False, help_text=naming.SNAPSHOT_INVALID_MESSAGE),
        maxLength=naming.SNAPSHOT_MAX_LENGTH, pattern=ecma(naming.SNAPSHOT_NAME_RE),
    )


class BenchFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DevBench.Status.choices, required=False, help_text="Only this status.")
    host = serializers.CharField(required=False, max_length=64, help_text="Only benches on this host (its name).")


JOB_EXAMPLE = {
    "id": 456,
    "devbenchId": 123,
    "benchName": "test-vm",
    "vmName": "alice_test-vm",
    "command": "start",
    "argument": "",
    "state": "queued",
    "exitCode": None,
    "error": "",
    "requestedBy": "alice",
    "createdAt": "2025-11-23T12:05:00Z",
    "startedAt": None,
    "finishedAt": None,
    "lastSeq": 0,
}


@extend_schema_serializer(examples=[
    OpenApiExample("A queued job", value=JOB_EXAMPLE, response_only=True, status_codes=RESPONSE_CODES),
])
class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    devbenchId = serializers.IntegerField(
        source="original_bench_id", read_only=True, allow_null=True, help_text="Kept after the bench is deleted."
    )
    benchName = serializers.CharField(source="bench_name", read_only=True)
    vmName = serializers.CharField(source="vm_name", read_only=True)
    command = serializers.ChoiceField(choices=Job.Command.choices, read_only=True)
    argument = serializers.CharField(read_only=True, help_text="A snapshot command's snapshot; else empty.")
    state = serializers.ChoiceField(choices=Job.State.choices, read_only=True)
    exitCode = serializers.IntegerField(source="exit_code", read_only=True, allow_null=True)
    error = serializers.CharField(read_only=True)
    requestedBy = serializers.CharField(
        source="requested_by.username", read_only=True, allow_null=True,
        help_text="Who asked; null for the periodic status sync.",
    )
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    startedAt = serializers.DateTimeField(source="started_at", read_only=True, allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", read_only=True, allow_null=True)
    lastSeq = serializers.IntegerField(source="last_seq", read_only=True, help_text="Its last stored chunk's seq.")


class JobFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Job.State.choices, required=False, help_text="Only this state.")
    command = serializers.ChoiceField(choices=Job.Command.choices, required=False, help_text="Only this command.")


class LogChunkSerializer(serializers.Serializer):
    seq = serializers.IntegerField(read_only=True)
    stream = serializers.ChoiceField(choices=JobChunk.Stream.choices, read_only=True)
    data = serializers.SerializerMethodField(
        help_text="The text; stderr carries the `ERROR: ` prefix. Without terminal control sequences "
        "unless `raw=1` was asked for."
    )

    @extend_schema_field(OpenApiTypes.STR)
    def get_data(self, chunk: JobChunk) -> str:
        text = messages.chunk_text(chunk)
        return text if self.context.get("raw") else terminal.clean(text)


class JobLogQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=0, max_value=PG_INT_MAX, default=0, help_text="Send the chunks after this seq (0: from the start)."
    )
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=500, help_text="At most this many chunks.")
    raw = serializers.BooleanField(
        default=False, help_text="1: the text as the script wrote it, terminal control sequences included."
    )


@extend_schema_serializer(examples=[OpenApiExample(
    "Two chunks",
    value={
        "results": [
            {"seq": 1, "stream": "stdout", "data": "Cloning VM...\n"},
            {"seq": 2, "stream": "stderr", "data": "ERROR: warning: low disk space\n"},
        ],
        "next": "http://127.0.0.1:9090/api/v1/jobs/456/log/?after=2&limit=2",
        "lastSeq": 2,
        "finished": False,
    },
    response_only=True,
)])
class JobLogSerializer(serializers.Serializer):
    results = LogChunkSerializer(many=True, read_only=True)
    next = serializers.URLField(read_only=True, allow_null=True, help_text="The next page, when there may be more.")
    lastSeq = serializers.IntegerField(read_only=True, help_text="The last chunk's seq here; use it as `after`.")
    finished = serializers.BooleanField(read_only=True, help_text="The job has ended: no more chunks will come.")


@extend_schema_serializer(examples=[OpenApiExample("Status", value={"status": "active"}, response_only=True)])
class BenchStatusSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=DevBench.Status.choices, read_only=True)


# --- hosts (admins) ----------------------------------------------------------------------------

HOST_EXAMPLE = {
    "id": 2,
    "name": "hv1",
    "kind": "ssh",
    "address": "hv1.example.com",
    "port": 22,
    "username": "devbench",
    "identityFile": "",
    "hasPrivateKey": True,
    "scriptPath": "/opt/devbench/devbench-agent",
    "publicHost": "hv1.example.com",
    "jumpHost": "",
    "capacity": 10,
    "enabled": True,
    "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN6n3iVsq7Rj4sAmm0C0lSyN7bC2JMXyp4PZbWh0yZEG",
    "commandTimeout": 1800,
    "benchCount": 3,
    "createdAt": "2025-11-23T12:00:00Z",
    "updatedAt": "2025-11-23T12:00:00Z",
}


@extend_schema_serializer(examples=[OpenApiExample("An SSH host", value=HOST_EXAMPLE, response_only=True)])
class HostSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=Host.Kind.choices, read_only=True)
    address = serializers.CharField(read_only=True)
    port = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    identityFile = serializers.CharField(source="identity_file", read_only=True)
    hasPrivateKey = serializers.SerializerMethodField(help_text="A private key is stored (it is never shown).")
    scriptPath = serializers.CharField(source="script_path", read_only=True)
    publicHost = serializers.CharField(source="public_host", read_only=True)
    jumpHost = serializers.CharField(source="jump_host", read_only=True)
    capacity = serializers.IntegerField(read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    hostKey = serializers.CharField(source="host_key", read_only=True, help_text="The pinned key(s).")
    commandTimeout = serializers.IntegerField(source="command_timeout", read_only=True)
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=protocol.KNOWN_CAPABILITIES), read_only=True,
        help_text="What the host's agent said it can do at the last connection test; empty: the original "
        "commands only (and `list`, tried at each status sync).",
    )
    backend = serializers.CharField(read_only=True, help_text="The agent's backend, e.g. `libvirt`; empty: unknown.")
    benchCount = serializers.IntegerField(source="bench_count", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_hasPrivateKey(self, host: Host) -> bool:
        return bool(host.private_key_encrypted)


class _HostSettingsSerializer(serializers.Serializer):
    """Fields an admin may set; types only (``services`` checks the values)."""

    address = documented(serializers.CharField(help_text="Host name or IP address for SSH."),
                         **ONE_TOKEN)
    port = documented(serializers.IntegerField(min_value=0, max_value=PG_INT_MAX, default=22),
                      type="integer", minimum=1, maximum=65535)
    username = documented(serializers.CharField(allow_blank=True, default=""), **{**ONE_TOKEN, "maxLength": 64})
    identityFile = serializers.CharField(
        source="identity_file", allow_blank=True, default="", help_text="Path of a private key file on the server."
    )
    privateKey = serializers.CharField(
        source="private_key", allow_blank=True, default="", write_only=True, trim_whitespace=False,
        help_text="A private key to store encrypted; never shown again.",
    )
    scriptPath = documented(serializers.CharField(source="script_path", help_text="The provision script on the host."),
                            pattern=ecma(protocol.SCRIPT_PATH_RE))
    publicHost = documented(serializers.CharField(source="public_host", allow_blank=True, default=""), **ONE_TOKEN)
    jumpHost = documented(serializers.CharField(source="jump_host", allow_blank=True, default=""), **ONE_TOKEN)
    capacity = serializers.IntegerField(min_value=0, max_value=PG_INT_MAX, default=10)
    commandTimeout = serializers.IntegerField(source="command_timeout", min_value=0, max_value=PG_INT_MAX,
                                              default=1800)


@extend_schema_serializer(examples=[OpenApiExample(
    "Register a host",
    value={"name": "hv1", "address": "hv1.example.com", "port": 22, "username": "devbench",
           "identityFile": "/etc/devbench/id_ed25519", "scriptPath": "/opt/devbench/devbench-agent",
           "knownHostsFile": "/etc/devbench/known_hosts", "capacity": 10},
    request_only=True,
)])
class HostCreateSerializer(_HostSettingsSerializer):
    name = documented(serializers.CharField(help_text="A short unique name (letters, digits, - and _)."),
                      pattern="^[-a-zA-Z0-9_]+$", maxLength=64)
    knownHostsFile = serializers.CharField(
        source="known_hosts_file", allow_blank=True, default="", write_only=True,
        help_text="Pin the host key from this known_hosts file on the server; else pinned on first connection.",
    )


@extend_schema_serializer(examples=[OpenApiExample(
    "Raise the capacity", value={"capacity": 20}, request_only=True,
)])
class HostUpdateSerializer(_HostSettingsSerializer):
    """Used with ``partial=True`` (PATCH): only the fields sent change."""

    hostKey = serializers.CharField(
        source="host_key", allow_blank=True, trim_whitespace=False,
        help_text="The pinned key(s), one `type base64` per line; empty pins the next key presented.",
    )


@extend_schema_serializer(examples=[
    OpenApiExample("Reachable", value={
        "ok": True, "latencyMs": 41.7,
        "hostKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN6n3iVsq7Rj4sAmm0C0lSyN7bC2JMXyp4PZbWh0yZEG",
        "fingerprint": "SHA256:3mXQ7yTf1kBN0v4m2y6Fq8fW2n7Z0pGkqv1h0yXc5aA", "error": "",
    }, response_only=True),
    OpenApiExample("Unreachable", value={
        "ok": False, "latencyMs": None, "hostKey": None, "fingerprint": None,
        "error": "Could not connect to host hv1 (hv1.example.com:22) after 3 attempts: timed out",
    }, response_only=True),
])
class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField(read_only=True)
    latencyMs = serializers.FloatField(source="latency_ms", read_only=True, allow_null=True,
                                       help_text="How long the test command took, connecting included.")
    hostKey = serializers.CharField(source="host_key", read_only=True, allow_null=True,
                                    help_text="The key the host presented (null for the local host).")
    fingerprint = serializers.CharField(read_only=True, allow_null=True, help_text="Its SHA256 fingerprint.")
    error = serializers.CharField(read_only=True, help_text="Why the test failed; empty when it passed.")
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=protocol.KNOWN_CAPABILITIES), read_only=True, allow_null=True,
        help_text="What the agent said it can do (stored on the host); null when the connection failed.",
    )
    backend = serializers.CharField(read_only=True, help_text="The agent's backend; empty: unknown.")
