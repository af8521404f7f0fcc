"""The WebSocket messages, as the original defines them (``type``, ``devbenchId``, ``data`` /
``exitCode`` / ``status``), plus ``jobId`` and ``seq`` so clients can replay and deduplicate."""

from __future__ import annotations

from ..models import DevBench, Job, JobChunk

STDERR_PREFIX = "ERROR: "


def chunk_text(chunk: JobChunk) -> str:
    """What a chunk shows in a log: stderr carries the original's ``ERROR: `` prefix."""
    if chunk.stream == JobChunk.Stream.STDERR:
        return STDERR_PREFIX + chunk.data
    return chunk.data


def script_output(job: Job, chunk: JobChunk) -> dict:
    return {
        "type": "script_output",
        "devbenchId": job.original_bench_id,
        "jobId": job.pk,
        "seq": chunk.seq,
        "stream": chunk.stream,
        "data": chunk_text(chunk),
    }


def script_complete(job: Job) -> dict:
    return {
        "type": "script_complete",
        "devbenchId": job.original_bench_id,
        "jobId": job.pk,
        "seq": job.last_seq,
        "exitCode": job.exit_code,
        "state": job.state,
        "command": job.command,
    }


def status_update(bench: DevBench, *, status: str | None = None, job: Job | None = None) -> dict:
    return _status_update(
        bench.pk, status or bench.status, job=job,
        ssh_info=bench.ssh_info, vnc_info=bench.vnc_info, error=bench.last_error,
    )


def bench_deleted(bench_id: int) -> dict:
    """The ``status_update`` for a bench whose row is gone (``status`` ``deleted``)."""
    return _status_update(bench_id, "deleted")


def _status_update(
    bench_id: int, status: str, *, job: Job | None = None, ssh_info: str = "", vnc_info: str = "", error: str = "",
) -> dict:
    return {
        "type": "status_update",
        "devbenchId": bench_id,
        "status": status,
        "jobId": job.pk if job else None,
        "seq": job.last_seq if job else None,
        "sshInfo": ssh_info,
        "vncInfo": vnc_info,
        "error": error,
    }
