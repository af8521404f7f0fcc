"""Limits hold when their requests race: many creates at once against the bench quota and the
hourly create limit, on the compatible route and the API, and a burst of sign-ins against the failed
sign-in lockout and the cap on password checks at once. Every test sends real parallel requests
to a live Daphne (tests/concurrency.py); each new limit (the vCPUs of a user's benches) gets a test here."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from accounts.login_throttle import BUSY_MESSAGE, LOCKED_OUT_MESSAGE
from accounts.models import User
from accounts.services import create_api_key
from accounts.views import FAILED_LOGIN_MESSAGE
from benches.models import DevBench, Host, Plan
from tests.concurrency import http, in_parallel
from tests.conftest import STRONG_PASSWORD
from tests.live_daphne import running_daphne

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PARALLEL = 20
QUOTA_MESSAGE = "DevBench quota reached: you have 5 of 5. Delete one first."

# (path, status of a create) for the compatible route and the API.
ROUTES = {"compatible": ("/create-devbench", 200), "api": ("/api/v1/benches/", 201)}


@pytest.fixture
def bench_env(local_agent, redis_client):
    """What Daphne needs to create benches on the local host (its capacity above the parallel
    creates, so only the user's limits can refuse them)."""
    Host.objects.filter(name="local").update(capacity=PARALLEL * 2)
    yield {"DEVBENCH_LOCAL_HOST": "1", "DEVBENCH_LOCAL_AGENT_CONFIG": str(local_agent.config_path)}
    redis_client.delete("celery")  # the queued create jobs: no worker runs them


def create_in_parallel(base_url: str, route: str, raw_key: str) -> list[tuple[int, dict]]:
    path, _ = ROUTES[route]

    def create(index: int) -> tuple[int, dict]:
        answer = http("POST", base_url + path, json_body={"name": f"vm{index:02}"},
                      headers={"Authorization": f"Bearer {raw_key}"})
        return answer.status, answer.json()

    return in_parallel(PARALLEL, create)


@pytest.mark.parametrize("route", ROUTES)
def test_parallel_creates_end_with_exactly_the_quota(route, user, bench_env, tmp_path):
    _key, raw = create_api_key(user=user)
    with running_daphne(tmp_path, {**bench_env, "DEVBENCH_DEFAULT_QUOTA": "5",
                                "DEVBENCH_CREATE_LIMIT_PER_HOUR": str(PARALLEL * 2)}) as base_url:
        answers = create_in_parallel(base_url, route, raw)
    created = ROUTES[route][1]
    assert sorted(status for status, _ in answers) == [created] * 5 + [400] * (PARALLEL - 5), answers
    assert [body for status, body in answers if status == 400] == [{"error": QUOTA_MESSAGE}] * (PARALLEL - 5)
    assert DevBench.objects.filter(user=user).count() == 5


@pytest.mark.parametrize("route", ROUTES)
def test_parallel_creates_keep_the_hourly_limit(route, user, bench_env, tmp_path):
    User.objects.filter(pk=user.pk).update(bench_quota=PARALLEL * 2)
    _key, raw = create_api_key(user=user)
    with running_daphne(tmp_path, {**bench_env, "DEVBENCH_CREATE_LIMIT_PER_HOUR": "3"}) as base_url:
        answers = create_in_parallel(base_url, route, raw)
    created = ROUTES[route][1]
    assert sorted(status for status, _ in answers) == [created] * 3 + [429] * (PARALLEL - 3), answers
    assert [body for status, body in answers if status == 429] == [
        {"error": "You can create at most 3 DevBenches per hour; try later"}] * (PARALLEL - 3)
    assert DevBench.objects.filter(user=user).count() == 3


@pytest.mark.parametrize("route", ROUTES)
def test_parallel_creates_keep_the_vcpu_quota(route, user, bench_env, tmp_path):
    """Each bench takes the default plan's 2 vCPUs; a 7-vCPU quota holds three of them."""
    Plan.objects.create(name="Medium", vcpus=2, memory_mib=2048, disk_gib=20, is_default=True)
    Host.objects.filter(name="local").update(capabilities=["list", "images", "plans", "ssh-keys", "snapshots"])
    User.objects.filter(pk=user.pk).update(bench_quota=PARALLEL * 2, vcpu_quota=7)
    _key, raw = create_api_key(user=user)
    with running_daphne(tmp_path, {**bench_env, "DEVBENCH_CREATE_LIMIT_PER_HOUR": str(PARALLEL * 2)}) as base_url:
        answers = create_in_parallel(base_url, route, raw)
    created = ROUTES[route][1]
    assert sorted(status for status, _ in answers) == [created] * 3 + [400] * (PARALLEL - 3), answers
    assert [body for status, body in answers if status == 400] == [{
        "error": "Quota reached: plan Medium needs 2 vCPUs and your benches use 6 of your 7. "
                 "Delete a bench or choose a smaller plan.",
    }] * (PARALLEL - 3)
    assert sorted(DevBench.objects.filter(user=user).values_list("vcpus", flat=True)) == [2, 2, 2]


def test_a_create_refused_for_want_of_a_host_keeps_the_hourly_slot(user_client, user, local_agent, settings):
    settings.DEVBENCH_CREATE_LIMIT_PER_HOUR = 1
    Host.objects.filter(name="local").update(capacity=0)
    full = user_client.post("/create-devbench", {"name": "first"}, content_type="application/json")
    assert full.status_code == 503
    Host.objects.filter(name="local").update(capacity=5)
    assert user_client.post("/create-devbench", {"name": "first"}, content_type="application/json").status_code == 200
    assert DevBench.objects.filter(user=user).count() == 1


# --- sign-in -----------------------------------------------------------------------------------

def csrf_form(base_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """A CSRF cookie and token from the sign-in page, as a browser has them (reused by every try)."""
    page = http("GET", base_url + "/login")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return {"Cookie": f"csrftoken={page.cookies['csrftoken']}"}, {"csrfmiddlewaretoken": token}


def sign_in(base_url: str, headers: dict, form: dict, password: str):
    return http("POST", base_url + "/login", headers=headers, form={**form, "username": "alice", "password": password})


def kind(answer) -> str:
    """What the user was told: signed in, wrong password, locked out or busy."""
    if answer.status == 302:
        return "signed in"
    if answer.status == 200 and FAILED_LOGIN_MESSAGE in answer.text:
        return "invalid"
    if answer.status == 429 and LOCKED_OUT_MESSAGE in answer.text:
        return "locked"
    if answer.status == 503 and BUSY_MESSAGE in answer.text:
        return "busy"
    return f"{answer.status}: {answer.text[:200]}"


def test_parallel_wrong_passwords_lock_out_the_right_one_sent_last(user, tmp_path):
    tries = 30
    # Enough password checks at once for the whole limit, so only the lockout answers here.
    with running_daphne(tmp_path, {"DEVBENCH_LOGIN_CONCURRENT_CHECKS": "10"}) as base_url:
        headers, form = csrf_form(base_url)

        def attempt(index: int):
            if index == tries - 1:
                time.sleep(0.5)  # the right password last, while the wrong ones are being checked
                return sign_in(base_url, headers, form, STRONG_PASSWORD)
            return sign_in(base_url, headers, form, "wrong-password")

        answers = [kind(answer) for answer in in_parallel(tries, attempt)]
    assert answers[-1] == "locked"
    assert sorted(answers[:-1]) == ["invalid"] * 5 + ["locked"] * (tries - 6), answers


def test_a_burst_of_sign_ins_beyond_the_cap_is_told_to_retry_not_queued(user, tmp_path):
    tries = 12
    env = {"DEVBENCH_LOGIN_CONCURRENT_CHECKS": "2", "DEVBENCH_LOGIN_FAILURE_LIMIT": "100"}
    with running_daphne(tmp_path, env) as base_url:
        headers, form = csrf_form(base_url)
        answers = in_parallel(tries, lambda _index: sign_in(base_url, headers, form, "wrong-password"))
        told = [kind(answer) for answer in answers]
        assert set(told) == {"invalid", "busy"}, told
        assert all(answer.headers.get("Retry-After") == "1" for answer in answers if answer.status == 503)
        # A check refused as busy was no failed sign-in: the right password still works.
        assert sign_in(base_url, headers, form, STRONG_PASSWORD).status == 302


def test_a_correct_password_does_not_count_against_the_address(make_user):
    for name in ("aa", "bb", "cc", "dd", "ee"):
        make_user(name)
    client = Client(REMOTE_ADDR="10.3.3.3")
    for name in ("aa", "bb", "cc", "dd", "ee"):
        assert client.post("/login", {"username": name, "password": STRONG_PASSWORD}).status_code == 302
        client.logout()
    assert client.post("/login", {"username": "aa", "password": STRONG_PASSWORD}).status_code == 302
