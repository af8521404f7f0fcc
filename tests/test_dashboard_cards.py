"""The dashboard's bench cards: each is a ``{% cache %}`` fragment, so a warm dashboard makes three
queries and any change to what a card shows, even one written with ``QuerySet.update`` that leaves
``updated_at`` alone, shows on the next load; the fragment endpoints render one card or the list,
for their owner only."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

from benches import services as bench_services
from benches.models import DevBench, Host, Job
from benches.provisioning.messages import chunk_text
from benches.services.jobs import new_job
from tests.bench_fixtures import wait_for_status
from tests.browser_fixtures import bench_card
from tests.conftest import STRONG_PASSWORD


@pytest.fixture
def host(db):
    return Host.objects.create(name="hv1", kind=Host.Kind.SSH, address="10.0.0.5", port=22, username="devbench",
                               script_path="/usr/local/bin/devbench-agent", capacity=100)


def make_benches(user, host, count: int, *, first: int = 0) -> list[DevBench]:
    benches = [
        DevBench.objects.create(user=user, host=host, name=f"vm{index}", actual_name=f"{user.username}_vm{index}",
                                status=DevBench.Status.ACTIVE, ssh_info=str(6000 + index),
                                vnc_info=str(5000 + index))
        for index in range(first, first + count)
    ]
    for bench in benches:
        bench.latest_job = Job.objects.create(
            bench=bench, original_bench_id=bench.pk, bench_name=bench.name, vm_name=bench.actual_name, owner=user,
            requested_by=user, host=host, command=Job.Command.CREATE, state=Job.State.SUCCEEDED, exit_code=0)
        bench.save(update_fields=["latest_job"])
    return benches


def bench_list(response) -> str:
    """The cards and the blank card (the rest of the page carries a per-request CSRF token)."""
    page = response.content.decode()
    return page[page.index('<div id="bench-list"'):page.index("</template>")]


def card_of(page: str, bench: DevBench) -> str:
    start = page.index(f'data-bench-id="{bench.pk}"')
    return page[start:page.index("</article>", start)]


def test_warm_dashboard_makes_six_queries_and_shows_the_same_cards(user_client, user, host,
                                                                     django_assert_num_queries):
    benches = make_benches(user, host, 12)
    first = user_client.get("/dashboard")
    assert first.status_code == 200
    with django_assert_num_queries(6):  # session, user, the cards' benches, their snapshots, images, plans
        second = user_client.get("/dashboard")
    assert bench_list(second) == bench_list(first)
    page = second.content.decode()
    assert [page.index(f'data-bench-id="{bench.pk}"') for bench in benches] == sorted(
        page.index(f'data-bench-id="{bench.pk}"') for bench in benches)
    assert '<span id="bench-count">12</span>' in page
    assert "ssh -p 6003 alice@10.0.0.5" in card_of(page, benches[3])


@pytest.fixture
def cache_reads(monkeypatch):
    """The keys the site's cache is asked for, in order (a spy: every read goes through)."""
    from django.core.cache import cache

    keys: list[str] = []
    read = cache.get

    def counting_get(key, *args, **kwargs):
        keys.append(key)
        return read(key, *args, **kwargs)

    monkeypatch.setattr(cache, "get", counting_get)
    return keys


def test_a_warm_dashboard_reads_its_cards_from_the_cache_at_once(user_client, user, host, cache_reads):
    [changed, *_rest] = make_benches(user, host, 12)
    user_client.get("/dashboard")
    cache_reads.clear()
    user_client.get("/dashboard")
    # The list's fragment and the blank card the script clones, not one read per card.
    assert Counter(key.split(".")[2] for key in cache_reads) == {"bench-list": 1, "bench-card": 1}
    DevBench.objects.filter(pk=changed.pk).update(status=DevBench.Status.INACTIVE)
    cache_reads.clear()
    page = user_client.get("/dashboard").content.decode()
    assert Counter(key.split(".")[2] for key in cache_reads) == {"bench-list": 1, "bench-card": 12 + 1}
    assert 'data-status="inactive"' in card_of(page, changed)


def test_a_status_change_shows_on_the_next_dashboard_load(user_client, user, host):
    [bench] = make_benches(user, host, 1)
    assert 'data-status="active"' in card_of(user_client.get("/dashboard").content.decode(), bench)
    bench.status = DevBench.Status.INACTIVE
    bench.save()
    card = card_of(user_client.get("/dashboard").content.decode(), bench)
    assert 'data-status="inactive"' in card and "status-inactive" in card


