"""The bench-name rule as users meet it: unique per user regardless of case, on the compatible
route, the API and in the database; the create form's input carrying the server's rule; and the
announcement of a bench deleted before it started."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import IntegrityError, transaction
from django.test import Client

from accounts.services import create_api_key
from benches.models import DevBench, Host
from benches.provisioning.streaming import user_group
from tests.api_helpers import bearer_client, post_json

DUPLICATE = "DevBench with this name already exists"


def create(client: Client, name: str):
    return client.post("/create-devbench", data=json.dumps({"name": name}), content_type="application/json")


def test_names_differing_only_by_case_are_one_name_on_create_devbench(user_client, user, local_agent, make_user):
    assert create(user_client, "Case1").status_code == 200
    for variant in ("case1", "CASE1", "cAsE1"):
        response = create(user_client, variant)
        assert (response.status_code, response.json()) == (400, {"error": DUPLICATE, "fields": {"name": [DUPLICATE]}})
    assert list(DevBench.objects.filter(user=user).values_list("name", flat=True)) == ["Case1"]
    other = Client()
    other.force_login(make_user("bob"))
    assert create(other, "case1").status_code == 200  # another user's names are their own


def test_names_differing_only_by_case_are_one_name_on_the_api(user, local_agent):
    api = bearer_client(user)
    assert post_json(api, "/api/v1/benches/", {"name": "Case1"}).status_code == 201
    response = post_json(api, "/api/v1/benches/", {"name": "case1"})
    assert (response.status_code, response.json()) == (400, {"error": DUPLICATE, "fields": {"name": [DUPLICATE]}})
    assert DevBench.objects.filter(user=user).count() == 1


def test_the_database_refuses_a_name_differing_only_by_case(user, local_agent):
    host = Host.objects.get(name="local")
    DevBench.objects.create(user=user, host=host, name="Case1")
    with pytest.raises(IntegrityError), transaction.atomic():
        DevBench.objects.create(user=user, host=host, name="cASE1")


def test_the_create_form_input_carries_the_servers_rule(user_client, local_agent):
    page = user_client.get("/dashboard").content.decode()
    tag = re.search(r'<input[^>]*id="bench-name"[^>]*>', page, re.S).group(0)
    assert 'maxlength="48"' in tag
    pattern = re.search(r'pattern="([^"]+)"', tag).group(1)
    assert pattern == r"[a-zA-Z0-9_\-]+"
    for name, valid in [("test-vm", True), ("a_b-9", True), ("x;id", False), ("a b", False), ("é", False)]:
        assert bool(re.fullmatch(pattern, name)) is valid
    assert "at most 48 characters" in page


def test_deleting_a_bench_not_yet_started_announces_it_deleted(
    user_client, user, local_agent, django_capture_on_commit_callbacks
):
    bench_id = create(user_client, "early").json()["devbenchId"]
    layer = get_channel_layer()

    def delete() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            assert user_client.post(f"/delete-devbench/{bench_id}").json() == {"success": True}

    async def listen_while_deleting() -> dict:
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.pk), channel)
        await sync_to_async(delete)()
        while True:  # the cancelled create's script_complete comes first
            message = (await asyncio.wait_for(layer.receive(channel), timeout=5))["message"]
            if message["type"] == "status_update":
                return message

    assert async_to_sync(listen_while_deleting)() == {
        "type": "status_update", "devbenchId": bench_id, "status": "deleted", "jobId": None, "seq": None,
        "sshInfo": "", "vncInfo": "", "error": "",
    }
    assert not DevBench.objects.filter(pk=bench_id).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_case_variants_created_at_once_make_one_bench(live_stack, user):
    _key, raw = create_api_key(user=user)
    names = ["Race", "race", "RACE", "rAce", "raCE"]

    def post(name: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            live_stack.base_url + "/create-devbench", data=json.dumps({"name": name}).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {raw}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        answers = list(pool.map(post, names))
    assert sorted(status for status, _body in answers) == [200, 400, 400, 400, 400], (answers, live_stack.logs())
    assert all(body["error"] == DUPLICATE for status, body in answers if status == 400)
    assert DevBench.objects.filter(user=user).count() == 1
