"""Bench reads, shaped to avoid N+1 queries."""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet

from accounts.models import User
from devbench_site.errors import NotFound

from .models import DevBench, Host, Image, Job, JobChunk, Plan, Snapshot
from .provisioning import messages


def benches_for(user: User) -> QuerySet[DevBench]:
    """The user's benches in the dashboard's order, with their host, image and plan, in one query."""
    return DevBench.objects.filter(user=user).select_related("host", "image", "plan").order_by("created_at", "id")


def cards_for(user: User) -> QuerySet[DevBench]:
    """``benches_for`` with each bench's snapshots (the cards list them), in two queries."""
    return benches_for(user).prefetch_related("snapshots")


def bench_counts_for(user: User, name: str) -> tuple[int, int]:
    """The user's benches, and those among them named ``name`` regardless of case (0 or 1, as the
    database's constraint says), in one query."""
    counts = DevBench.objects.filter(user=user).aggregate(
        owned=Count("pk"), same_name=Count("pk", filter=Q(name__iexact=name))
    )
    return counts["owned"], counts["same_name"]


def host_ids_by_free_capacity(*, with_local: bool, image: Image | None = None, needs: str = "") -> list[int]:
    """Enabled hosts with a free place, most free first: those that have ``image`` when one is
    given, and whose agent has the capability ``needs`` when one is named. ``with_local=False``
    leaves out the built-in local host."""
    hosts = Host.objects.filter(enabled=True)
    if not with_local:
        hosts = hosts.exclude(kind=Host.Kind.LOCAL)
    if image is not None:
        hosts = hosts.filter(pk__in=image.hosts.values("pk"))
    rows = (
        hosts.annotate(free=F("capacity") - Count("benches"))
        .filter(free__gt=0)
        .order_by("-free", "name")
        .values_list("pk", "capabilities")
    )
    # In Python: a JSON list's ``contains`` lookup is not portable to SQLite.
    return [pk for pk, capabilities in rows if not needs or needs in (capabilities or [])]


def bench_count_on(host_id: int) -> int:
    """How many benches a host holds."""
    return DevBench.objects.filter(host_id=host_id).count()


def bench_for_owner(user: User, bench_id: int) -> DevBench:
    """The user's bench, or NotFound (another user's bench is not found either)."""
    bench = DevBench.objects.select_related("host", "user").filter(pk=bench_id, user=user).first()
    if bench is None:
        raise NotFound("DevBench not found")
    return bench


def job_for_owner(user: User, job_id: int) -> Job:
    job = Job.objects.filter(pk=job_id, owner=user).first()
    if job is None:
        raise NotFound("Job not found")
    return job


def latest_job(bench_id: int, owner: User) -> Job | None:
    return Job.objects.filter(original_bench_id=bench_id, owner=owner).order_by("-created_at", "-id").first()


def job_log_after(job: Job, seq: int, limit: int | None = None) -> QuerySet[JobChunk]:
    """The job's stored chunks after ``seq``, in order."""
    chunks = JobChunk.objects.filter(job=job, seq__gt=seq).order_by("seq")
    return chunks[:limit] if limit else chunks


def stored_log_text(job: Job) -> str:
    """A job's whole stored log as one text (stderr with its ``ERROR: `` prefix)."""
    return "".join(messages.chunk_text(chunk) for chunk in job_log_after(job, 0))


# --- for the REST API -------------------------------------------------------------------------

def bench_list_for(user: User, *, status: str | None = None, host: str | None = None) -> QuerySet[DevBench]:
    """``benches_for`` narrowed by status and host name (the API's list and its filters)."""
    benches = benches_for(user)
    if status:
        benches = benches.filter(status=status)
    if host:
        benches = benches.filter(host__name=host)
    return benches


def bench_detail_for_owner(user: User, bench_id: int) -> DevBench:
    """The user's bench with its host and latest job id, or NotFound."""
    bench = benches_for(user).filter(pk=bench_id).first()
    if bench is None:
        raise NotFound("DevBench not found")
    return bench


def jobs_of_bench(bench: DevBench, *, state: str | None = None, command: str | None = None) -> QuerySet[Job]:
    """A bench's jobs, newest first, with who asked for them."""
    jobs = Job.objects.filter(bench=bench).select_related("requested_by").order_by("-created_at", "-id")
    if state:
        jobs = jobs.filter(state=state)
    if command:
        jobs = jobs.filter(command=command)
    return jobs


def job_detail_for_owner(user: User, job_id: int) -> Job:
    """The user's job with who asked for it, or NotFound (another user's job is not found either)."""
    job = Job.objects.select_related("requested_by").filter(pk=job_id, owner=user).first()
    if job is None:
        raise NotFound("Job not found")
    return job


def hosts_with_bench_counts(*, enabled: bool | None = None) -> QuerySet[Host]:
    hosts = Host.objects.annotate(bench_count=Count("benches")).order_by("name")
    return hosts if enabled is None else hosts.filter(enabled=enabled)


def host_with_bench_count(host_id: int) -> Host:
    host = hosts_with_bench_counts().filter(pk=host_id).first()
    if host is None:
        raise NotFound("Host not found")
    return host


def images_offered() -> QuerySet[Image]:
    """The enabled images, default first, then by name."""
    return Image.objects.filter(enabled=True).order_by("-is_default", "name")


def plans_offered() -> QuerySet[Plan]:
    """The enabled plans, smallest first."""
    return Plan.objects.filter(enabled=True).order_by("vcpus", "memory_mib", "disk_gib", "name")


def snapshots_of(bench: DevBench) -> QuerySet[Snapshot]:
    """A bench's snapshots, oldest first, with who took each."""
    return Snapshot.objects.filter(bench=bench).select_related("created_by").order_by("created_at", "id")