def test_a_change_without_updated_at_shows_at_once(user_client, user, host):
    benches = make_benches(user, host, 5)
    user_client.get("/dashboard")
    changed = benches[2]
    DevBench.objects.filter(pk=changed.pk).update(status=DevBench.Status.INACTIVE, ssh_info="",
                                                   last_error="Powered off on the host")
    response = user_client.get("/dashboard")
    card = card_of(response.content.decode(), changed)
    assert 'data-status="inactive"' in card and "status-inactive" in card
    assert "Powered off on the host" in card
    assert "ssh -p" not in card
    assert 'data-status="active"' in card_of(response.content.decode(), benches[1])


def test_a_new_job_a_host_change_and_new_or_deleted_benches_show(user_client, user, host):
    benches = make_benches(user, host, 3)
    user_client.get("/dashboard")

    job = new_job(bench=benches[0], command=Job.Command.STOP, actor=user)
    assert f'data-latest-job-id="{job.pk}"' in card_of(user_client.get("/dashboard").content.decode(), benches[0])

    Host.objects.filter(pk=host.pk).update(public_host="hv1.example.com")
    response = user_client.get("/dashboard")
    assert "ssh -p 6001 alice@hv1.example.com" in card_of(response.content.decode(), benches[1])

    [added] = make_benches(user, host, 1, first=3)
    benches[1].delete()
    page = user_client.get("/dashboard").content.decode()
    assert f'data-bench-id="{added.pk}"' in page
    assert f'data-bench-id="{benches[1].pk}"' not in page
    assert '<span id="bench-count">3</span>' in page


def test_users_never_see_each_others_cards(make_user, host):
    alice, bob = make_user("alice"), make_user("bob")
    make_benches(alice, host, 2)
    make_benches(bob, host, 2)
    pages = {}
    for person in (alice, bob, alice, bob):
        client = Client()
        client.force_login(person)
        pages[person.username] = client.get("/dashboard").content.decode()
    assert "alice@10.0.0.5" in pages["alice"] and "bob@" not in pages["alice"]
    assert "bob@10.0.0.5" in pages["bob"] and "alice@" not in pages["bob"]
    for bench in DevBench.objects.filter(user=bob):
        assert f'data-bench-id="{bench.pk}"' not in pages["alice"]


@override_settings(CACHES={"default": {**django_settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}})
def test_without_redis_every_card_is_shown(user_client, user, host):
    benches = make_benches(user, host, 4)
    for _ in range(2):
        response = user_client.get("/dashboard")
        assert response.status_code == 200
        page = response.content.decode()
        assert all(f'data-bench-id="{bench.pk}"' in page for bench in benches)
        assert "ssh -p 6002 alice@10.0.0.5" in card_of(page, benches[2])


# --- the card fragments ----------------------------------------------------------------------

def test_the_owner_gets_one_card_as_the_dashboard_shows_it(user_client, user, host):
    benches = make_benches(user, host, 2)
    dashboard = user_client.get("/dashboard").content.decode()
    response = user_client.get(f"/dashboard/cards/{benches[1].pk}")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    fragment = response.content.decode()
    assert fragment.lstrip().startswith("<article") and fragment.count("<article") == 1
    assert card_of(fragment, benches[1]) == card_of(dashboard, benches[1])
    assert "ssh -p 6001 alice@10.0.0.5" in fragment and "<html" not in fragment


def test_another_users_card_or_an_unknown_one_is_404(make_user, host):
    [bobs] = make_benches(make_user("bob"), host, 1)
    alice = Client()
    alice.force_login(make_user("alice"))
    for path in (f"/dashboard/cards/{bobs.pk}", "/dashboard/cards/999999", "/dashboard/cards/99999999999999999999"):
        response = alice.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 404
        assert "bob@" not in response.content.decode()


def test_anonymous_card_requests_go_to_login_as_the_dashboard_does(user, host):
    [bench] = make_benches(user, host, 1)
    for path in ("/dashboard", "/dashboard/cards", f"/dashboard/cards/{bench.pk}"):
        response = Client().get(path)
        assert (response.status_code, response["Location"]) == (302, "/login")


def test_the_list_fragment_has_the_owners_cards_only_in_order(user_client, user, make_user, host):
    benches = make_benches(user, host, 3)
    [bobs] = make_benches(make_user("bob"), host, 1, first=3)
    response = user_client.get("/dashboard/cards")
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.count("<article") == 3 and "<html" not in fragment
    assert [fragment.index(f'data-bench-id="{bench.pk}"') for bench in benches] == sorted(
        fragment.index(f'data-bench-id="{bench.pk}"') for bench in benches)
    assert f'data-bench-id="{bobs.pk}"' not in fragment


def test_card_fragments_answer_get_only(user_client, user, host):
    [bench] = make_benches(user, host, 1)
    assert user_client.post(f"/dashboard/cards/{bench.pk}").status_code == 405
    assert user_client.post("/dashboard/cards").status_code == 405


