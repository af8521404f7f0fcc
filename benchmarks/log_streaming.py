"""1. Log streaming: 50 concurrent creates on a real sshd, each printing 2,000 numbered,
timestamped lines as fast as it can, watched by 50 WebSocket clients through Daphne.

Each client belongs to its own user and so sees exactly one job. A line counts as received when
the frame completing it arrives; its latency is that arrival minus the timestamp the agent
printed in it (same clock). Ceiling: the same 50 commands on the same sshd read straight with
paramiko (one connection, 50 channels, as DevBench's worker does), no DevBench in between.
After one uncounted warm-up round, rounds alternate ceiling and DevBench; the table shows the
median round (by throughput) and, for latency, also the worst round.

The aggregate rate is the lines received over the time from the moment the 50 jobs were asked
for (DevBench: the POSTs go out; ceiling: the commands are sent) to the last line's arrival.
Beside it, the burst rate: the same lines over the time from the first line printed to the last
arrival, which leaves out how long the jobs took to start — the ceiling's 50 commands start at
once and print together, DevBench's start one by one as their POSTs are answered.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import wsclient
from .data import api_keys_for, make_users, register_sshd_host
from .env import Environment
from .measure import CpuMeter, RemoteCpuGroup, collector_paused, load_average, median, percentile
from .stack import Stack

NAME = "log_streaming"
TITLE = "Log streaming (50 jobs x 2,000 lines)"
LINE_RE = re.compile(r"^line (\d+) (\d+\.\d+)$")


@dataclass
class StreamTrace:
    """One job's stream as one reader saw it."""

    numbers: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds
    stamps: list[float] = field(default_factory=list)  # when each line was printed
    first_ts: float | None = None
    last_arrival: float | None = None
    seqs: list[int] = field(default_factory=list)
    partial: str = ""
    messages: int = 0
    complete: bool = False
    done: bool = False

    def feed(self, text: str, arrival: float) -> None:
        text = self.partial + text
        *lines, self.partial = text.split("\n")
        for line in lines:
            match = LINE_RE.match(line)
            if match is None:
                continue
            stamp = float(match.group(2))
            self.numbers.append(int(match.group(1)))
            self.latencies.append(arrival - stamp)
            self.stamps.append(stamp)
            self.first_ts = stamp if self.first_ts is None else min(self.first_ts, stamp)
            self.last_arrival = arrival


def summarize(traces: list[StreamTrace], lines_per_job: int, started: float, posted: float | None = None) -> dict:
    """What the readers saw; ``started`` is when the jobs were asked for, ``posted`` (DevBench)
    when the last create was answered: the latency of lines printed before and after it is
    reported apart, since until then Daphne also answers the creates."""
    sent = len(traces) * lines_per_job
    received = sum(len(t.numbers) for t in traces)
    in_order = sum(1 for t in traces if t.numbers == list(range(1, lines_per_job + 1)))
    duplicates = sum(len(t.numbers) - len(set(t.numbers)) for t in traces)
    missing = sum(lines_per_job - len(set(t.numbers) & set(range(1, lines_per_job + 1))) for t in traces)
    latencies_ms = [lat * 1000 for t in traces for lat in t.latencies]
    starts = [t.first_ts for t in traces if t.first_ts is not None]
    ends = [t.last_arrival for t in traces if t.last_arrival is not None]
    span = (max(ends) - min(starts)) if starts and ends else None
    run = (max(ends) - started) if ends else None
    return {
        "lines_sent": sent,
        "lines_received": received,
        "lost": missing,
        "duplicates": duplicates,
        "streams_complete_in_order": in_order,
        "streams": len(traces),
        "seconds_from_start": round(run, 3) if run else None,
        "lines_per_second": round(received / run) if run else None,
        "span_seconds": round(span, 3) if span else None,
        "burst_lines_per_second": round(received / span) if span else None,
        "latency_p50_ms": round(percentile(latencies_ms, 50), 1) if latencies_ms else None,
        "latency_p99_ms": round(percentile(latencies_ms, 99), 1) if latencies_ms else None,
        "latency_max_ms": round(max(latencies_ms), 1) if latencies_ms else None,
        **(_latency_by_phase(traces, posted) if posted is not None else {}),
    }


