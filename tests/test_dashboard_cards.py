"""The dashboard's bench cards come from the cache by content (``benches.bench_cards``): a warm
dashboard renders no card and makes three queries, any change to what a card shows — even one
written with ``QuerySet.update`` that leaves ``updated_at`` alone — shows at once, and only the
changed cards are rendered again."""

from __future__ import annotations

import threading

import pytest
from django.conf import settings as django_settings
from django.test import Client, override_settings

from benches.models import DevBench, Host, Job

CARD = "benches/_bench_card.html"


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
        Job.objects.create(bench=bench, original_bench_id=bench.pk, bench_name=bench.name, vm_name=bench.actual_name,
                           owner=user, requested_by=user, host=host, command=Job.Command.CREATE,
                           state=Job.State.SUCCEEDED, exit_code=0)
    return benches


def cards_rendered(response) -> int:
    """Bench cards rendered for this response (the test client records every template render)."""
    return sum(1 for template in response.templates if template.name == CARD)


def bench_list(response) -> str:
    """The cards and the blank card (the rest of the page carries a per-request CSRF token)."""
    page = response.content.decode()
    return page[page.index('<div id="bench-list"'):page.index("</template>")]


def card_of(page: str, bench: DevBench) -> str:
    start = page.index(f'data-bench-id="{bench.pk}"')
    return page[start:page.index("</article>", start)]


def test_warm_dashboard_renders_no_card_and_makes_three_queries(user_client, user, host,
                                                                django_assert_num_queries):
    benches = make_benches(user, host, 12)
    first = user_client.get("/dashboard")
    assert first.status_code == 200
    assert cards_rendered(first) == 13  # twelve benches and the blank card the script clones
    with django_assert_num_queries(3):  # session, user, the cards' values
        second = user_client.get("/dashboard")
    assert cards_rendered(second) == 0
    assert bench_list(second) == bench_list(first)
    page = second.content.decode()
    assert [page.index(f'data-bench-id="{bench.pk}"') for bench in benches] == sorted(
        page.index(f'data-bench-id="{bench.pk}"') for bench in benches)
    assert '<span id="bench-count">12</span>' in page
    assert "ssh -p 6003 alice@10.0.0.5" in card_of(page, benches[3])


def test_a_change_without_updated_at_shows_at_once_and_renders_only_that_card(user_client, user, host):
    benches = make_benches(user, host, 5)
    user_client.get("/dashboard")
    changed = benches[2]
    DevBench.objects.filter(pk=changed.pk).update(status=DevBench.Status.INACTIVE, ssh_info="",
                                                   last_error="Powered off on the host")
    response = user_client.get("/dashboard")
    assert cards_rendered(response) == 1
    card = card_of(response.content.decode(), changed)
    assert 'data-status="inactive"' in card and "status-inactive" in card
    assert "Powered off on the host" in card
    assert "ssh -p" not in card
    assert 'data-status="active"' in card_of(response.content.decode(), benches[1])


def test_a_new_job_a_host_change_and_new_or_deleted_benches_show(user_client, user, host):
    benches = make_benches(user, host, 3)
    user_client.get("/dashboard")

    job = Job.objects.create(bench=benches[0], original_bench_id=benches[0].pk, bench_name="vm0", vm_name="alice_vm0",
                             owner=user, requested_by=user, host=host, command=Job.Command.STOP)
    assert f'data-latest-job-id="{job.pk}"' in card_of(user_client.get("/dashboard").content.decode(), benches[0])

    Host.objects.filter(pk=host.pk).update(public_host="hv1.example.com")
    response = user_client.get("/dashboard")
    assert cards_rendered(response) == 3
    assert "ssh -p 6001 alice@hv1.example.com" in card_of(response.content.decode(), benches[1])

    [added] = make_benches(user, host, 1, first=3)
    benches[1].delete()
    page = user_client.get("/dashboard").content.decode()
    assert f'data-bench-id="{added.pk}"' in page
    assert f'data-bench-id="{benches[1].pk}"' not in page
    assert '<span id="bench-count">3</span>' in page


def test_the_dashboard_is_ascii_so_its_300_kb_are_copied_not_transcoded(user_client, user, host):
    """Typography is written as entities in the dashboard's templates: one non-ASCII character
    makes Python hold the whole page in two bytes per character, and joining and encoding the
    ~300 KB of a 100-bench page then cost ~0.3 ms more per view (docs/PERFORMANCE.md, 4.)."""
    make_benches(user, host, 2)
    DevBench.objects.create(user=user, host=host, name="fresh", actual_name=f"{user.username}_fresh")  # no ports: "-"
    response = user_client.get("/dashboard")
    assert response.status_code == 200
    assert response.content.isascii()
    page = response.content.decode()
    assert "&middot; DevBench</title>" in page
    assert ">&mdash;</code>" in page  # the bench without ports
    assert "Checking&hellip;" in page  # the session host card


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
def test_without_redis_every_card_is_rendered(user_client, user, host):
    benches = make_benches(user, host, 4)
    for _ in range(2):
        response = user_client.get("/dashboard")
        assert response.status_code == 200
        assert cards_rendered(response) == 5
        assert all(f'data-bench-id="{bench.pk}"' in response.content.decode() for bench in benches)


@pytest.mark.django_db(transaction=True)  # the threads' own database connections see the user
def test_requests_in_new_threads_share_the_redis_connections(user, redis_client):
    """Under ASGI every request runs in a thread of its own and Django keeps a cache object per
    thread: the connections must still be the process's, not one new connection per request."""
    client = Client()
    client.force_login(user)
    client.get("/api/v1/benches/")  # the API's throttle uses the cache on every request
    before = redis_client.info("stats")["total_connections_received"]
    statuses = []
    for _ in range(10):
        thread = threading.Thread(target=lambda: statuses.append(client.get("/api/v1/benches/").status_code))
        thread.start()
        thread.join()
    assert statuses == [200] * 10
    assert redis_client.info("stats")["total_connections_received"] - before <= 1
