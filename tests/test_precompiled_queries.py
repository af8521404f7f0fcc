"""``PrecompiledValuesQuery`` returns what the ORM's ``values_list()`` would, with one query and
the same SQL on every call, and refuses querysets it cannot run that way."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import FloatField
from django.db.models.expressions import RawSQL
from django.test.utils import CaptureQueriesContext

from benches import selectors
from benches.models import DevBench, Job
from devbench_site.precompiled_queries import PrecompiledValuesQuery
from tests.test_dashboard_cards import host, make_benches  # noqa: F401 - host is a fixture

pytestmark = pytest.mark.django_db


def test_the_card_values_are_the_orms_and_follow_changes(make_user, host):  # noqa: F811
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    make_benches(alice, host, 3)
    make_benches(bob, host, 2, first=10)
    orm = lambda user: list(selectors.benches_for(user).values_list(*selectors.BENCH_CARD_FIELDS))  # noqa: E731
    for user in (alice, bob, carol):
        assert selectors.bench_card_values(user) == orm(user)
    assert [row[1] for row in selectors.bench_card_values(alice)] == ["vm0", "vm1", "vm2"]
    assert selectors.bench_card_values(carol) == []
    assert all(isinstance(row[-1], int) for row in selectors.bench_card_values(alice))  # latest job id

    DevBench.objects.filter(user=alice, name="vm1").update(status=DevBench.Status.INACTIVE, last_error="gone")
    make_benches(carol, host, 1, first=20)
    assert selectors.bench_card_values(alice) == orm(alice)
    assert selectors.bench_card_values(alice)[1][2:4] == ("inactive", "gone")
    assert [row[1] for row in selectors.bench_card_values(carol)] == ["vm20"]


def test_one_query_with_the_same_sql_each_time(make_user, host):  # noqa: F811
    alice, bob = make_user("alice"), make_user("bob")
    make_benches(alice, host, 2)
    executed = []

    def record(execute, sql, params, many, context):
        executed.append((sql, tuple(params)))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(record):
        selectors.bench_card_values(alice)
        selectors.bench_card_values(bob)
    assert len(queries) == 2
    assert executed[0][0] == executed[1][0]
    assert [params for _, params in executed] == [(alice.pk,), (bob.pk,)]


def test_constants_stay_and_converters_apply(make_user, host):  # noqa: F811
    alice = make_user("alice")
    make_benches(alice, host, 3)
    DevBench.objects.filter(name="vm2").update(status=DevBench.Status.INACTIVE)
    query = PrecompiledValuesQuery(
        lambda user_id: DevBench.objects.filter(user_id=user_id, status="active")
        .annotate(one=RawSQL("1", (), output_field=FloatField()))
        .order_by("name").values_list("name", "one"),
        arity=1,
    )
    assert query.rows(alice.pk) == [("vm0", 1.0), ("vm1", 1.0)]
    assert all(type(one) is float for _, one in query.rows(alice.pk))  # the database sent an integer


def test_querysets_it_cannot_run_are_refused(make_user):
    alice = make_user("alice")
    with pytest.raises(TypeError, match="values_list"):
        PrecompiledValuesQuery(lambda user_id: DevBench.objects.filter(user_id=user_id), arity=1).rows(alice.pk)
    with pytest.raises(TypeError, match="values_list"):
        PrecompiledValuesQuery(
            lambda user_id: DevBench.objects.filter(user_id=user_id).values_list("name", flat=True), arity=1,
        ).rows(alice.pk)
    with pytest.raises(ValueError, match="exactly once"):
        PrecompiledValuesQuery(lambda user_id: DevBench.objects.values_list("name"), arity=1).rows(alice.pk)
    with pytest.raises(ValueError, match="exactly once"):
        PrecompiledValuesQuery(
            lambda user_id: DevBench.objects.filter(user_id=user_id + 1).values_list("name"), arity=1,
        ).rows(alice.pk)
    with pytest.raises(TypeError, match="expected 1 arguments"):
        PrecompiledValuesQuery(lambda user_id: DevBench.objects.values_list("name"), arity=1).rows()


def test_text_arguments_reach_the_sql_as_given(make_user, host):  # noqa: F811
    alice = make_user("alice")
    make_benches(alice, host, 2)
    counts = PrecompiledValuesQuery(
        lambda user_id, name: DevBench.objects.filter(user_id=user_id, name=name).values_list("name"), arity=2,
    )
    assert counts.rows(alice.pk, "vm1") == [("vm1",)]
    assert counts.rows(alice.pk, "vm1' OR '1'='1") == []  # a parameter, never SQL
    assert selectors.bench_counts_for(alice, "vm0") == (2, 1)
    assert selectors.bench_counts_for(alice, "other") == (2, 0)
    assert selectors.bench_counts_for(make_user("bob"), "vm0") == (0, 0)
    with pytest.raises(ValueError, match="exactly once"):  # the ORM wraps it in %...%: not the argument
        PrecompiledValuesQuery(
            lambda user_id, name: DevBench.objects.filter(user_id=user_id, name__contains=name).values_list("name"),
            arity=2,
        ).rows(alice.pk, "vm")


def test_host_reads_for_placing_a_bench(make_user, host, settings):  # noqa: F811
    from benches.models import Host

    alice = make_user("alice")
    roomy = Host.objects.create(name="hv2", kind=Host.Kind.SSH, address="10.0.0.6", username="devbench",
                                script_path="/usr/local/bin/devbench-agent", capacity=10)
    Host.objects.create(name="off", kind=Host.Kind.SSH, address="10.0.0.7", username="devbench",
                        script_path="/usr/local/bin/devbench-agent", capacity=50, enabled=False)
    make_benches(alice, host, 3)  # hv1: 100 places, 97 free; hv2: 10 free
    assert selectors.host_ids_by_free_capacity(with_local=False) == [host.pk, roomy.pk]
    Host.objects.filter(pk=host.pk).update(capacity=3)
    assert selectors.host_ids_by_free_capacity(with_local=False) == [roomy.pk]
    assert selectors.bench_count_on(host.pk) == 3
    assert selectors.bench_count_on(roomy.pk) == 0


def test_the_bench_list_in_pages_is_the_orms(make_user, host):  # noqa: F811
    from django.db.models import F

    alice, bob = make_user("alice"), make_user("bob")
    make_benches(alice, host, 5)
    make_benches(bob, host, 1, first=10)
    DevBench.objects.filter(user=alice, name__in=["vm1", "vm3"]).update(status=DevBench.Status.INACTIVE)
    orm = list(selectors.benches_for(alice).select_related(None).values(
        *selectors.BENCH_LIST_FIELDS, "latest_job_id", host_name=F("host__name")))
    benches = selectors.bench_list_for(alice)
    strip = lambda rows: [{k: v for k, v in row.items() if k != "_page_total"} for row in rows]  # noqa: E731
    assert strip(benches) == orm
    rows, total = benches.page(2, 2)
    assert (strip(rows), total) == (orm[2:4], 5)
    assert benches.page(10, 2) == ([], 0)
    assert strip(benches[3:]) == orm[3:] and strip(benches[1:2]) == orm[1:2]
    assert benches.count() == 5 and selectors.bench_list_for(make_user("carol")).count() == 0
    inactive = selectors.bench_list_for(alice, status="inactive")
    assert [row["name"] for row in inactive] == ["vm1", "vm3"] and inactive.count() == 2
    active_on_hv1 = selectors.bench_list_for(alice, status="active", host="hv1")
    assert [row["name"] for row in active_on_hv1] == ["vm0", "vm2", "vm4"]
    assert list(selectors.bench_list_for(alice, host="elsewhere")) == []
    assert list(selectors.bench_list_for(alice, host="hv1' OR '1'='1")) == []
    with pytest.raises(TypeError, match="sliced"):
        PrecompiledValuesQuery(lambda user_id: DevBench.objects.filter(user_id=user_id).values("name")[:1],
                               arity=1).rows(alice.pk, limit=1)


def test_a_fingerprint_changes_exactly_when_the_rows_do(make_user, host):  # noqa: F811
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    make_benches(alice, host, 3)
    make_benches(bob, host, 3)  # the same names, ports and statuses as alice's: other ids
    first = selectors.bench_card_fingerprint(alice)
    assert selectors.bench_card_fingerprint(alice) == first
    assert len({first, selectors.bench_card_fingerprint(bob), selectors.bench_card_fingerprint(carol)}) == 3

    seen = {first}

    def new_job_for_vm2():
        bench = DevBench.objects.get(user=alice, name="vm2")
        Job.objects.create(bench=bench, original_bench_id=bench.pk, bench_name=bench.name, vm_name=bench.actual_name,
                           owner=alice, requested_by=alice, host=host, command=Job.Command.STOP)

    changes = [
        lambda: DevBench.objects.filter(user=alice, name="vm1").update(status=DevBench.Status.INACTIVE),
        lambda: DevBench.objects.filter(user=alice, name="vm1").update(last_error="it's\n\"gone\", \\ too"),
        lambda: DevBench.objects.filter(user=alice, name="vm2").update(ssh_info="6100"),
        new_job_for_vm2,
        lambda: make_benches(alice, host, 1, first=7),
        lambda: DevBench.objects.filter(user=alice, name="vm0").delete(),
    ]
    for change in changes:
        change()
        fingerprint = selectors.bench_card_fingerprint(alice)
        assert fingerprint not in seen  # every change, including a job's, is a new fingerprint
        seen.add(fingerprint)
    DevBench.objects.filter(user=alice, name="vm1").update(status=DevBench.Status.ACTIVE, last_error="")
    DevBench.objects.filter(user=alice, name="vm1").update(status=DevBench.Status.INACTIVE,
                                                           last_error="it's\n\"gone\", \\ too")
    assert selectors.bench_card_fingerprint(alice) == fingerprint  # back to the same rows: the same


def test_a_fingerprint_is_one_short_query(make_user, host):  # noqa: F811
    alice = make_user("alice")
    make_benches(alice, host, 20)
    with CaptureQueriesContext(connection) as queries:
        fingerprint = selectors.bench_card_fingerprint(alice)
    assert len(queries) == 1
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0


def test_rows_and_their_fingerprint_come_from_one_query(make_user, host):  # noqa: F811
    alice, carol = make_user("alice"), make_user("carol")
    make_benches(alice, host, 3)
    DevBench.objects.filter(name="vm1").update(last_error="it's\n\"gone\"")
    with CaptureQueriesContext(connection) as queries:
        rows, fingerprint = selectors.bench_card_values_and_fingerprint(alice)
    assert len(queries) == 1
    assert rows == selectors.bench_card_values(alice)  # converted as values_list() does, in order
    assert fingerprint == selectors.bench_card_fingerprint(alice)
    assert selectors.bench_card_values_and_fingerprint(carol) == ([], selectors.bench_card_fingerprint(carol))
