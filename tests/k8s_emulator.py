"""A Kubernetes API server for the tests: kmock's ``KubernetesEmulator`` on a real loopback port.

DevBench talks to it with the official client over HTTP, through a kubeconfig file, exactly as it
talks to a cluster. The subclass here adds what a real API server does and kmock 0.8 does not:

- cluster-scoped ``/api/v1/namespaces[/<name>]`` paths (kmock's parser answers 500/404 for them),
- ``labelSelector`` on LIST (equality terms, as DevBench uses),
- server-set fields on create (namespace, uid, resourceVersion, creationTimestamp, a Pending pod),
  201 for a create, 404 when the namespace is missing, 403 when it is terminating,
- deleting a namespace deletes what is in it (once its finalizers allow it to go).

Fixtures: ``kube_emulator_server`` (session: one server) and ``kube`` (per test: emptied, with
DevBench's settings pointed at it). ``kube.calls`` is the request log, ``kube.writes()`` the
non-GET part of it. ``kube.faults`` makes the server fail as real ones do (an error Status instead
of the answer, the error after applying the write, or no answer at all; see ``Faults``).
``python -m tests.k8s_emulator`` runs it standalone (see docs/kubernetes.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attrs
import kmock
import pytest
from kmock._internal import parsing

RESOURCES = {
    "namespaces": "v1/namespaces",
    "pods": "v1/pods",
    "services": "v1/services",
    "persistentvolumeclaims": "v1/persistentvolumeclaims",
    "ingresses": "networking.k8s.io/v1/ingresses",
    "certificates": "cert-manager.io/v1/certificates",
}
KINDS = {
    "namespaces": "Namespace",
    "pods": "Pod",
    "services": "Service",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "ingresses": "Ingress",
    "certificates": "Certificate",
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- kmock's path parser, fixed for cluster-scoped namespaces -----------------------------------

_kmock_parse_path = parsing.parse_path


def _parse_path(path: str) -> parsing.ParsedPath:
    """``/api/v1/namespaces`` and ``/api/v1/namespaces/<name>`` are the namespaces resource itself."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (3, 4):
        name = parts[3] if len(parts) == 4 else None
        return parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name)
    return _kmock_parse_path(path)


