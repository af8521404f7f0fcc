"""4. HTTP: wrk (Debian's) against Daphne, 32 connections, for a user with 20 benches.

Pages: ``GET /dashboard`` and ``GET /api/v1/benches/`` (its first page holds all 20 benches),
signed in with the session cookie. Ceiling: a trivial view
(``/_bench/trivial``: signed in, a constant body) on the same server. ``BENCH_HTTP_ROUNDS`` (5)
rounds, each measuring the ceiling and then every page (1 s warm-up, then ``BENCH_WRK_SECONDS``
(6) s each); a page's ratio is taken against its own round's ceiling and the median round's
ratio is reported, so a machine whose speed drifts between rounds does not skew it.
``/_bench/trivial-anonymous`` (no session read) is shown for scale. Daphne's CPU time per
request is recorded beside requests/s. The API's per-user throttle stays on, with a rate no run
reaches.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
import urllib.request

from .data import make_users, session_cookie_for
from .env import Environment
from .measure import CpuMeter, tree_cpu_seconds
from .stack import Stack

NAME = "http"
BENCHES = 20  # a user with a generous quota: the API's first page holds them all
TITLE = f"HTTP: wrk against Daphne (user with {BENCHES} benches, 32 connections)"
CONNECTIONS = 32


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, cookie: str, seconds: int) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s",
               "-H", f"Cookie: {cookie}", url]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.MULTILINE)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)$", out, re.MULTILINE)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"requests_per_second": rps, "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "requests": total, "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else "", "raw": out}


def _wait_until_idle(pid: int, *, timeout: float = 60.0) -> None:
    """Wait until the server uses under 5 % of a core, so one run's backlog does not bill the next."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = tree_cpu_seconds(pid)
        if after - before < 0.025:
            return
        before = after


