"""Bench reads, shaped to avoid N+1 queries."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.db import connection
from django.db.models import BigIntegerField, Count, F, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from django.db.models.lookups import Exact

from accounts.models import User
from devbench_site.errors import NotFound
from devbench_site.precompiled_queries import BoundPages, PrecompiledPages, PrecompiledValuesQuery

from .models import DevBench, Host, Job, JobChunk
from .provisioning import messages


def _latest_job_id_sql() -> RawSQL:
    """``(SELECT id FROM job WHERE bench_id = bench.id ORDER BY created_at DESC, id DESC LIMIT 1)``.

    The same correlated subquery Django builds from ``Subquery(OuterRef(...))``, written once: the
    ORM compiled that one on every request, which cost the dashboard and the bench list ~1 ms of
    CPU each (docs/PERFORMANCE.md, benchmark 4). It names the bench table itself, so it is only
    for querysets whose base table is not aliased (not inside another query's subquery).
    """
    quote = connection.ops.quote_name
    job, bench = quote(Job._meta.db_table), quote(DevBench._meta.db_table)
    sql = (  # names from the models, no values: nothing to inject
        f"SELECT {job}.{quote('id')} FROM {job} WHERE {job}.{quote('bench_id')} = {bench}.{quote('id')} "  # noqa: S608
        f"ORDER BY {job}.{quote('created_at')} DESC, {job}.{quote('id')} DESC LIMIT 1"
    )
    return RawSQL(  # noqa: S611
        sql,
        (),
        output_field=BigIntegerField(),
    )


def benches_for(user: User) -> QuerySet[DevBench]:
    """The user's benches with their host and the id of their latest job (one query)."""
    return _benches_of(user.pk)


def _benches_of(user_id: int) -> QuerySet[DevBench]:
    return (
        DevBench.objects.filter(user_id=user_id)
        .select_related("host")
        .annotate(latest_job_id=_latest_job_id_sql())
        .order_by("created_at", "id")
    )


# Every value a dashboard card shows (``benches.bench_cards``) that can change; ``created_at`` is
# set once and never changes.
BENCH_CARD_FIELDS = (
    "pk", "name", "status", "last_error", "ssh_info", "vnc_info",
    "host__name", "host__public_host", "host__address", "latest_job_id",
)
# What the API's bench list shows, with ``latest_job_id`` and the host's name as ``host_name``.
BENCH_LIST_FIELDS = (
    "id", "name", "actual_name", "status", "ssh_info", "vnc_info", "vm_ip", "last_error", "created_at", "updated_at",
)


_BENCH_CARD_VALUES = PrecompiledValuesQuery(
    lambda user_id: _benches_of(user_id).values_list(*BENCH_CARD_FIELDS), arity=1,
)


def bench_card_values(user: User) -> list[tuple]:
    """The values of the user's dashboard cards, in the dashboard's order: one query, no models,
    its SQL compiled once per process."""
    return _BENCH_CARD_VALUES.rows(user.pk)


def bench_card_fingerprint(user: User) -> str:
    """A digest of ``bench_card_values(user)``, taken without reading them where the database can
    (the dashboard asks on every view). Equal fingerprints mean the same cards in the same order:
    the values include each bench's id, and the cards' order follows from the id and the
    creation time, which never changes."""
    return _BENCH_CARD_VALUES.fingerprint(user.pk)


def bench_card_values_and_fingerprint(user: User) -> tuple[list[tuple], str]:
    """``bench_card_values(user)`` and their ``bench_card_fingerprint``, in one query: the
    fingerprint is of exactly these values, whatever commits meanwhile."""
    return _BENCH_CARD_VALUES.rows_and_fingerprint(user.pk)


_BENCH_COUNTS = PrecompiledValuesQuery(
    lambda user_id, name: User.objects.filter(pk=user_id).annotate(
        owned=Count("benches"), same_name=Count("benches", filter=Exact(Lower("benches__name"), name)),
    ).values_list("owned", "same_name"),
    arity=2,
)


def bench_counts_for(user: User, name: str) -> tuple[int, int]:
    """The user's benches, and those among them named ``name`` regardless of case (0 or 1, as the
    database's constraint says): one query, compiled once per process (every create asks)."""
    rows = _BENCH_COUNTS.rows(user.pk, name.lower())
    return rows[0] if rows else (0, 0)


def _hosts_by_free_capacity(*, with_local: bool) -> QuerySet:
    hosts = Host.objects.filter(enabled=True)
    if not with_local:
        hosts = hosts.exclude(kind=Host.Kind.LOCAL)
    return (
        hosts.annotate(used=Count("benches"))
        .annotate(free=F("capacity") - F("used"))
        .filter(free__gt=0)
        .order_by("-free", "name")
        .values_list("pk")
    )


_HOSTS_BY_FREE_CAPACITY = {
    with_local: PrecompiledValuesQuery(functools.partial(_hosts_by_free_capacity, with_local=with_local), arity=0)
    for with_local in (True, False)
}
_BENCHES_ON_HOST = PrecompiledValuesQuery(
    lambda host_id: Host.objects.filter(pk=host_id).annotate(used=Count("benches")).values_list("used"), arity=1,
)


def host_ids_by_free_capacity(*, with_local: bool) -> list[int]:
    """Enabled hosts with a free place, most free first (one query, compiled once per process).
    ``with_local=False`` leaves out the built-in local host."""
    return [pk for (pk,) in _HOSTS_BY_FREE_CAPACITY[with_local].rows()]


def bench_count_on(host_id: int) -> int:
    """How many benches a host holds (one query, compiled once per process)."""
    rows = _BENCHES_ON_HOST.rows(host_id)
    return rows[0][0] if rows else 0


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

def _bench_list_query(by_status: bool, by_host: bool) -> Callable[..., QuerySet[dict]]:
    def build(user_id: int, *filters: str) -> QuerySet[dict]:
        benches = _benches_of(user_id).select_related(None).values(
            *BENCH_LIST_FIELDS, "latest_job_id", host_name=F("host__name"),
        )
        values = iter(filters)
        if by_status:
            benches = benches.filter(status=next(values))
        if by_host:
            benches = benches.filter(host__name=next(values))
        return benches

    return build


_BENCH_LIST_PAGES = {
    (by_status, by_host): PrecompiledPages(_bench_list_query(by_status, by_host), arity=1 + by_status + by_host)
    for by_status in (False, True)
    for by_host in (False, True)
}


def bench_list_for(user: User, *, status: str | None = None, host: str | None = None) -> BoundPages:
    """``benches_for`` narrowed by status and host name, read a page at a time: one dict per bench
    with the columns the list shows (``BENCH_LIST_FIELDS``, ``latest_job_id``, ``host_name``).
    Rows, not instances (50 DevBench instances cost ~0.4 ms of CPU), and SQL compiled once per
    process for each combination of filters (building and compiling it cost ~0.5 ms per page;
    docs/PERFORMANCE.md, benchmark 4)."""
    filters = [value for value in (status, host) if value]
    return _BENCH_LIST_PAGES[bool(status), bool(host)].bind(user.pk, *filters)


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
    from django.db.models import Count

    hosts = Host.objects.annotate(bench_count=Count("benches")).order_by("name")
    return hosts if enabled is None else hosts.filter(enabled=enabled)


def host_with_bench_count(host_id: int) -> Host:
    host = hosts_with_bench_counts().filter(pk=host_id).first()
    if host is None:
        raise NotFound("Host not found")
    return host