# --- the emulator -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """One request the emulator served."""

    method: str
    path: str
    query: dict[str, str]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector_matches(obj: dict[str, Any], selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif labels.get(term) is None:
            return False
    return True


# --- fault injection ----------------------------------------------------------------------------

REASONS = {409: "AlreadyExists", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable"}
HANG_LIMIT_SECONDS = 60.0  # a hung request is dropped at the latest then (or when the test ends)


@dataclass
class Fault:
    """How to answer the next ``count`` requests whose method is ``method`` and path matches ``path``."""

    method: str
    path: re.Pattern[str]
    count: int
    status: int = 500
    message: str = ""
    commit: bool = False  # apply the request first (the write happens), then answer the error
    hang: bool = False  # never answer; the request is dropped unapplied when released

    def error(self, request: kmock.Request) -> kmock.KubernetesError:
        message = self.message
        if not message and self.status == 409:
            name = ((request.data or {}).get("metadata") or {}).get("name") if isinstance(request.data, dict) else None
            message = f'{request.resource.plural if request.resource else "object"} "{name}" already exists'
        return kmock.KubernetesError(
            status=self.status, reason=REASONS.get(self.status, "Error"), message=message or "injected failure"
        )


@attrs.define(kw_only=True)
class DevBenchKubeEmulator(kmock.KubernetesEmulator):
    calls: list[Call] = attrs.field(factory=list, init=False)
    refusals: dict[tuple[str, str], tuple[int, str]] = attrs.field(factory=dict, init=False)
    faults: list[Fault] = attrs.field(factory=list, init=False)
    released: asyncio.Event | None = attrs.field(default=None, init=False)  # set: hung requests end
    auto_ready: bool = False  # standalone demo: pods Running+Ready, certificates Ready, at once

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.count > 0 and fault.method == method and fault.path.search(path):
                fault.count -= 1
                return fault
        return None

    def release_hung(self) -> None:
        if self.released is not None:
            self.released.set()
        self.released = None

    async def _hang(self) -> None:
        if self.released is None:
            self.released = asyncio.Event()
        try:
            await asyncio.wait_for(self.released.wait(), timeout=HANG_LIMIT_SECONDS)
        except TimeoutError:
            pass

    def _live(self, plural: str, namespace: str | None, name: str) -> Any:
        key = (kmock.resource(RESOURCES[plural]), namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj

    def _cascade(self, namespace: str) -> None:
        """The namespace is gone: so is everything in it."""
        for (_resource, obj_namespace, _name), obj in self.objects.items():
            if obj_namespace == namespace and not obj.deleted:
                obj.delete()

    def _prepare_create(self, request: kmock.Request) -> None:
        plural = request.resource.plural
        metadata = request.data.setdefault("metadata", {})
        namespace = request.namespace or metadata.get("namespace")
        if plural != "namespaces":
            live_namespace = self._live("namespaces", None, namespace)
            if live_namespace is None:
                raise kmock.KubernetesError(
                    status=404, reason="NotFound", message=f'namespaces "{namespace}" not found'
                )
            if (live_namespace.get("metadata") or {}).get("deletionTimestamp"):
                raise kmock.KubernetesError(
                    status=403, reason="Forbidden",
                    message=f"unable to create new content in namespace {namespace} because it is being terminated",
                )
            metadata["namespace"] = namespace
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", _now())
        metadata["resourceVersion"] = str(len(self.calls))
        if plural == "namespaces":
            request.data["status"] = {"phase": "Active"}
        if plural == "pods":
            request.data["status"] = {"phase": "Pending"}
            if self.auto_ready:
                request.data["status"] = {
                    "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                }
        if plural == "certificates" and self.auto_ready:
            request.data["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}

    async def _handle(self, request: kmock.Request) -> Any:
        self.calls.append(Call(str(request.method.value), request.url.path, dict(request.params)))
        try:
            return await self._serve(request)
        finally:
            # kmock keeps every request for its DSL, and matching scans them: each request would
            # cost more than the last. ``calls`` is our log; forget served requests.
            self._requests.remove(request)

    async def _serve(self, request: kmock.Request) -> Any:
        fault = self._take_fault(str(request.method.value), request.url.path)
        if fault is not None and fault.hang:
            await self._hang()
            raise kmock.KubernetesError(status=504, reason="Timeout", message="hung request released unapplied")
        if fault is not None and not fault.commit:
            raise fault.error(request)
        response = await self._serve_normally(request)
        if fault is not None:  # commit: applied, and yet the client hears an error
            raise fault.error(request)
        return response

    async def _serve_normally(self, request: kmock.Request) -> Any:
        refusal = self.refusals.get((str(request.method.value), request.url.path))
        if refusal is not None:
            raise kmock.KubernetesError(status=refusal[0], reason="Refused", message=refusal[1])
        resource = request.resource
        if (
            resource is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict)
            and resource.plural in RESOURCES
        ):
            self._prepare_create(request)
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)
        if (
            resource is not None and resource.plural == "namespaces" and request.action == kmock.action.DELETE
            and self._live("namespaces", None, request.name) is None
        ):
            async with self._lock:
                self._cascade(request.name)
        return response

    async def _serve_list(self, request: kmock.Request) -> Any:
        body = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            body["items"] = [item for item in body["items"] if _selector_matches(item, selector)]
        body["apiVersion"] = "v1"
        body["kind"] = f"{KINDS.get(request.resource.plural, 'Object')}List"
        return body


class Faults:
    """Make the next matching requests fail, as an API server under trouble does.

    ``method`` is exact (``"POST"``); ``path`` a regular expression searched in the URL path
    (``r"/pods$"``, ``r"^/api/v1/pods$"`` for the LIST). Every request is still logged in
    ``kube.calls``. Rules are consumed in the order given; ``kube.reset()`` clears them.
    """

    def __init__(self, kube: KubeEmulator):
        self._kube = kube

    def _add(self, fault: Fault) -> None:
        self._kube._run(lambda: self._kube.emulator.faults.append(fault))

    def fail_next(
        self, method: str, path: str, *, status: int = 500, count: int = 1, message: str = "", commit: bool = False
    ) -> None:
        """Answer the next ``count`` matching requests with an error Status (``status``, its usual
        reason, ``message``) instead of serving them; with ``commit``, serve them first (the
        object is created or deleted) and answer the error anyway."""
        self._add(Fault(method.upper(), re.compile(path), count, status=status, message=message, commit=commit))

    def hang_next(self, method: str, path: str, *, count: int = 1) -> None:
        """Accept the next ``count`` matching requests and never answer them (nothing applied)."""
        self._add(Fault(method.upper(), re.compile(path), count, hang=True))

    def clear(self) -> None:
        """No more faults; hung requests end (dropped, unapplied)."""
        def clear() -> None:
            self._kube.emulator.faults.clear()
            self._kube.emulator.release_hung()

        self._kube._run(clear)

    def pending(self) -> int:
        """How many injected answers are still to be given."""
        return self._kube._run(lambda: sum(fault.count for fault in self._kube.emulator.faults))


class KubeEmulator:
    """The running emulator, driven from test threads (every state change runs on its loop)."""

    def __init__(self, emulator: DevBenchKubeEmulator, server: kmock.Server, loop: asyncio.AbstractEventLoop):
        self.emulator = emulator
        self.server = server
        self.loop = loop
        self.url = str(server.url).rstrip("/")
        self.faults = Faults(self)

    def _run(self, fn: Callable[[], Any]) -> Any:
        async def locked() -> Any:
            async with self.emulator._lock:
                return fn()

        return asyncio.run_coroutine_threadsafe(locked(), self.loop).result(timeout=10)

    # --- the request log ---
    @property
    def calls(self) -> list[Call]:
        return list(self.emulator.calls)

    def writes(self) -> list[Call]:
        """The requests that change state (POST, PUT, PATCH, DELETE)."""
        return [call for call in self.calls if call.method in WRITE_METHODS]

    def clear_calls(self) -> None:
        self._run(self.emulator.calls.clear)

    # --- the objects ---
    def reset(self) -> None:
        """No objects, no calls, no refusals, no faults (hung requests are dropped)."""
        def clear() -> None:
            self.emulator.objects.clear()
            self.emulator.calls.clear()
            self.emulator.refusals.clear()
            self.emulator.faults.clear()
            self.emulator.release_hung()

        self._run(clear)

    def get(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A stored object as a plain dict, None when absent or deleted."""
        def read() -> dict[str, Any] | None:
            obj = self.emulator._live(plural, namespace, name)
            return None if obj is None else obj.raw

        return self._run(read)

    def names(self, plural: str) -> set[tuple[str | None, str]]:
        """(namespace, name) of every live object of a kind."""
        wanted = kmock.resource(RESOURCES[plural])

        def collect() -> set[tuple[str | None, str]]:
            return {
                (namespace, name)
                for (resource, namespace, name), obj in self.emulator.objects.items()
                if resource == wanted and not obj.deleted
            }

        return self._run(collect)

    def refuse(self, method: str, path: str, *, status: int, message: str) -> None:
        """Answer ``method path`` with a Kubernetes error Status from now on (until reset)."""
        def add() -> None:
            self.emulator.refusals[method.upper(), path] = (status, message)

        self._run(add)

    def put(self, plural: str, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        """Store an object as it is (no API call, not logged)."""
        def store() -> None:
            self.emulator.objects[RESOURCES[plural], namespace, name] = body

        self._run(store)

    def patch(self, plural: str, namespace: str | None, name: str, changes: dict[str, Any]) -> None:
        """Merge ``changes`` into a stored object, as a controller or kubelet would."""
        self._run(lambda: self.emulator.objects[RESOURCES[plural], namespace, name].patch(changes))

    def remove(self, plural: str, namespace: str | None, name: str) -> None:
        """Delete an object behind DevBench's back (drift, or a finalizer released), with its contents."""
        def delete() -> None:
            self.emulator.objects[RESOURCES[plural], namespace, name].delete()
            if plural == "namespaces":
                self.emulator._cascade(name)

        self._run(delete)

    def set_pod(
        self, namespace: str, *, phase: str, ready: bool = False, annotations: dict[str, str] | None = None
    ) -> None:
        """What the kubelet reports for the session-host pod."""
        status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
        changes: dict[str, Any] = {"status": status}
        if annotations is not None:
            changes["metadata"] = {"annotations": annotations}
        self.patch("pods", namespace, "session-host", changes)

    def set_certificate(self, namespace: str, *, ready: bool, reason: str = "", message: str = "") -> None:
        """What cert-manager reports for the session-host certificate."""
        condition = {"type": "Ready", "status": "True" if ready else "False", "reason": reason, "message": message}
        self.patch("certificates", namespace, "session-host-tls", {"status": {"conditions": [condition]}})

    def kubeconfig(self) -> str:
        """A kubeconfig naming this server."""
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: emulator\n  cluster:\n    server: {self.url}\n"
            "users:\n- name: devbench\n  user:\n    token: emulator-token\n"
            "contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: devbench\n"
            "current-context: emulator\n"
        )


def start(
    *, host: str = "127.0.0.1", port: int | None = None, auto_ready: bool = False
) -> tuple[KubeEmulator, Callable[[], None]]:
    """Run the emulator on its own event loop in a daemon thread; returns it and a stop function."""
    parsing.parse_path = _parse_path
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop_event: asyncio.Event | None = None
    handle: dict[str, KubeEmulator] = {}
    failure: list[BaseException] = []

    async def serve() -> None:
        nonlocal stop_event
        stop_event = asyncio.Event()
        emulator = DevBenchKubeEmulator(auto_ready=auto_ready)
        for resource in RESOURCES.values():
            emulator.resources[resource] = {}
        async with emulator, kmock.Server(emulator, host=host, port=port) as server:
            handle["emulator"] = KubeEmulator(emulator, server, loop)
            ready.set()
            await stop_event.wait()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if failure or "emulator" not in handle:
        raise RuntimeError(f"the Kubernetes emulator did not start: {failure}")

    def stop() -> None:
        loop.call_soon_threadsafe(stop_event.set)
        thread.join(timeout=10)
        parsing.parse_path = _kmock_parse_path

    return handle["emulator"], stop


# --- pytest fixtures ----------------------------------------------------------------------------

def session_host_objects(namespace: str) -> dict[str, set[tuple[str | None, str]]]:
    """Every object of one user's session host, as ``KubeEmulator.names`` lists them by plural."""
    return {
        "namespaces": {(None, namespace)},
        "persistentvolumeclaims": {(namespace, "home"), (namespace, "workspace")},
        "pods": {(namespace, "session-host")},
        "services": {(namespace, "session-host")},
        "ingresses": {(namespace, "session-host")},
        "certificates": {(namespace, "session-host-tls")},
    }


@pytest.fixture(scope="session")
def kube_emulator_server() -> Iterator[KubeEmulator]:
    """One emulator for the whole run."""
    emulator, stop = start()
    yield emulator
    stop()


@pytest.fixture
def kube(kube_emulator_server: KubeEmulator, settings, tmp_path: Path) -> Iterator[KubeEmulator]:
    """The emulator, emptied, with DevBench configured for it through a kubeconfig file."""
    kube_emulator_server.reset()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube_emulator_server.kubeconfig())
    settings.DEVBENCH_KUBECONFIG = str(kubeconfig)
    settings.DEVBENCH_KUBE_IN_CLUSTER = False
    yield kube_emulator_server
    kube_emulator_server.faults.clear()  # no fault outlives its test, no request stays hung


@pytest.fixture
def no_kube(settings) -> None:
    """DevBench without any Kubernetes configuration."""
    settings.DEVBENCH_KUBECONFIG = ""
    settings.DEVBENCH_KUBE_IN_CLUSTER = False


def main() -> None:
    """Run the emulator standalone and write a kubeconfig for it (for ``make run`` and curl)."""
    parser = argparse.ArgumentParser(description="Kubernetes API emulator for DevBench (kmock)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--kubeconfig", default="var/emulator-kubeconfig")
    parser.add_argument(
        "--pending", action="store_true", help="leave pods Pending and certificates unissued (default: ready at once)"
    )
    args = parser.parse_args()
    emulator, stop = start(host=args.host, port=args.port, auto_ready=not args.pending)
    path = Path(args.kubeconfig)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(emulator.kubeconfig())
    print(f"Kubernetes emulator on {emulator.url}; kubeconfig written to {path}", flush=True)
    print(f"Run DevBench with DEVBENCH_KUBECONFIG={path.resolve()}; Ctrl-C stops the emulator.", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        stop()


if __name__ == "__main__":
    main()