@pytest.mark.django_db(transaction=True)  # the threads' own database connections see the user
def test_requests_in_new_threads_share_the_redis_connections(user, monkeypatch):
    """Under ASGI every request runs in a thread of its own and Django keeps a cache object per
    thread: the connections must still be the process's, not one new connection per request."""
    import redis.connection

    client = Client()
    client.force_login(user)
    client.get("/api/v1/benches/")  # the API's throttle uses the cache on every request
    opened = []
    connect = redis.connection.AbstractConnection.connect

    def counting_connect(self, *args, **kwargs):  # a spy: the connection is opened as before
        if self._sock is None:  # connect() of an open connection returns at once
            opened.append(self)
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "connect", counting_connect)
    statuses = []
    for _ in range(10):
        thread = threading.Thread(target=lambda: statuses.append(client.get("/api/v1/benches/").status_code))
        thread.start()
        thread.join()
    assert statuses == [200] * 10
    assert len(opened) <= 1


# --- in the browser: htmx swaps the server's cards in, the logs stay --------------------------

def stored_create_log(bench: DevBench) -> str:
    job = Job.objects.filter(bench=bench, command=Job.Command.CREATE).latest("created_at")
    return "".join(chunk_text(chunk) for chunk in job.chunks.order_by("seq"))


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_bench_created_elsewhere_appears_live_and_the_other_cards_keep_their_logs(ui, user, local_agent):
    from playwright.sync_api import expect

    problems = len(ui.problems)
    local_agent.configure(step_delay=0)
    wait_for_status(bench_services.create_bench(user=user, name="first"), "active")
    page = ui.new_page()
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    first = bench_card(page, "first")
    expect(first.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")
    first_log = first.locator(".bench-log").text_content()
    page.evaluate("window.__sameDocument = true")

    local_agent.configure(step_delay=0.2, create_lines=4)
    other = bench_services.create_bench(user=user, name="other")  # as another tab or the API would
    elsewhere = bench_card(page, "other")
    expect(elsewhere.locator(".bench-status")).to_have_text("creating")
    expect(elsewhere.locator(".bench-meta")).to_contain_text("on local")
    expect(page.locator("#bench-count")).to_have_text("2")
    expect(elsewhere.locator(".bench-status")).to_have_text("active")
    expect(elsewhere.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")
    other = wait_for_status(other, "active")
    assert elsewhere.locator(".bench-log").text_content() == (
        stored_create_log(other) + "[create succeeded, exit code 0]\n"), "every line once, in order"
    assert first.locator(".bench-log").text_content() == first_log, "the list's swap kept the other log"
    assert page.evaluate("window.__sameDocument") is True
    assert ui.problems[problems:] == []


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_after_the_live_updates_were_cut_the_cards_catch_up_without_a_reload(ui, user, local_agent):
    from playwright.sync_api import expect

    problems = len(ui.problems)
    local_agent.configure(step_delay=0)
    kept = wait_for_status(bench_services.create_bench(user=user, name="kept"), "active")
    doomed = wait_for_status(bench_services.create_bench(user=user, name="doomed"), "active")
    sockets, refuse = [], threading.Event()

    def route(ws):
        if refuse.is_set():
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    page = ui.new_page()
    page.route_web_socket(re.compile(r"/ws/$"), route)
    ui.sign_in(page, "alice", STRONG_PASSWORD, lands_on="/dashboard")
    kept_card = bench_card(page, "kept")
    expect(kept_card.locator(".bench-log")).to_contain_text("[create succeeded, exit code 0]")
    kept_log = kept_card.locator(".bench-log").text_content()
    page.evaluate("window.__sameDocument = true")

    refuse.set()
    sockets[-1].close()
    expect(page.locator("#connection-state")).to_be_visible()
    # Changes the page cannot hear about: no message is sent for any of them.
    DevBench.objects.filter(pk=kept.pk).update(status=DevBench.Status.INACTIVE, last_error="Powered off on the host")
    DevBench.objects.filter(pk=doomed.pk).delete()
    added = DevBench.objects.create(user=user, host=kept.host, name="added", actual_name="alice_added",
                                    status=DevBench.Status.ACTIVE, ssh_info="6100", vnc_info="5100")
    refuse.clear()

    expect(page.locator("#connection-state")).to_be_hidden()
    expect(kept_card.locator(".bench-status")).to_have_text("inactive")
    expect(kept_card.locator(".bench-error")).to_have_text("Powered off on the host")
    expect(bench_card(page, "doomed")).to_have_count(0)
    expect(bench_card(page, "added").locator(".bench-ssh")).to_have_text(
        f"ssh -p 6100 alice@{added.host.connect_name}")
    expect(page.locator("#bench-count")).to_have_text("2")
    assert kept_card.locator(".bench-log").text_content() == kept_log, "the log stayed as it was"
    expect(kept_card.get_by_role("button", name="Start kept")).to_be_enabled()
    assert page.evaluate("window.__sameDocument") is True
    assert ui.problems[problems:] == []
