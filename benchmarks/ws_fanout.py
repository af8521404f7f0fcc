"""5. WebSocket fan-out: 1,000 connected clients across 100 users (10 each) on one Daphne.

For each user in turn, one bench's status changes: the row is updated and the status_update is
published to the user's group exactly as ``services.sync_host_statuses`` does. Delivery latency
is from just before the publish to the frame's arrival at each client. Every client counts what
it receives: the user's 10 clients must get the event once each, and nobody else anything.
Then the same 100 changes at once (a burst, as one sync pass changing 100 users' benches).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from . import wsclient
from .data import api_keys_for, make_users
from .env import Environment
from .measure import CpuMeter, percentile
from .stack import Stack

NAME = "ws_fanout"
TITLE = "WebSocket fan-out (1,000 clients, 100 users)"


async def _measure(stack: Stack, users, keys, benches, per_user: int, gap: float) -> dict:
    from asgiref.sync import sync_to_async

    from benches.models import DevBench
    from benches.provisioning import messages
    from benches.provisioning.publishing import publisher, user_group

    owners = [user for user in users for _ in range(per_user)]
    connect_started = time.time()
    clients = await wsclient.open_clients(stack.ws_url, [keys[user.pk] for user in owners], batch=50)
    connect_seconds = time.time() - connect_started
    received: list[list[tuple[float, dict]]] = [[] for _ in clients]

    def collector(index: int):
        return lambda arrival, message: received[index].append((arrival, message))

    readers = [asyncio.create_task(wsclient.read_into(ws, collector(i))) for i, ws in enumerate(clients)]
    await asyncio.sleep(1.0)  # every group_add has reached Redis

    def change(bench, status: str) -> float:
        DevBench.objects.filter(pk=bench.pk).update(status=status)
        bench.status = status
        payload = messages.status_update(bench)
        sent = time.time()
        publisher.send(user_group(bench.user_id), [payload])
        return sent

    def change_many(items) -> dict[int, float]:
        for bench, status in items:
            DevBench.objects.filter(pk=bench.pk).update(status=status)
            bench.status = status
        sent = time.time()
        publisher.send_many([(user_group(b.user_id), [messages.status_update(b)]) for b, _s in items])
        return {bench.pk: sent for bench, _s in items}

    sent_at: dict[tuple[str, int], float] = {}
    for bench in benches:  # one user at a time
        sent_at["single", bench.pk] = await sync_to_async(change)(bench, "inactive")
        await asyncio.sleep(gap)
    await asyncio.sleep(1.0)
    burst = await sync_to_async(change_many)([(bench, "active") for bench in benches])
    for bench_id, sent in burst.items():
        sent_at["burst", bench_id] = sent
    await asyncio.sleep(2.0)
    await wsclient.close_all(clients)
    await asyncio.gather(*readers)

    bench_owner = {bench.pk: bench.user_id for bench in benches}
    latencies: dict[str, list[float]] = defaultdict(list)
    wrong = 0
    per_event: dict[tuple[str, int], int] = defaultdict(int)
    for index, frames in enumerate(received):
        owner = owners[index].pk
        for arrival, message in frames:
            if message.get("type") != "status_update":
                continue
            bench_id = message["devbenchId"]
            if bench_owner.get(bench_id) != owner:
                wrong += 1
                continue
            phase = "single" if message["status"] == "inactive" else "burst"
            per_event[phase, bench_id] += 1
            latencies[phase].append((arrival - sent_at[phase, bench_id]) * 1000)
    exact = sum(1 for key in sent_at if per_event.get(key, 0) == per_user)
    return {
        "clients": len(clients),
        "connect_seconds": round(connect_seconds, 2),
        "events": len(sent_at),
        "events_delivered_exactly_to_owner": exact,
        "frames_to_wrong_user": wrong,
        "single": _stats(latencies["single"]),
        "burst": _stats(latencies["burst"]),
    }


def _stats(values: list[float]) -> dict:
    return {"deliveries": len(values),
            "p50_ms": round(percentile(values, 50), 1) if values else None,
            "p99_ms": round(percentile(values, 99), 1) if values else None,
            "max_ms": round(max(values), 1) if values else None}


def run(environment: Environment, *, quick: bool = False) -> dict:
    from benches.models import DevBench, Host

    users_count, per_user = (20, 5) if quick else (100, 10)
    environment.reset_state()
    users = make_users("fan", users_count)
    keys = api_keys_for(users)
    host = Host.objects.create(name="fanhost", kind=Host.Kind.SSH, address="127.0.0.1", port=22, username="x",
                               script_path="/usr/local/bin/devbench-agent", capacity=10000)
    benches = DevBench.objects.bulk_create([
        DevBench(user=user, host=host, name="fan", actual_name=f"{user.username}_fan", status=DevBench.Status.ACTIVE)
        for user in users
    ])
    stack = Stack(environment, with_worker=False).start()
    try:
        meter = CpuMeter(environment, web=stack.pid("web"))
        with stack.profiled(NAME):
            figures = asyncio.run(_measure(stack, users, keys, benches, per_user, gap=0.02))
        figures["cpu_seconds"] = meter.read()
        usage = stack.usage()
    finally:
        stack.stop()
    single, burst = figures["single"], figures["burst"]
    expected = users_count * per_user
    rows = [
        ("clients connected (connect time s)", f"{figures['clients']} ({figures['connect_seconds']})",
         f"{expected}", figures["clients"] == expected),
        ("events reaching exactly their user's clients",
         f"{figures['events_delivered_exactly_to_owner']} / {figures['events']}", "all",
         figures["events_delivered_exactly_to_owner"] == figures["events"]),
        ("frames delivered to another user", figures["frames_to_wrong_user"], "0",
         figures["frames_to_wrong_user"] == 0),
        ("one change at a time: p50 / p99 ms", f"{single['p50_ms']} / {single['p99_ms']}", "p99 <= 200",
         (single["p99_ms"] or 1e9) <= 200),
        ("burst of 100 changes: p50 / p99 ms", f"{burst['p50_ms']} / {burst['p99_ms']}", "", None),
        ("peak RSS web MiB", usage["web"]["peak_rss_mib"], "", None),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"users": users_count, "clients_per_user": per_user, "gap_seconds": 0.02},
        "figures": figures,
        "processes": usage,
        "rows": rows,
    }
