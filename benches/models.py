"""Hosts, the images and plans benches are made from, benches, their snapshots, jobs and their
streamed output.

A bench row is never dropped while its VM may exist: delete keeps it (status ``deleting``) until
the remote delete succeeded. Jobs outlive their bench (``bench`` becomes NULL, the names stay),
so they remain the audit trail of who ran what, when, with which exit code.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Lower

from . import naming

BENCH_NAME_MAX_LENGTH = naming.MAX_LENGTH
SNAPSHOT_NAME_MAX_LENGTH = naming.SNAPSHOT_MAX_LENGTH
IMAGE_ID_PATTERN = r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"  # as the agent's IMAGE_ID_RE


class Host(models.Model):
    """A hypervisor host reached over SSH (or the built-in ``local`` host, run in-process)."""

    class Kind(models.TextChoices):
        SSH = "ssh", "SSH"
        LOCAL = "local", "Local simulator"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.SSH)
    address = models.CharField(max_length=255, blank=True, help_text="Host name or IP address for SSH.")
    port = models.PositiveIntegerField(default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    username = models.CharField(max_length=64, blank=True)
    identity_file = models.CharField(max_length=500, blank=True, help_text="Path of a private key file.")
    private_key_encrypted = models.TextField(
        blank=True, editable=False, help_text="A private key stored encrypted with the site's secret key."
    )
    script_path = models.CharField(max_length=500, help_text="The provision script on the host.")
    public_host = models.CharField(
        max_length=255, blank=True, help_text="The name users connect to; defaults to the address."
    )
    jump_host = models.CharField(max_length=255, blank=True, help_text="ProxyJump for users' SSH configs.")
    capacity = models.PositiveIntegerField(default=10, help_text="Maximum number of benches.")
    enabled = models.BooleanField(default=True)
    host_key = models.TextField(
        blank=True,
        help_text="Pinned host key(s), one 'type base64' per line. Empty: pinned on first connection.",
    )
    command_timeout = models.PositiveIntegerField(default=1800, help_text="Seconds before a command times out.")
    capabilities = models.JSONField(
        default=list, blank=True, editable=False,
        help_text="What the host's agent said it can do at the last connection test (docs/host-protocol.md).",
    )
    backend = models.CharField(max_length=32, blank=True, editable=False, help_text="The agent's backend.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def connect_name(self) -> str:
        return self.public_host or self.address or "localhost"


class Image(models.Model):
    """A base disk image ("template") users pick for a bench: the name they see, the id the hosts'
    agents know it by, and the hosts that have it. A bench's disk is an overlay on it."""

    name = models.CharField(max_length=64, unique=True, help_text="Shown to users, e.g. 'Debian 12'.")
    image_id = models.CharField(
        max_length=64,
        validators=[
            RegexValidator(IMAGE_ID_PATTERN, "Letters, digits, '.', '_' and '-', starting with a letter or digit.")
        ],
        help_text="The image's id on its hosts, as `devbench-agent images` lists it.",
    )
    description = models.CharField(max_length=200, blank=True)
    hosts = models.ManyToManyField(Host, blank=True, related_name="images", help_text="The hosts that have it.")
    enabled = models.BooleanField(default=True, help_text="Offered for new benches.")
    is_default = models.BooleanField(default=False, help_text="Used when a create names no image.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="benches_one_default_image"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """A bench size: vCPUs, memory and disk, within the agent's limits (docs/host-protocol.md)."""

    name = models.CharField(max_length=64, unique=True, help_text="Shown to users, e.g. 'Small'.")
    vcpus = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(64)])
    memory_mib = models.PositiveIntegerField(
        validators=[MinValueValidator(128), MaxValueValidator(256 * 1024)], help_text="Memory in MiB."
    )
    disk_gib = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(4096)], help_text="Disk size in GiB."
    )
    enabled = models.BooleanField(default=True, help_text="Offered for new benches.")
    is_default = models.BooleanField(default=False, help_text="Used when a create names no plan.")

    class Meta:
        ordering = ["vcpus", "memory_mib", "disk_gib", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="benches_one_default_plan"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.vcpus} vCPU, {self.memory_mib} MiB, {self.disk_gib} GiB)"


