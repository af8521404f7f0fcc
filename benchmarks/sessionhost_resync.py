"""6. Session-host resync: 1,000 users' session hosts already in place in the Kubernetes emulator
(tests/k8s_emulator.py: kmock over real HTTP, the official client talking to it through a
kubeconfig), one full resync; then the first ensure for one new user.

The 1,000 users' objects are stored straight into the emulator (what ``ensure`` creates, with the
server's fields, pods Running and Ready, certificates Ready), so the resync finds nothing to do.
Requests are counted from the emulator's request log. The emulator runs in this process (its own
thread and event loop), so the wall time includes serving the requests too.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import Counter

from .data import make_users
from .env import Environment

NAME = "sessionhost_resync"
TITLE = "Session-host resync (1,000 users in the Kubernetes emulator)"
PLURALS = {"Namespace": "namespaces", "PersistentVolumeClaim": "persistentvolumeclaims", "Pod": "pods",
           "Service": "services", "Ingress": "ingresses", "Certificate": "certificates"}


def _in_place(manifest: dict) -> dict:
    body = copy.deepcopy(manifest)
    metadata = body.setdefault("metadata", {})
    metadata.update(uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z", resourceVersion="1")
    if body["kind"] == "Namespace":
        body["status"] = {"phase": "Active"}
    elif body["kind"] == "Pod":
        body["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    elif body["kind"] == "Certificate":
        body["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}
    return body


def run(environment: Environment, *, quick: bool = False) -> dict:
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sessionhosts import manifests, reconcile, services
    from sessionhosts.config import SessionHostConfig
    from sessionhosts.kube import KINDS
    from sessionhosts.models import SessionHost
    from tests import k8s_emulator

    count = 100 if quick else 1000
    environment.reset_state()
    emulator, stop = k8s_emulator.start()
    saved = settings.DEVBENCH_KUBECONFIG, settings.DEVBENCH_KUBE_IN_CLUSTER
    try:
        kubeconfig = environment.tmp / "kubeconfig"
        kubeconfig.write_text(emulator.kubeconfig())
        settings.DEVBENCH_KUBECONFIG, settings.DEVBENCH_KUBE_IN_CLUSTER = str(kubeconfig), False
        config = SessionHostConfig.from_settings()
        users = make_users("kube", count)
        started = time.perf_counter()
        objects = 0
        for user in users:
            for manifest in manifests.make_all(config, user.username):
                namespace = manifest["metadata"].get("namespace")
                emulator.put(PLURALS[manifest["kind"]], namespace, manifest["metadata"]["name"], _in_place(manifest))
                objects += 1
        SessionHost.objects.bulk_create(
            [SessionHost(user=user, namespace=config.namespace_for(user.username)) for user in users], batch_size=500
        )
        setup_seconds = time.perf_counter() - started

        emulator.clear_calls()
        started = time.perf_counter()
        report = services.resync_session_hosts()
        resync_wall = time.perf_counter() - started
        calls = emulator.calls
        ready = SessionHost.objects.filter(state=SessionHost.State.READY).count()

        # The periodic case: the same resync again, every row already recording what it finds.
        emulator.clear_calls()
        with CaptureQueriesContext(connection) as again_queries:
            started = time.perf_counter()
            services.resync_session_hosts()
            again_wall = time.perf_counter() - started
        again_calls = len(emulator.calls)

        emulator.clear_calls()
        started = time.perf_counter()
        result = reconcile.resync(services.kube.cluster(), config, active=[u.username for u in users])
        cluster_only_wall = time.perf_counter() - started
        cluster_only_calls = len(emulator.calls)

        [newcomer] = make_users("newcomer", 1)
        emulator.clear_calls()
        started = time.perf_counter()
        status = services.ensure_session_host(user=newcomer)
        ensure_wall = time.perf_counter() - started
        ensure_calls = emulator.calls
        emulator.clear_calls()
        services.ensure_session_host(user=newcomer)
        repeat_calls = emulator.calls
    finally:
        settings.DEVBENCH_KUBECONFIG, settings.DEVBENCH_KUBE_IN_CLUSTER = saved
        stop()

    by_kind = Counter(str(call) for call in calls)
    writes = [call for call in calls if call.method in k8s_emulator.WRITE_METHODS]
    lists = [call for call in calls if call.method == "GET" and call.query.get("labelSelector")]
    ensure_writes = [call for call in ensure_calls if call.method in k8s_emulator.WRITE_METHODS]
    repeat_writes = [call for call in repeat_calls if call.method in k8s_emulator.WRITE_METHODS]
    rows = [
        ("session hosts in place (objects)", f"{count} ({objects})", "", None),
        ("resync: API requests", len(calls), f"{len(KINDS)} (one LIST per kind)",
         len(calls) == len(lists) == len(KINDS) and len(by_kind) == len(KINDS)),
        ("resync: writes", len(writes), "0", not writes),
        ("resync: wall time s (incl. recording 1,000 new states)", round(resync_wall, 2), "", None),
        ("  of which LISTs and decisions s", round(cluster_only_wall, 2), "", None),
        ("resync again, nothing changed: wall s / DB queries / API requests",
         f"{again_wall:.2f} / {len(again_queries)} / {again_calls}", "", None),
        ("resync: hosts recorded ready / errors", f"{ready} / {len(report.errors)}", f"{count} / 0",
         ready == count and not report.errors and not result.created),
        ("first ensure for a new user: writes", len(ensure_writes), "<= 7", len(ensure_writes) <= 7),
        ("  requests in all / wall ms", f"{len(ensure_calls)} / {ensure_wall * 1000:.0f}", "", None),
        ("  repeat ensure: writes", len(repeat_writes), "0", not repeat_writes),
    ]
    return {
        "name": NAME,
        "title": TITLE,
        "config": {"users": count, "objects": objects, "setup_seconds": round(setup_seconds, 1)},
        "resync_again": {"wall_seconds": again_wall, "db_queries": len(again_queries), "requests": again_calls},
        "resync": {"requests": dict(by_kind), "writes": len(writes), "wall_seconds": resync_wall,
                   "cluster_only_wall_seconds": cluster_only_wall, "cluster_only_requests": cluster_only_calls,
                   "report": {"checked": report.checked, "created": report.created, "deleted": report.deleted,
                              "errors": report.errors, "orphans": report.orphans}},
        "first_ensure": {"requests": [str(call) for call in ensure_calls], "wall_seconds": ensure_wall,
                         "status": status.as_json(), "repeat_requests": [str(call) for call in repeat_calls]},
        "rows": rows,
    }
