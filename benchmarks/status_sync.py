"""3. Status sync: 1,000 benches across 4 hosts (4 sshd on loopback), one sync pass.

The agents' state is written directly (250 VMs per host, one in ten powered off so the pass has
changes to store and publish). ``services.sync_all_statuses()`` runs here, in this process, from
a cold start (no pooled connection). SSH connections are counted on the servers' side: the
``Accepted publickey`` lines each sshd logs. Beside it, the original's way on 100 benches: one
``ssh host script status NAME`` (OpenSSH client, a new connection) per bench, one after another.
"""

from __future__ import annotations

import json
import time

from .data import make_users, register_sshd_host, sshd_accepted
from .env import Environment

NAME = "status_sync"
TITLE = "Status sync (1,000 benches on 4 hosts)"


def _write_vms(state_dir, names: list[str], stopped: set[str]) -> None:
    vm_dir = state_dir / "vms"
    vm_dir.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        record = {"state": "poweroff" if name in stopped else "running", "ssh_port": 6000 + index,
                  "vnc_port": 5000 + index, "backend": "simulated", "created": time.time()}
        (vm_dir / f"{name}.json").write_text(json.dumps(record))


def run(environment: Environment, *, quick: bool = False) -> dict:
    from benches import services
    from benches.models import DevBench
    from benches.provisioning import transport
    from tests.sshd import make_agent_script, start_sshd

    hosts_count, total, original_sample = 4, (200 if quick else 1000), (20 if quick else 100)
    environment.reset_state()
    tmp = environment.tmp / NAME
    servers = []
    try:
        users = make_users("sync", total // 10)
        hosts, scripts = [], []
        for index in range(hosts_count):
            sshd = start_sshd(tmp / f"sshd{index}")
            servers.append(sshd)
            script = make_agent_script(tmp, script_name=f"agent{index}", step_delay=0, output_format="human")
            scripts.append(script)
            hosts.append(register_sshd_host(f"synchost{index}", sshd, script))
        benches = []
        for number in range(total):
            user = users[number % len(users)]
            name = f"b{number}"
            benches.append(DevBench(user=user, host=hosts[number % hosts_count], name=name,
                                    actual_name=f"{user.username}_{name}", status=DevBench.Status.ACTIVE))
        DevBench.objects.bulk_create(benches, batch_size=500)
        stopped_expected = 0
        for index in range(hosts_count):
            names = [b.actual_name for b in benches if b.host_id == hosts[index].pk]
            stopped = set(names[::10])
            stopped_expected += len(stopped)
            _write_vms(tmp / f"agent{index}.state", names, stopped)

        transport.close_all()
        before = [sshd_accepted(sshd) for sshd in servers]
        started = time.perf_counter()
        counts = services.sync_all_statuses()
        wall = time.perf_counter() - started
        transport.close_all()
        time.sleep(0.3)  # sshd writes its log line
        connections = sum(sshd_accepted(sshd) - b for sshd, b in zip(servers, before, strict=True))
        changed = sum(c["changed"] for c in counts.values())
        inactive = DevBench.objects.filter(status=DevBench.Status.INACTIVE).count()

        # The original: one ssh per bench, one after another.
        sample = benches[:original_sample]
        before = [sshd_accepted(sshd) for sshd in servers]
        started = time.perf_counter()
        statuses = []
        for bench in sample:
            index = hosts.index(next(h for h in hosts if h.pk == bench.host_id))
            result = servers[index].run(str(scripts[index]), "status", bench.actual_name)
            statuses.append(result.stdout.strip())
        original_wall = time.perf_counter() - started
        time.sleep(0.3)
        original_connections = sum(sshd_accepted(sshd) - b for sshd, b in zip(servers, before, strict=True))
    finally:
        for sshd in servers:
            sshd.stop()
    per_bench_original = original_wall / len(sample)
    rows = [
        ("benches checked / changed stored", f"{sum(c['checked'] for c in counts.values())} / {changed}",
         f"{total} / {stopped_expected}", changed == stopped_expected == inactive),
        ("one pass: wall time s", round(wall, 2), "<= 5", wall <= 5),
        ("one pass: SSH connections opened", connections, f"<= {hosts_count}", connections <= hosts_count),
        ("one pass: remote commands", sum(c["commands"] for c in counts.values()), "", None),
        (f"original way, {len(sample)} benches: wall s", round(original_wall, 2), "", None),
        (f"original way, {len(sample)} benches: connections", original_connections, "", None),
        (f"original way extrapolated to {total}: s", round(per_bench_original * total, 1), "", None),
        ("speed-up per bench", round(per_bench_original * total / wall, 1), "", None),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"hosts": hosts_count, "benches": total, "original_sample": len(sample)},
        "per_host": counts,
        "wall_seconds": wall,
        "connections": connections,
        "original": {"benches": len(sample), "wall_seconds": original_wall, "connections": original_connections,
                     "sample_output": statuses[:3]},
        "rows": rows,
    }