def _latency_by_phase(traces: list[StreamTrace], posted: float) -> dict:
    """p99 latency of the lines printed while the creates were still being answered, and after."""
    during = [lat * 1000 for t in traces for lat, stamp in zip(t.latencies, t.stamps, strict=True) if stamp < posted]
    after = [lat * 1000 for t in traces for lat, stamp in zip(t.latencies, t.stamps, strict=True) if stamp >= posted]
    return {
        "lines_printed_while_posting": len(during),
        "latency_p99_ms_printed_while_posting": round(percentile(during, 99), 1) if during else None,
        "latency_p99_ms_printed_after_posts": round(percentile(after, 99), 1) if after else None,
    }


# --- the ceiling: paramiko straight from the sshd ---------------------------------------------

def paramiko_round(sshd, script, tag: str, jobs: int, lines: int) -> dict:
    client = sshd.connect()
    transport = client.get_transport()
    traces = [StreamTrace() for _ in range(jobs)]
    barrier = threading.Barrier(jobs)
    sent_at: list[float] = []

    def one(index: int) -> None:
        channel = transport.open_session()
        barrier.wait(timeout=60)
        sent_at.append(time.time())
        channel.exec_command(shlex.join([str(script), "create", f"ceil_{tag}{index}"]))
        trace = traces[index]
        while True:
            data = channel.recv(65536)
            if not data:
                break
            trace.feed(data.decode(), time.time())
        channel.recv_exit_status()
        channel.close()

    started = time.time()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, range(jobs)))
    client.close()
    return {**summarize(traces, lines, min(sent_at)), "wall_seconds": round(time.time() - started, 3)}


# --- DevBench: POST create, read the WebSocket ------------------------------------------------

async def devbench_round(stack: Stack, users, keys: dict[int, str], tag: str, lines: int) -> dict:
    clients = await wsclient.open_clients(stack.ws_url, [keys[user.pk] for user in users])
    traces = [StreamTrace() for _ in users]
    all_done = asyncio.Event()
    remaining = {"count": len(users)}
    frames = {"count": 0, "bytes": 0}

    def handler(trace: StreamTrace):
        def on_message(arrival: float, message: dict) -> None:
            frames["count"] += 1
            kind = message.get("type")
            if kind == "script_output":
                trace.messages += 1
                frames["bytes"] += len(message.get("data", ""))
                trace.seqs.append(message["seq"])
                trace.feed(message["data"], arrival)
            elif kind == "script_complete":
                trace.complete = True
            elif kind == "status_update" and trace.complete and not trace.done:
                trace.done = True
                remaining["count"] -= 1
                if remaining["count"] == 0:
                    all_done.set()
        return on_message

    readers = [asyncio.create_task(wsclient.read_into(ws, handler(trace)))
               for ws, trace in zip(clients, traces, strict=True)]
    started = time.time()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        answers = await asyncio.gather(*(
            loop.run_in_executor(pool, wsclient.post_json, stack.base_url + "/create-devbench", {"name": tag},
                                 keys[user.pk])
            for user in users
        ))
    posted = time.time()
    bad = [answer for answer in answers if answer[0] != 200]
    if bad:
        raise RuntimeError(f"create-devbench refused: {bad[:3]}")
    try:
        await asyncio.wait_for(all_done.wait(), timeout=240)
    except TimeoutError:
        pass
    finished = time.time()
    await wsclient.close_all(clients)
    await asyncio.gather(*readers)
    seq_gaps = sum(1 for t in traces if t.seqs != list(range(1, len(t.seqs) + 1)))
    return {
        **summarize(traces, lines, started, posted),
        "jobs_finished": sum(1 for t in traces if t.done),
        "seq_gaps_or_duplicates": seq_gaps,
        "script_output_frames": sum(t.messages for t in traces),
        "mean_lines_per_frame": round(sum(len(t.numbers) for t in traces) / max(1, sum(t.messages for t in traces)), 1),
        "post_seconds": round(posted - started, 3),
        "wall_seconds": round(finished - started, 3),
    }


