"""4. HTTP: wrk (Debian's) against Daphne, 32 connections, for a user with 100 benches.

Pages: ``GET /dashboard`` and ``GET /api/v1/benches/`` (first page, 50 benches, and
``?page_size=100``: all of them), signed in with the session cookie. Ceiling: a trivial view
(``/_bench/trivial``: signed in, a constant body) on the same server in the same run, measured
before and after the pages (the better of the two counts); ``/_bench/trivial-anonymous`` (no
session read) is shown for scale. Each run: 2 s warm-up, then ``BENCH_WRK_SECONDS`` (10) s.
The API's per-user throttle stays on, with a rate no run reaches.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request

from . import env as benv

NAME = "http"
TITLE = "HTTP: wrk against Daphne (user with 100 benches, 32 connections)"
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


def _check(url: str, cookie: str, expect: bytes) -> None:
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        body = response.read()
        if response.status != 200 or expect not in body:
            raise RuntimeError(f"{url} answered {response.status} without {expect!r}")


def run(environment: benv.Environment, *, quick: bool = False) -> dict:
    from benches.models import DevBench, Host, Job

    seconds = 3 if quick else int(os.environ.get("BENCH_WRK_SECONDS", "10"))
    environment.reset_state()
    [user] = benv.make_users("web", 1)
    host = Host.objects.create(name="webhost", kind=Host.Kind.SSH, address="127.0.0.1", port=22, username="x",
                               script_path="/usr/local/bin/devbench-agent", capacity=1000)
    benches = DevBench.objects.bulk_create([
        DevBench(user=user, host=host, name=f"bench{index:03d}", actual_name=f"{user.username}_bench{index:03d}",
                 status=DevBench.Status.ACTIVE, ssh_info=str(6000 + index), vnc_info=str(5000 + index))
        for index in range(100)
    ])
    Job.objects.bulk_create([
        Job(bench=bench, original_bench_id=bench.pk, bench_name=bench.name, vm_name=bench.actual_name,
            owner=user, requested_by=user, host=host, command=Job.Command.CREATE, state=Job.State.SUCCEEDED,
            exit_code=0, last_seq=3)
        for bench in benches
    ])
    cookie = benv.session_cookie_for(user)
    stack = benv.Stack(environment, with_worker=False).start()
    results: dict[str, dict] = {}
    api_available = False
    try:
        base = stack.base_url
        _check(base + "/dashboard", cookie, b"bench099")
        try:
            _check(base + "/api/v1/benches/", cookie, b"bench049")
            api_available = True
        except OSError:
            api_available = False
        targets = [("trivial", "/_bench/trivial"), ("dashboard", "/dashboard")]
        if api_available:
            targets += [("api_benches", "/api/v1/benches/"), ("api_benches_100", "/api/v1/benches/?page_size=100")]
        targets += [("trivial_again", "/_bench/trivial"), ("trivial_anonymous", "/_bench/trivial-anonymous")]
        meter = benv.CpuMeter(environment, web=stack.pid("web"))
        with stack.profiled(NAME):
            for label, path in targets:
                wrk(base + path, cookie, 2)  # warm-up
                meter.restart()
                results[label] = wrk(base + path, cookie, seconds)
                results[label]["cpu_seconds"] = meter.read()
                print(f"  {label:18s} {results[label]['requests_per_second']:8.1f} req/s  "
                      f"p99 {results[label]['p99_ms']} ms", flush=True)
        usage = stack.usage()
    finally:
        stack.stop()
    ceiling = max(results["trivial"]["requests_per_second"], results["trivial_again"]["requests_per_second"])
    rows = [("ceiling: trivial signed-in view req/s", round(ceiling, 1), "", None)]
    for label, title in (("dashboard", "GET /dashboard"), ("api_benches", "GET /api/v1/benches/ (50)"),
                         ("api_benches_100", "GET /api/v1/benches/?page_size=100")):
        if label not in results:
            rows.append((title, "route missing", ">= 0.50 of ceiling", None))
            continue
        figures = results[label]
        ratio = figures["requests_per_second"] / ceiling
        ok = figures["non_2xx"] == 0 and not figures["socket_errors"]
        rows.append((f"{title} req/s (p99 ms)", f"{figures['requests_per_second']:.1f} ({figures['p99_ms']})",
                     "", None))
        rows.append((f"  ratio to ceiling{'' if ok else ' (ERRORS)'}", round(ratio, 2), ">= 0.50",
                     ok and ratio >= 0.5 if label != "api_benches_100" else None))
    rows.append(("trivial, no session req/s", round(results["trivial_anonymous"]["requests_per_second"], 1), "",
                 None))
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"connections": CONNECTIONS, "seconds": seconds, "threads": 2, "benches": 100,
                   "api_available": api_available},
        "results": {label: {k: v for k, v in figures.items() if k != "raw"} for label, figures in results.items()},
        "wrk_output": {label: figures["raw"] for label, figures in results.items()},
        "ceiling_requests_per_second": ceiling,
        "processes": usage,
        "rows": rows,
    }