def _median_round(runs: list[dict]) -> dict:
    """The round with the median requests/s (all its figures, so they belong together)."""
    return sorted(runs, key=lambda figures: figures["requests_per_second"])[len(runs) // 2]


def _check(url: str, cookie: str, expect: bytes) -> None:
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        body = response.read()
        if response.status != 200 or expect not in body:
            raise RuntimeError(f"{url} answered {response.status} without {expect!r}")


def run(environment: Environment, *, quick: bool = False) -> dict:
    from benches.models import DevBench, Host, Job

    seconds = 3 if quick else int(os.environ.get("BENCH_WRK_SECONDS", "6"))
    rounds = 1 if quick else int(os.environ.get("BENCH_HTTP_ROUNDS", "5"))
    environment.reset_state()
    [user] = make_users("web", 1)
    host = Host.objects.create(name="webhost", kind=Host.Kind.SSH, address="127.0.0.1", port=22, username="x",
                               script_path="/usr/local/bin/devbench-agent", capacity=1000)
    benches = DevBench.objects.bulk_create([
        DevBench(user=user, host=host, name=f"bench{index:03d}", actual_name=f"{user.username}_bench{index:03d}",
                 status=DevBench.Status.ACTIVE, ssh_info=str(6000 + index), vnc_info=str(5000 + index))
        for index in range(BENCHES)
    ])
    Job.objects.bulk_create([
        Job(bench=bench, original_bench_id=bench.pk, bench_name=bench.name, vm_name=bench.actual_name,
            owner=user, requested_by=user, host=host, command=Job.Command.CREATE, state=Job.State.SUCCEEDED,
            exit_code=0, last_seq=3)
        for bench in benches
    ])
    for bench in benches:
        bench.latest_job = Job.objects.filter(bench=bench).first()
    DevBench.objects.bulk_update(benches, ["latest_job"])
    cookie = session_cookie_for(user)
    stack = Stack(environment, with_worker=False).start()
    rounds_run: dict[str, list[dict]] = {}
    api_available = False
    try:
        base = stack.base_url
        last = f"bench{BENCHES - 1:03d}".encode()
        _check(base + "/dashboard", cookie, last)
        try:
            _check(base + "/api/v1/benches/", cookie, last)
            api_available = True
        except OSError:
            api_available = False
        pages = [("dashboard", "/dashboard")]
        if api_available:
            pages += [("api_benches", "/api/v1/benches/")]
        only = {name for name in os.environ.get("BENCH_HTTP_TARGETS", "").split(",") if name}
        if only:  # e.g. BENCH_HTTP_TARGETS=dashboard with BENCH_PROFILE=web: one page's profile
            pages = [(label, path) for label, path in pages if label in only]
        # Each round measures the ceiling right before the pages: on a shared machine the cores'
        # speed drifts by 2x within minutes, so a ratio is only taken within one round.
        targets = [("trivial", "/_bench/trivial"), *pages, ("trivial_anonymous", "/_bench/trivial-anonymous")]
        meter = CpuMeter(environment, web=stack.pid("web"))
        with stack.profiled(NAME):
            for round_index in range(rounds):
                for label, path in targets:
                    _wait_until_idle(stack.pid("web"))  # requests wrk gave up on are still served
                    wrk(base + path, cookie, 1)  # warm-up
                    meter.restart()
                    figures = wrk(base + path, cookie, seconds)
                    figures["cpu_seconds"] = meter.read()
                    figures["web_cpu_ms_per_request"] = round(
                        figures["cpu_seconds"].get("web", 0) * 1000 / max(figures["requests"], 1), 2)
                    rounds_run.setdefault(label, []).append(figures)
                    print(f"  round {round_index + 1} {label:18s} {figures['requests_per_second']:8.1f} req/s  "
                          f"p99 {figures['p99_ms']} ms  web {figures['web_cpu_ms_per_request']} ms CPU/request",
                          flush=True)
        usage = stack.usage()
    finally:
        stack.stop()
    ceilings = [figures["requests_per_second"] for figures in rounds_run["trivial"]]
    results = {label: _median_round(figures) for label, figures in rounds_run.items()}
    rows = [("ceiling: trivial signed-in view req/s (median round)", round(statistics.median(ceilings), 1), "",
             None)]
    ratios: dict[str, float] = {}
    for label, title in (("dashboard", "GET /dashboard"), ("api_benches", f"GET /api/v1/benches/ ({BENCHES})")):
        if label not in rounds_run:
            rows.append((title, "not measured", ">= 0.50 of ceiling", None))
            continue
        per_round = [page["requests_per_second"] / ceiling
                     for page, ceiling in zip(rounds_run[label], ceilings, strict=True)]
        ratios[label] = statistics.median(per_round)
        figures = results[label]
        ok = all(page["non_2xx"] == 0 and not page["socket_errors"] for page in rounds_run[label])
        rows.append((f"{title} req/s (p99 ms)", f"{figures['requests_per_second']:.1f} ({figures['p99_ms']})",
                     "", None))
        rows.append((f"  ratio to ceiling, median of {rounds} rounds{'' if ok else ' (ERRORS)'}",
                     round(ratios[label], 2), ">= 0.50",
                     ok and ratios[label] >= 0.5))
    rows.append(("trivial, no session req/s", round(results["trivial_anonymous"]["requests_per_second"], 1), "",
                 None))
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"connections": CONNECTIONS, "seconds": seconds, "rounds": rounds, "threads": 2,
                   "benches": BENCHES, "api_available": api_available},
        "results": {label: {k: v for k, v in figures.items() if k != "raw"} for label, figures in results.items()},
        "ratios": ratios,
        "rounds": {label: [{k: v for k, v in figures.items() if k != "raw"} for figures in runs]
                   for label, runs in rounds_run.items()},
        "wrk_output": {label: [figures["raw"] for figures in runs] for label, runs in rounds_run.items()},
        "ceiling_requests_per_second": statistics.median(ceilings),
        "processes": usage,
        "rows": rows,
    }
