"""Measuring instruments: nearest-rank statistics over samples, CPU seconds and memory of
process trees read from /proc, the load average, a cpu cgroup for the "remote host", and a
pause of the harness's own garbage collector during measured rounds.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .env import Environment


@contextlib.contextmanager
def collector_paused():
    """Keep the harness's own garbage collector out of a measured round: a full collection of
    the harness (its Django, its traces) stops its readers for ~100 ms, which they would report as
    latency. Collected before the round, and left as it was after it. The ceiling's rounds, read
    by the same process, are measured so too: the harness is the instrument in both."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def percentile(values, p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def median(values) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user+system) of ``pid``, its live descendants and the children they reaped."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(value) for value in fields[11:15])
    total, frontier = 0, [pid]
    while frontier:
        current = frontier.pop()
        total += cpu.get(current, 0)
        frontier.extend(child for child, parent in parents.items() if parent == current)
    return total / ticks


def _pids_matching(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if text in Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry))
    return found


class RemoteCpuGroup:
    """A cpu cgroup for the "remote host" (an sshd and every command it runs).

    sshd gives each SSH session a session of its own, and the kernel's autogroup scheduling makes
    each session a scheduling entity of its own: 50 agents on the same cores get 50 shares of CPU
    against DevBench's one. On a deployment the hypervisor hosts are other machines; in a cgroup
    of its own (default weight) the remote side competes as one entity, as a separate machine's
    load would not take the cores from DevBench. Work-conserving: with DevBench idle (the
    ceiling's rounds) the remote side still has both cores. Needs root and the cpu controller;
    :meth:`enter` returns False where there is none.
    """

    def __init__(self, name: str):
        self.path: Path | None = None
        for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
            if (root / "cgroup.procs").exists() and ((root / "cpu.shares").exists() or (root / "cpu.max").exists()
                                                     or (root / "cgroup.controllers").exists()):
                self.path = root / name
                break

    def enter(self, pid: int) -> bool:
        if self.path is None:
            return False
        try:
            self.path.mkdir(exist_ok=True)
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError:
            return False
        return True

    def remove(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.rmdir()


class CpuMeter:
    """CPU seconds spent by named process trees (and this process) between two snapshots.

    ``postgres`` is the whole server (other users of it count too); ``redis`` the benchmark's
    private Valkey when there is one.
    """

    def __init__(self, env: Environment, **pids: int):
        self.pids = dict(pids)
        postmaster = _pids_matching("postgres -D")
        if postmaster and env.database_url.startswith("postgres"):
            self.pids.setdefault("postgres", postmaster[0])
        if env.valkey is not None:
            valkey = _pids_matching(f"unixsocket:{env.tmp / 'valkey.sock'}")
            if valkey:
                self.pids.setdefault("redis", valkey[0])
        self._start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        snap = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}
        snap["benchmark client"] = usage.ru_utime + usage.ru_stime
        return snap

    def restart(self) -> None:
        self._start = self._snapshot()

    def read(self) -> dict[str, float]:
        end = self._snapshot()
        return {name: round(end[name] - self._start.get(name, 0.0), 2) for name in end}


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS) and VmRSS in KiB, and CPU seconds (user+system) of one process."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        found["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / ticks
    return found