def stored_lines(tag: str) -> int:
    """Numbered lines the database holds for this round's jobs (what a replay would show)."""
    from benches.models import JobChunk

    text = "".join(JobChunk.objects.filter(job__bench_name=tag).values_list("data", flat=True).iterator())
    return sum(1 for line in text.split("\n") if LINE_RE.match(line))


def run(environment: Environment, *, quick: bool = False, rounds: int | None = None,
        pool: str = "prefork", concurrency: int | None = None, workers: int | None = None) -> dict:
    from tests.sshd import make_agent_script, start_sshd

    jobs, lines = (10, 500) if quick else (50, int(os.environ.get("BENCH_STREAM_LINES", "2000")))
    rounds = rounds or (1 if quick else int(os.environ.get("BENCH_STREAM_ROUNDS", "3")))
    environment.reset_state()
    tmp = environment.tmp / NAME
    sshd = start_sshd(tmp / "sshd")
    nice = int(os.environ.get("BENCH_SSHD_NICE", "0"))
    if nice:  # the "remote host" yields the cores to DevBench, as a separate machine would not take them
        os.setpriority(os.PRIO_PROCESS, sshd.pid, nice)
    remote_group = RemoteCpuGroup(f"devbench-bench-remote-{os.getpid()}")
    remote_isolated = os.environ.get("BENCH_REMOTE_CGROUP", "1") != "0" and remote_group.enter(sshd.pid)
    print(f"  remote side (sshd and its agents) in a cpu cgroup of its own: {'yes' if remote_isolated else 'no'}",
          flush=True)
    stack = None
    try:
        script = make_agent_script(tmp, script_name="agent", create_lines=lines, step_delay=0, output_format="human")
        state_dir = tmp / "agent.state"
        register_sshd_host("streamhost", sshd, script)
        users = make_users("stream", jobs)
        keys = api_keys_for(users)
        workers = workers or int(os.environ.get("BENCH_WORKERS", "1"))
        pool = os.environ.get("BENCH_WORKER_POOL", pool)
        concurrency = concurrency or int(os.environ.get("BENCH_WORKER_CONCURRENCY", "16"))
        stack = Stack(environment, worker_pool=pool, worker_concurrency=concurrency, workers=workers).start()
        # Warm-up, not counted: the worker opens its SSH connection, Daphne and the worker their
        # Redis and database connections, Python its caches (a cold start is provisioning's "first
        # create").
        shutil.rmtree(state_dir, ignore_errors=True)
        asyncio.run(devbench_round(stack, users, keys, "warmup", lines))
        results = []
        for number in range(rounds):
            shutil.rmtree(state_dir, ignore_errors=True)
            load = load_average()
            meter = CpuMeter(environment, sshd=sshd.pid)
            with collector_paused():
                ceiling = paramiko_round(sshd, script, f"r{number}", jobs, lines)
            ceiling["cpu_seconds"] = meter.read()
            shutil.rmtree(state_dir, ignore_errors=True)
            tag = f"r{number}"
            meter = CpuMeter(environment, sshd=sshd.pid, web=stack.pid("web"),
                                  **{name: stack.pid(name) for name in stack.processes if name.startswith("worker")})
            with stack.profiled(f"{NAME}-r{number}"), collector_paused():
                devbench = asyncio.run(devbench_round(stack, users, keys, tag, lines))
            devbench["cpu_seconds"] = meter.read()
            devbench["stored_lines"] = stored_lines(tag)
            devbench["load_average_before"] = load
            results.append({"ceiling": ceiling, "devbench": devbench})
            print(f"  round {number + 1}: devbench {devbench['lines_per_second']} lines/s "
                  f"(burst {devbench['burst_lines_per_second']}) p99 {devbench['latency_p99_ms']} ms "
                  f"(while posting {devbench['latency_p99_ms_printed_while_posting']}, "
                  f"after {devbench['latency_p99_ms_printed_after_posts']}) lost {devbench['lost']}; "
                  f"ceiling {ceiling['lines_per_second']} lines/s "
                  f"(burst {ceiling['burst_lines_per_second']}) p99 {ceiling['latency_p99_ms']} ms", flush=True)
        usage = stack.usage()
    finally:
        if stack is not None:
            stack.stop()
        sshd.stop()
        remote_group.remove()

    ordered = sorted(results, key=lambda r: r["devbench"]["lines_per_second"] or 0)
    median_round = ordered[len(ordered) // 2]
    dev, ceil = median_round["devbench"], median_round["ceiling"]
    ceiling_rate = median([r["ceiling"]["lines_per_second"] for r in results])
    ratio = (dev["lines_per_second"] or 0) / ceiling_rate if ceiling_rate else None
    burst_ceiling = median([r["ceiling"]["burst_lines_per_second"] for r in results])
    lost_total = sum(r["devbench"]["lost"] + r["devbench"]["duplicates"] for r in results)
    in_order_all = all(r["devbench"]["streams_complete_in_order"] == jobs for r in results)
    stored_ok = all(r["devbench"]["stored_lines"] == jobs * lines for r in results)
    worst_p99 = max(r["devbench"]["latency_p99_ms"] or 1e9 for r in results)
    rows = [
        ("lines received / sent (all rounds)",
         f"{sum(r['devbench']['lines_received'] for r in results)} / {rounds * jobs * lines}",
         "loss 0, in order, no dup", lost_total == 0 and in_order_all and stored_ok),
        ("aggregate lines/s (median round)", dev["lines_per_second"], ">= 20,000",
         (dev["lines_per_second"] or 0) >= 20000),
        ("ceiling lines/s (paramiko, median)", ceiling_rate, "", None),
        ("ratio to ceiling", round(ratio, 2) if ratio else None, ">= 0.50", bool(ratio and ratio >= 0.5)),
        ("burst lines/s from the first line: devbench / ceiling", f"{dev['burst_lines_per_second']} / "
         f"{burst_ceiling}", "", None),
        ("latency p50 / p99 ms (median round)", f"{dev['latency_p50_ms']} / {dev['latency_p99_ms']}",
         "p99 <= 250", (dev["latency_p99_ms"] or 1e9) <= 250),
        ("latency p99 ms, worst round", worst_p99, "", None),
        ("p99 ms of lines printed while the creates are answered / after (median round)",
         f"{dev.get('latency_p99_ms_printed_while_posting')} / {dev.get('latency_p99_ms_printed_after_posts')}", "",
         None),
        ("ceiling latency p50 / p99 ms", f"{ceil['latency_p50_ms']} / {ceil['latency_p99_ms']}", "", None),
        ("peak RSS web / worker MiB", f"{usage['web']['peak_rss_mib']} / "
         + " + ".join(str(u["peak_rss_mib"]) for n, u in usage.items() if n.startswith("worker")), "",
         None),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"jobs": jobs, "lines_per_job": lines, "rounds": rounds, "worker_pool": pool,
                   "worker_concurrency": concurrency, "worker_processes": workers, "sshd_nice": nice,
                   "remote_side_in_own_cgroup": remote_isolated},
        "rounds": results,
        "median_round": median_round,
        "ceiling_lines_per_second": ceiling_rate,
        "ratio": ratio,
        "processes": usage,
        "rows": rows,
    }