class DevBench(models.Model):
    """A user's VM on a host."""

    class Status(models.TextChoices):
        CREATING = "creating"
        ACTIVE = "active"
        INACTIVE = "inactive"
        ERROR = "error"
        DELETING = "deleting"
        UNKNOWN = "unknown"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="benches")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="benches")
    name = models.CharField(max_length=BENCH_NAME_MAX_LENGTH, validators=[naming.validator])
    actual_name = models.CharField(
        max_length=100, blank=True, help_text="The VM's name on the host, set when creation starts there."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING)
    ssh_info = models.CharField(max_length=16, blank=True, help_text="SSH port on the host.")
    vnc_info = models.CharField(max_length=16, blank=True, help_text="VNC port on the host.")
    vm_ip = models.GenericIPAddressField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    image = models.ForeignKey(Image, on_delete=models.PROTECT, null=True, blank=True, related_name="benches")
    plan = models.ForeignKey(Plan, on_delete=models.SET_NULL, null=True, blank=True, related_name="benches")
    # The size the bench was made with, kept when its plan changes or goes: what quotas count.
    vcpus = models.PositiveSmallIntegerField(default=0, help_text="0: the host's default size.")
    memory_mib = models.PositiveIntegerField(default=0)
    disk_gib = models.PositiveIntegerField(default=0)
    private_key_encrypted = models.TextField(
        blank=True, editable=False,
        help_text="DevBench's own key for the VM (installed at create), encrypted like hosts' keys.",
    )
    public_key = models.TextField(blank=True, editable=False, help_text="The public half of DevBench's key.")
    latest_job = models.ForeignKey(
        "Job", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="+",
        help_text="The bench's newest job, set when a job is created.",
    )

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "DevBench"
        verbose_name_plural = "DevBenches"
        constraints = [
            # Regardless of case: a host whose file system ignores case would give two benches
            # named ``Case1`` and ``case1`` the same VM.
            models.UniqueConstraint("user", Lower("name"), name="benches_devbench_unique_name_ci_per_user"),
        ]
        indexes = [models.Index(fields=["host", "status"])]

    def __str__(self) -> str:
        return self.actual_name or f"{self.user_id}:{self.name}"


class Job(models.Model):
    """One run of a remote command for a bench, with its output as ordered chunks."""

    class Command(models.TextChoices):
        CREATE = "create"
        STATUS = "status"
        ACTIVATE = "activate"
        START = "start"
        STOP = "stop"
        DELETE = "delete"
        SNAPSHOT = "snapshot"
        RESTORE = "restore"
        DELETE_SNAPSHOT = "delete-snapshot"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMED_OUT = "timed_out"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    bench = models.ForeignKey(DevBench, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    original_bench_id = models.BigIntegerField(
        null=True, blank=True, help_text="The bench's id, kept after the bench is deleted."
    )
    bench_name = models.CharField(max_length=BENCH_NAME_MAX_LENGTH)
    vm_name = models.CharField(max_length=100, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="owned_jobs"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="requested_jobs",
        help_text="Who asked; empty for the periodic status sync.",
    )
    host = models.ForeignKey(Host, on_delete=models.SET_NULL, null=True, related_name="jobs")
    command = models.CharField(max_length=16, choices=Command.choices)
    argument = models.CharField(max_length=64, blank=True, help_text="The snapshot a snapshot command is about.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    last_seq = models.PositiveIntegerField(default=0, help_text="Sequence number of the last stored chunk.")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Refreshed by the worker while the job runs; a stale one means it died."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["bench", "-created_at"]),
            models.Index(fields=["state", "started_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.command} {self.vm_name or self.bench_name} (#{self.pk})"

    @property
    def is_finished(self) -> bool:
        return self.state not in self.ACTIVE_STATES


class Snapshot(models.Model):
    """A snapshot of a bench's VM on its host, recorded when the snapshot job succeeded."""

    bench = models.ForeignKey(DevBench, on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(max_length=SNAPSHOT_NAME_MAX_LENGTH, validators=[naming.snapshot_validator])
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["bench", "name"], name="benches_snapshot_unique_name")]

    def __str__(self) -> str:
        return f"{self.bench} @ {self.name}"


class JobChunk(models.Model):
    """A piece of a job's output, stored before it is sent to browsers."""

    class Stream(models.TextChoices):
        STDOUT = "stdout"
        STDERR = "stderr"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    stream = models.CharField(max_length=6, choices=Stream.choices, default=Stream.STDOUT)
    data = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="benches_jobchunk_unique_seq")]

    def __str__(self) -> str:
        return f"job {self.job_id} chunk {self.seq}"
