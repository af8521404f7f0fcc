"""The WebSocket through real Channels on the real Redis: auth, register, the exact message
sequence of a create, and replay with no gap and no duplicate."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.services import create_api_key
from benches import selectors, services
from benches.models import Job
from devbench_site.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    # What a browser on http://testserver sends with the handshake.
    return [(b"cookie", f"sessionid={cookie}".encode()), (b"host", b"testserver"), (b"origin", b"http://testserver")]


async def connect(path="/ws/", headers=None) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def collect_until(communicator, predicate, timeout=15.0) -> list[dict]:
    received = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        assert remaining > 0, f"timed out; got {received}"
        message = await communicator.receive_json_from(timeout=remaining)
        received.append(message)
        if predicate(message):
            return received


async def test_anonymous_connection_is_closed_with_4401():
    communicator = WebsocketCommunicator(application, "/", headers=[(b"origin", b"http://testserver")])
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}


async def test_invalid_token_is_closed_with_4401(user):
    communicator = WebsocketCommunicator(application, "/ws/?token=dbk_wrong")
    await communicator.connect()
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4401}


async def test_session_from_another_origin_is_refused(user):
    headers = [h for h in await database_sync_to_async(session_headers)(user) if h[0] != b"origin"]
    communicator = WebsocketCommunicator(application, "/ws/", headers=[*headers, (b"origin", b"http://evil.example")])
    await communicator.connect()
    assert await communicator.receive_output(timeout=2) == {"type": "websocket.close", "code": 4403}


async def test_register_for_another_user_is_refused(user, make_user):
    other = await database_sync_to_async(make_user)("bob")
    communicator = await connect("/", await database_sync_to_async(session_headers)(user))
    await communicator.send_json_to({"type": "register", "userId": other.pk})
    assert await communicator.receive_json_from(timeout=2) == {
        "type": "error", "error": "You can only register for your own events"
    }
    await communicator.send_json_to({"type": "register", "userId": user.pk})
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "error"),
    [("not json", "Malformed JSON"), ("[1]", "A message must be a JSON object"),
     ('{"type": "nope"}', "Unknown message type; use register, replay or ping"),
     ('{"type": "replay", "jobId": -1}', "'jobId' must be a non-negative integer"),
     ('{"type": "replay", "jobId": "x"}', "'jobId' must be a non-negative integer"),
     ('{"type": "replay"}', "replay needs 'jobId' or 'devbenchId'"),
     ('{"type": "replay", "jobId": 99999999}', "Job not found"),
     ("x" * 20000, "Send JSON text frames of at most 16 KiB")],
)
async def test_bad_frames_get_an_error_message(user, frame, error):
    communicator = await connect("/ws/", await database_sync_to_async(session_headers)(user))
    await communicator.send_to(text_data=frame)
    assert await communicator.receive_json_from(timeout=2) == {"type": "error", "error": error}
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.disconnect()


async def test_create_streams_output_then_complete_then_active(user, local_agent):
    local_agent.configure(step_delay=0.01)
    communicator = await connect("/", await database_sync_to_async(session_headers)(user))
    await communicator.send_json_to({"type": "register", "userId": user.pk})
    bench = await database_sync_to_async(services.create_bench)(user=user, name="live")
    job = await database_sync_to_async(Job.objects.get)(bench=bench)
    await database_sync_to_async(services.execute_job)(job.pk)
    messages = await collect_until(communicator, lambda m: m["type"] == "status_update")
    await communicator.disconnect()

    outputs = [m for m in messages if m["type"] == "script_output"]
    assert [m["type"] for m in messages] == ["script_output"] * len(outputs) + ["script_complete", "status_update"]
    assert [m["seq"] for m in outputs] == list(range(1, len(outputs) + 1))
    assert all(m["devbenchId"] == bench.pk and m["jobId"] == job.pk for m in outputs)
    stored = await database_sync_to_async(selectors.stored_log_text)(job)
    assert "".join(m["data"] for m in outputs) == stored
    assert "VM alice_live Created and Ready" in stored
    await database_sync_to_async(bench.refresh_from_db)()
    assert messages[-2] == {
        "type": "script_complete", "devbenchId": bench.pk, "jobId": job.pk, "seq": len(outputs),
        "exitCode": 0, "state": "succeeded", "command": "create",
    }
    assert messages[-1] == {
        "type": "status_update", "devbenchId": bench.pk, "status": "active", "jobId": job.pk, "seq": len(outputs),
        "sshInfo": bench.ssh_info, "vncInfo": bench.vnc_info, "error": "",
    }


async def test_failing_script_sends_stderr_with_prefix_and_exit_code(user, local_agent):
    local_agent.configure(fail_commands=["create"])
    communicator = await connect("/ws/", await database_sync_to_async(session_headers)(user))
    bench = await database_sync_to_async(services.create_bench)(user=user, name="bad")
    job = await database_sync_to_async(Job.objects.get)(bench=bench)
    await database_sync_to_async(services.execute_job)(job.pk)
    messages = await collect_until(communicator, lambda m: m["type"] == "status_update")
    await communicator.disconnect()
    errors = [m for m in messages if m["type"] == "script_output" and m["stream"] == "stderr"]
    assert errors and all(m["data"].startswith("ERROR: ") for m in errors)
    complete = next(m for m in messages if m["type"] == "script_complete")
    assert (complete["exitCode"], complete["state"]) == (1, "failed")
    assert messages[-1]["status"] == "error"


async def test_other_users_do_not_receive_events(user, make_user, local_agent):
    bob = await database_sync_to_async(make_user)("bob")
    watcher = await connect("/ws/", await database_sync_to_async(session_headers)(bob))
    bench = await database_sync_to_async(services.create_bench)(user=user, name="private")
    job = await database_sync_to_async(Job.objects.get)(bench=bench)
    await database_sync_to_async(services.execute_job)(job.pk)
    assert await watcher.receive_nothing(timeout=0.5)
    await watcher.send_json_to({"type": "replay", "devbenchId": bench.pk, "after": 0})
    assert await watcher.receive_nothing(timeout=0.5)
    await watcher.send_json_to({"type": "replay", "jobId": job.pk, "after": 0})
    assert await watcher.receive_json_from(timeout=2) == {"type": "error", "error": "Job not found"}
    await watcher.disconnect()


async def test_replay_after_reconnect_equals_whole_log(user, local_agent):
    bench = await database_sync_to_async(services.create_bench)(user=user, name="replayed")
    job = await database_sync_to_async(Job.objects.get)(bench=bench)
    await database_sync_to_async(services.execute_job)(job.pk)
    stored = await database_sync_to_async(selectors.stored_log_text)(job)
    _key, raw = await database_sync_to_async(create_api_key)(user=user)
    communicator = await connect(f"/ws/?token={raw}")
    await communicator.send_json_to({"type": "replay", "devbenchId": bench.pk, "after": 0})
    messages = await collect_until(communicator, lambda m: m["type"] == "script_complete")
    outputs = messages[:-1]
    assert "".join(m["data"] for m in outputs) == stored
    assert [m["seq"] for m in outputs] == list(range(1, len(outputs) + 1))
    # A partial replay picks up after the given sequence number.
    await communicator.send_json_to({"type": "replay", "jobId": job.pk, "after": 3})
    partial = await collect_until(communicator, lambda m: m["type"] == "script_complete")
    assert [m["seq"] for m in partial[:-1]] == list(range(4, len(outputs) + 1))
    await communicator.disconnect()


async def test_replay_during_streaming_has_no_gap_and_no_duplicate(user, local_agent):
    local_agent.configure(step_delay=0.05, create_lines=40)
    bench = await database_sync_to_async(services.create_bench)(user=user, name="midway")
    job = await database_sync_to_async(Job.objects.get)(bench=bench)
    headers = await database_sync_to_async(session_headers)(user)
    running = asyncio.ensure_future(database_sync_to_async(services.execute_job)(job.pk))
    # Wait until part of the log is stored, then connect like a reloaded page and replay.
    for _ in range(200):
        stored_so_far = await database_sync_to_async(lambda: job.chunks.count())()
        if stored_so_far >= 3:
            break
        await asyncio.sleep(0.02)
    communicator = await connect("/ws/", headers)
    await communicator.send_json_to({"type": "replay", "devbenchId": bench.pk, "after": 0})
    messages = await collect_until(communicator, lambda m: m["type"] == "script_complete", timeout=30)
    await running
    outputs = [m for m in messages if m["type"] == "script_output"]
    assert [m["seq"] for m in outputs] == list(range(1, len(outputs) + 1))
    assert "".join(m["data"] for m in outputs) == await database_sync_to_async(selectors.stored_log_text)(job)
    await communicator.disconnect()


async def test_bearer_header_connects(user):
    _key, raw = await database_sync_to_async(create_api_key)(user=user)
    communicator = await connect("/", [(b"authorization", f"Bearer {raw}".encode())])
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.disconnect()


async def test_publisher_keeps_call_order_between_queued_and_awaited_sends():
    """The flusher queues its publishes (``wait=False``) so its next INSERT overlaps them; a job's
    end is sent with ``wait=True``. Either way a group receives everything in call order."""
    from channels.layers import get_channel_layer

    from benches.provisioning.publishing import publisher

    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("order-test", channel)

    def publish() -> None:
        for number in range(1, 301):
            publisher.send("order-test", [{"n": number}], wait=False)
        publisher.send_many([("order-test", [{"n": 301}, {"n": 302}])])

    await asyncio.get_running_loop().run_in_executor(None, publish)
    received = [(await asyncio.wait_for(layer.receive(channel), 10))["message"]["n"] for _ in range(302)]
    assert received == list(range(1, 303))
    await layer.group_discard("order-test", channel)
