"""Celery tasks: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="benches.tasks.run_job", acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: int) -> None:
    """Run one queued job (create, activate, start, stop, delete) on its host."""
    services.execute_job(job_id)


@shared_task(name="benches.tasks.sync_statuses", ignore_result=True)
def sync_statuses() -> dict:
    """Celery beat: check every settled bench, one connection per host."""
    return services.sync_all_statuses()


@shared_task(name="benches.tasks.sweep_stale_jobs", ignore_result=True)
def sweep_stale_jobs() -> int:
    """Celery beat: fail jobs whose worker vanished so no bench stays creating for ever."""
    return services.sweep_stale_jobs()
