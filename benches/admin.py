"""Hosts, images, plans, benches (with their snapshots) and jobs (with their logs) in the admin
panel; actions call the services."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from devbench_site.errors import DomainError

from . import selectors, services
from .models import DevBench, Host, Image, Job, Plan, Snapshot


class HostForm(forms.ModelForm):
    """Adds a host through ``services.register_host`` and changes one through ``update_host`` (and
    ``set_host_enabled``), as ``addhost`` and the API do: the services' refusals appear on the form
    as its field errors, and nothing is stored."""

    private_key = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="Paste a private key to store it encrypted (it is never shown again). "
        "Leave empty to keep the stored key or use the identity file.",
    )

    class Meta:
        model = Host
        fields = ["name", "kind", "address", "port", "username", "identity_file", "private_key", "script_path",
                  "public_host", "jump_host", "capacity", "enabled", "host_key", "command_timeout"]

    def clean_private_key(self) -> str:
        text = self.cleaned_data.get("private_key", "").strip()
        return text + "\n" if text else ""  # the key's own checks are the service's

    def _post_clean(self) -> None:
        super()._post_clean()  # the model's own field checks, as any ModelForm
        if self._errors:
            return
        try:
            self.saved_host = self._save_through_services()
        except DomainError as exc:
            self._add_service_errors(exc)

    def _save_through_services(self) -> Host:
        data = self.cleaned_data
        if self.instance.pk is None:
            return services.register_host(
                name=data["name"], address=data["address"], port=data["port"], username=data["username"],
                script_path=data["script_path"], identity_file=data["identity_file"],
                private_key=data["private_key"], capacity=data["capacity"], public_host=data["public_host"],
                jump_host=data["jump_host"], command_timeout=data["command_timeout"], host_key=data["host_key"],
                enabled=data["enabled"],
            )
        changes = {name: data[name] for name in services.HOST_EDITABLE_FIELDS if name in self.changed_data}
        host = services.update_host(host=self.instance, changes=changes, private_key=data["private_key"])
        if "enabled" in self.changed_data:
            host = services.set_host_enabled(host=host, enabled=data["enabled"])
        return host

    def _add_service_errors(self, exc: DomainError) -> None:
        fields = {name: errors for name, errors in exc.fields.items() if name in self.fields}
        for name, errors in fields.items():
            self.add_error(name, errors)
        if not fields:
            self.add_error(None, exc.message)

    def save(self, commit: bool = True) -> Host:
        """The host the services stored while the form was validated."""
        return self.saved_host

    def save_m2m(self) -> None:
        """Nothing to do: a host has no many-to-many fields (the admin calls this after ``save``)."""


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    form = HostForm
    list_display = ("name", "kind", "address", "port", "username", "enabled", "capacity", "bench_count", "pinned")
    list_filter = ("enabled", "kind")
    search_fields = ("name", "address", "public_host")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(bench_count=Count("benches"))

    def get_readonly_fields(self, request, obj=None):
        # Added hosts are SSH hosts (the local one is built in); a host's name and kind stay.
        return ("name", "kind", "backend", "capabilities") if obj is not None else ("kind",)

    def save_model(self, request, obj, form, change) -> None:
        """Nothing to do: the form stored the host through the services when it was validated."""

    @admin.display(description="Benches", ordering="bench_count")
    def bench_count(self, host: Host) -> int:
        return host.bench_count

    @admin.display(description="Host key pinned", boolean=True)
    def pinned(self, host: Host) -> bool:
        return bool(host.host_key.strip()) or host.kind == Host.Kind.LOCAL

    actions = ["test_connection", "disable_hosts", "enable_hosts"]

    @admin.action(description="Test the connection (runs `true` on the host)")
    def test_connection(self, request, queryset) -> None:
        for host in queryset:
            result = services.check_host_connection(host=host)
            if result.ok:
                key = f", host key {result.fingerprint}" if result.fingerprint else ""
                can = ", ".join(result.capabilities or []) or "the original commands only"
                self.message_user(request, f"{host}: reachable in {result.latency_ms} ms{key}; agent: {can}")
            else:
                self.message_user(request, f"{host}: {result.error}", messages.ERROR)

    @admin.action(description="Disable (no new benches)")
    def disable_hosts(self, request, queryset) -> None:
        for host in queryset:
            services.set_host_enabled(host=host, enabled=False)

    @admin.action(description="Enable")
    def enable_hosts(self, request, queryset) -> None:
        for host in queryset:
            services.set_host_enabled(host=host, enabled=True)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("name", "image_id", "enabled", "is_default", "host_names", "bench_count")
    list_filter = ("enabled", "hosts")
    search_fields = ("name", "image_id")
    filter_horizontal = ("hosts",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(bench_count=Count("benches")).prefetch_related("hosts")

    @admin.display(description="Hosts")
    def host_names(self, image: Image) -> str:
        return ", ".join(host.name for host in image.hosts.all()) or "none (no bench can be made from it)"

    @admin.display(description="Benches", ordering="bench_count")
    def bench_count(self, image: Image) -> int:
        return image.bench_count


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "vcpus", "memory_mib", "disk_gib", "enabled", "is_default")
    list_filter = ("enabled",)
    search_fields = ("name",)


class SnapshotInline(admin.TabularInline):
    """Snapshots are taken, restored and deleted by jobs on the host (the API and the dashboard)."""

    model = Snapshot
    fields = ("name", "created_at", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class JobInline(admin.TabularInline):
    model = Job
    fields = ("command", "state", "exit_code", "requested_by", "created_at", "finished_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DevBench)
class DevBenchAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "host", "status", "image", "vcpus", "memory_mib", "disk_gib", "ssh_info",
                    "vnc_info", "actual_name", "updated_at")
    list_filter = ("status", "host", "image", "plan")
    search_fields = ("name", "actual_name", "user__username")
    list_select_related = ("user", "host", "image")
    readonly_fields = (
        "actual_name", "status", "image", "plan", "vcpus", "memory_mib", "disk_gib", "ssh_info", "vnc_info",
        "vm_ip", "last_error", "created_at", "updated_at", "public_key",
    )
    fields = ("user", "host", "name", *readonly_fields)
    inlines = [SnapshotInline, JobInline]
    actions = ["check_status", "delete_benches"]

    def has_add_permission(self, request) -> bool:
        return False  # benches are created by their users (or the API), which runs the create job

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # deleting goes through the remote delete: use the "Delete" action

    def get_readonly_fields(self, request, obj=None):
        return ("user", "host", "name", *self.readonly_fields)

    @admin.action(description="Check status now")
    def check_status(self, request, queryset) -> None:
        for bench in queryset.select_related("host", "user"):
            status = services.check_status(bench=bench, actor=request.user)
            self.message_user(request, f"Status of {bench}: {status}")

    @admin.action(description="Delete (remote delete first, row removed when it succeeds)")
    def delete_benches(self, request, queryset) -> None:
        for bench in queryset:
            try:
                services.delete_bench(bench=bench, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{bench}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{bench}: delete queued")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "command", "vm_name", "bench_name", "owner", "requested_by", "state", "exit_code",
                    "created_at", "finished_at")
    list_filter = ("state", "command", "host")
    search_fields = ("vm_name", "bench_name", "owner__username")
    list_select_related = ("owner", "requested_by")
    readonly_fields = ("bench", "original_bench_id", "bench_name", "vm_name", "owner", "requested_by", "host",
                       "command", "state", "exit_code", "error", "last_seq", "cancel_requested_at", "created_at",
                       "started_at", "finished_at", "log")
    actions = ["cancel_jobs"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # jobs are the audit trail

    @admin.display(description="Log")
    def log(self, job: Job) -> str:
        return format_html('<pre class="devbench-job-log">{}</pre>', selectors.stored_log_text(job))

    @admin.action(description="Cancel")
    def cancel_jobs(self, request, queryset) -> None:
        for job in queryset:
            try:
                services.cancel_job(job=job, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"Job {job.pk}: {exc.message}", messages.ERROR)
