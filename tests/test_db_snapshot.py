"""``db_connections.one_snapshot``: reads inside see one state of the database while other
connections commit; the dashboard stores its card list under the fingerprint of the values it
shows, read that way."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from benches import selectors
from benches.models import DevBench
from devbench_site.db_connections import one_snapshot
from tests.test_dashboard_cards import host, make_benches  # noqa: F401 - host is a fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("on SQLite a transaction takes the write lock (transaction_mode IMMEDIATE): nothing commits "
                    "meanwhile to test with (CI runs the suite on PostgreSQL)")


def _commit_elsewhere(action) -> None:
    """Run ``action`` on another connection (a thread of its own) and commit it."""
    errors = []

    def run():
        try:
            action()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors


def test_reads_in_one_snapshot_do_not_see_commits_made_meanwhile(make_user, host):  # noqa: F811
    alice = make_user("alice")
    make_benches(alice, host, 2)
    with one_snapshot():
        fingerprint = selectors.bench_card_fingerprint(alice)
        _commit_elsewhere(lambda: DevBench.objects.filter(name="vm1").update(status=DevBench.Status.INACTIVE))
        _commit_elsewhere(lambda: make_benches(alice, host, 1, first=5))
        rows = selectors.bench_card_values(alice)
        assert selectors.bench_card_fingerprint(alice) == fingerprint
    assert [(row[1], row[2]) for row in rows] == [("vm0", "active"), ("vm1", "active")]
    assert [(row[1], row[2]) for row in selectors.bench_card_values(alice)] == [
        ("vm0", "active"), ("vm1", "inactive"), ("vm5", "active"),
    ]
    assert selectors.bench_card_fingerprint(alice) != fingerprint


def test_without_it_the_second_read_sees_the_commit(make_user, host):  # noqa: F811
    """The test above can fail: PostgreSQL's default gives each statement its own snapshot."""
    alice = make_user("alice")
    make_benches(alice, host, 2)
    with transaction.atomic():
        fingerprint = selectors.bench_card_fingerprint(alice)
        _commit_elsewhere(lambda: DevBench.objects.filter(name="vm1").update(status=DevBench.Status.INACTIVE))
        assert selectors.bench_card_fingerprint(alice) != fingerprint
