"""The JSON API's benches and jobs (/api/v1/benches/, /api/v1/jobs/) on the built-in local host:
what a program sees (JSON, codes, pagination, filters, the job log) and the state left behind."""

from __future__ import annotations

import pytest
from django.test import Client

from benches import services
from benches.models import DevBench, Job, JobChunk
from tests.api_helpers import bearer_client, post_json
from tests.bench_fixtures import bench_named

pytestmark = pytest.mark.django_db  # transactional where jobs run (``run_jobs`` asks for it)

BENCH_KEYS = {"id", "name", "actualName", "status", "host", "sshInfo", "vncInfo", "vmIp", "lastError", "createdAt",
              "updatedAt", "latestJobId", "image", "plan", "vcpus", "memoryMib", "diskGib", "snapshotsAvailable"}
JOB_KEYS = {"id", "devbenchId", "benchName", "vmName", "command", "argument", "state", "exitCode", "error",
            "requestedBy", "createdAt", "startedAt", "finishedAt", "lastSeq"}


@pytest.fixture
def api(user):
    return bearer_client(user)


def test_create_returns_201_with_the_bench_and_queues_its_job(api, user, local_agent):
    response = post_json(api, "/api/v1/benches/", {"name": "test-vm"})
    assert response.status_code == 201
    body = response.json()
    bench = bench_named(user, "test-vm")
    job = Job.objects.get(bench=bench)
    assert set(body) == BENCH_KEYS
    assert body | {"createdAt": None, "updatedAt": None} == {
        "id": bench.pk, "name": "test-vm", "actualName": "", "status": "creating", "host": "local",
        "sshInfo": "", "vncInfo": "", "vmIp": None, "lastError": "", "createdAt": None, "updatedAt": None,
        "latestJobId": job.pk, "image": None, "plan": None, "vcpus": 0, "memoryMib": 0, "diskGib": 0,
        "snapshotsAvailable": True,
    }
    assert (job.command, job.state, job.requested_by) == ("create", "queued", user)


def test_created_bench_becomes_active_and_its_log_reads_in_order(api, user, local_agent, run_jobs):
    bench_id = post_json(api, "/api/v1/benches/", {"name": "logged"}).json()["id"]
    [job] = run_jobs()
    bench = api.get(f"/api/v1/benches/{bench_id}/").json()
    assert bench["status"] == "active" and bench["actualName"] == "alice_logged"
    assert int(bench["sshInfo"]) >= 6000 and bench["latestJobId"] == job.pk

    log = api.get(f"/api/v1/jobs/{job.pk}/log/").json()
    assert log["finished"] is True and log["next"] is None
    assert [chunk["seq"] for chunk in log["results"]] == list(range(1, job.last_seq + 1))
    assert log["lastSeq"] == job.last_seq
    assert "VM alice_logged Created and Ready" in "".join(chunk["data"] for chunk in log["results"])


def test_log_pages_by_seq_and_prefixes_stderr(api, user, local_agent):
    bench = services.create_bench(user=user, name="chunks")
    job = Job.objects.get(bench=bench)
    JobChunk.objects.bulk_create([
        JobChunk(job=job, seq=seq, stream="stderr" if seq == 3 else "stdout", data=f"line {seq}\n")
        for seq in range(1, 6)
    ])
    first = api.get(f"/api/v1/jobs/{job.pk}/log/?limit=2").json()
    assert [c["seq"] for c in first["results"]] == [1, 2]
    assert first["lastSeq"] == 2 and first["finished"] is False
    assert first["next"] == f"http://testserver/api/v1/jobs/{job.pk}/log/?after=2&limit=2"
    second = api.get(first["next"]).json()
    assert second["results"] == [
        {"seq": 3, "stream": "stderr", "data": "ERROR: line 3\n"},
        {"seq": 4, "stream": "stdout", "data": "line 4\n"},
    ]
    last = api.get(second["next"]).json()
    assert [c["seq"] for c in last["results"]] == [5]
    assert last["next"] is None and last["lastSeq"] == 5
    empty = api.get(f"/api/v1/jobs/{job.pk}/log/?after=5").json()
    assert empty == {"results": [], "next": None, "lastSeq": 5, "finished": False}


@pytest.mark.parametrize("query", ["after=-1", "after=x", "limit=0", "limit=1001", "after=99999999999"])
def test_bad_log_query_is_400_with_field_errors(api, user, local_agent, query):
    services.create_bench(user=user, name="q")
    job = Job.objects.get()
    response = api.get(f"/api/v1/jobs/{job.pk}/log/?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert set(response.json()) == {"error", "fields"}
    assert response.json()["error"].startswith(f"{field}: ")
    assert list(response.json()["fields"]) == [field]


def test_actions_return_202_with_the_job(api, user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="cycle")
    run_jobs()
    for command, final_status in (("stop", "inactive"), ("start", "active"), ("activate", "active")):
        response = api.post(f"/api/v1/benches/{bench.pk}/{command}/")
        assert response.status_code == 202, response.json()
        job = response.json()
        assert set(job) == JOB_KEYS
        assert (job["command"], job["state"], job["requestedBy"], job["devbenchId"]) == (
            command, "queued", "alice", bench.pk)
        run_jobs()
        assert api.get(f"/api/v1/jobs/{job['id']}/").json()["state"] == "succeeded"
        assert api.get(f"/api/v1/benches/{bench.pk}/").json()["status"] == final_status


def test_refresh_status_runs_the_status_command(api, user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="probe")
    run_jobs()
    (local_agent.state_dir / "vms" / "alice_probe.json").unlink()
    response = api.post(f"/api/v1/benches/{bench.pk}/refresh-status/")
    assert (response.status_code, response.json()) == (200, {"status": "unknown"})
    assert bench_named(user, "probe").status == "unknown"
    assert Job.objects.filter(bench=bench, command="status").count() == 1


def test_second_change_while_one_is_queued_is_409(api, user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="race")
    run_jobs()
    assert api.post(f"/api/v1/benches/{bench.pk}/stop/").status_code == 202
    response = api.post(f"/api/v1/benches/{bench.pk}/activate/")
    assert (response.status_code, response.json()) == (409, {"error": "DevBench is busy: stop is queued"})
    assert api.delete(f"/api/v1/benches/{bench.pk}/").status_code == 409


def test_delete_is_202_with_the_job_then_the_bench_goes(api, user, local_agent, run_jobs):
    bench = services.create_bench(user=user, name="gone")
    run_jobs()
    response = api.delete(f"/api/v1/benches/{bench.pk}/")
    assert response.status_code == 202
    assert response.json()["command"] == "delete"
    assert api.get(f"/api/v1/benches/{bench.pk}/").json()["status"] == "deleting"
    run_jobs()
    assert api.get(f"/api/v1/benches/{bench.pk}/").status_code == 404
    # The jobs stay readable as the audit trail.
    assert api.get(f"/api/v1/jobs/{response.json()['id']}/").json()["state"] == "succeeded"


def test_delete_of_a_bench_never_started_is_204(api, user, local_agent):
    bench = services.create_bench(user=user, name="early")
    response = api.delete(f"/api/v1/benches/{bench.pk}/")
    assert response.status_code == 204 and response.content == b""
    assert not DevBench.objects.filter(pk=bench.pk).exists()
    assert Job.objects.get().state == "cancelled"


def test_cancel_a_queued_job_then_again_is_409(api, user, local_agent):
    services.create_bench(user=user, name="queued")
    job = Job.objects.get()
    response = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 202
    assert response.json()["state"] == "cancelled"
    assert bench_named(user, "queued").status == "error"
    again = api.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert (again.status_code, again.json()) == (409, {"error": "Job already cancelled"})


@pytest.mark.parametrize(
    ("name", "message"),
    [("x;id", "Invalid DevBench name. Use only letters, numbers, hyphens and underscores."),
     ("x" * 49, "DevBench name must be at most 48 characters"),
     ("", "DevBench name is required")],
)
def test_invalid_names_are_400_with_the_field_listed(api, local_agent, name, message):
    response = post_json(api, "/api/v1/benches/", {"name": name})
    assert response.status_code == 400
    assert response.json() == {"error": message, "fields": {"name": [message]}}
    assert not DevBench.objects.exists()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "error"),
    [
        ("{}", "application/json", 400, {"error": "name: This field is required.",
                                        "fields": {"name": ["This field is required."]}}),
        ('{"name": ["x"]}', "application/json", 400, {"error": "name: Not a valid string.",
                                                      "fields": {"name": ["Not a valid string."]}}),
        ("{not json", "application/json", 400, None),
        ("name=x", "text/plain", 415, {"error": 'Unsupported media type "text/plain" in request.'}),
    ],
)
def test_malformed_bodies_get_json_errors(api, local_agent, body, content_type, status, error):
    response = api.post("/api/v1/benches/", data=body, content_type=content_type)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    if error is None:
        assert response.json()["error"].startswith("JSON parse error")
    else:
        assert response.json() == error
    assert not DevBench.objects.exists()


def test_duplicate_quota_and_hourly_limit_are_the_services_rules(api, user, local_agent, settings):
    settings.DEVBENCH_DEFAULT_QUOTA = 3
    settings.DEVBENCH_CREATE_LIMIT_PER_HOUR = 2
    assert post_json(api, "/api/v1/benches/", {"name": "a1"}).status_code == 201
    duplicate = post_json(api, "/api/v1/benches/", {"name": "a1"})
    assert duplicate.status_code == 400
    assert duplicate.json()["error"] == "DevBench with this name already exists"
    assert post_json(api, "/api/v1/benches/", {"name": "a2"}).status_code == 201
    limited = post_json(api, "/api/v1/benches/", {"name": "a3"})
    assert (limited.status_code, limited.json()) == (
        429, {"error": "You can create at most 2 DevBenches per hour; try later"})
    # The compatible route counts against the same limit: one rule, one counter.
    compatible = Client()
    compatible.force_login(user)
    assert post_json(compatible, "/create-devbench", {"name": "a4"}).status_code == 429


def test_no_host_with_capacity_is_503(api, settings):
    settings.DEVBENCH_LOCAL_HOST = False
    response = post_json(api, "/api/v1/benches/", {"name": "nohost"})
    assert (response.status_code, response.json()) == (
        503, {"error": "No host has free capacity for a new DevBench; ask an admin"})


def test_list_is_paginated_and_filterable_without_n_plus_one(api, user, make_user, local_agent, run_jobs,
                                                            settings, django_assert_num_queries):
    settings.DEVBENCH_DEFAULT_QUOTA = 20
    settings.DEVBENCH_CREATE_LIMIT_PER_HOUR = 20
    for index in range(12):
        services.create_bench(user=user, name=f"vm{index:02}")
    services.create_bench(user=make_user("bob"), name="not-mine")
    run_jobs()
    for bench in DevBench.objects.filter(user=user, name__in=["vm00", "vm01", "vm02"]):
        services.request_command(bench=bench, command="stop", actor=user)
    run_jobs()
    api.get("/api/v1/me/")  # the key's last use is recorded (once a minute)
    with django_assert_num_queries(3):  # the key, the count, the page: nothing per row
        response = api.get("/api/v1/benches/?page_size=5")
    body = response.json()
    assert body["count"] == 12 and len(body["results"]) == 5
    assert body["next"] == "http://testserver/api/v1/benches/?page=2&page_size=5" and body["previous"] is None
    assert [bench["name"] for bench in body["results"]] == ["vm00", "vm01", "vm02", "vm03", "vm04"]
    assert all(bench["latestJobId"] for bench in body["results"])
    last = api.get("/api/v1/benches/?page=3&page_size=5").json()
    assert [bench["name"] for bench in last["results"]] == ["vm10", "vm11"] and last["next"] is None

    stopped = api.get("/api/v1/benches/?status=inactive").json()
    assert [bench["name"] for bench in stopped["results"]] == ["vm00", "vm01", "vm02"]
    assert api.get("/api/v1/benches/?host=local").json()["count"] == 12
    assert api.get("/api/v1/benches/?host=elsewhere").json()["count"] == 0
    bad = api.get("/api/v1/benches/?status=sleeping")
    assert bad.status_code == 400 and list(bad.json()["fields"]) == ["status"]
    past_the_end = api.get("/api/v1/benches/?page=9")
    assert (past_the_end.status_code, past_the_end.json()) == (404, {"error": "Invalid page."})
    for bad_page in ("0", "-1", "two", "1.5", "576460752303423488"):  # the last: found by schemathesis
        assert api.get(f"/api/v1/benches/?page={bad_page}").json() == {"error": "Invalid page."}
    assert api.get("/api/v1/benches/?host=elsewhere&page=1").json() == {
        "count": 0, "next": None, "previous": None, "results": []}


def test_job_list_of_a_bench_without_n_plus_one(api, user, local_agent, run_jobs,
                                                django_assert_max_num_queries):
    bench = services.create_bench(user=user, name="busy")
    run_jobs()
    for command in ("stop", "start", "stop", "start", "activate"):
        services.request_command(bench=bench, command=command, actor=user)
        run_jobs()
    api.get("/api/v1/me/")  # the key's last use is recorded (once a minute)
    with django_assert_max_num_queries(4):  # the key, the bench, the count, the page
        body = api.get(f"/api/v1/benches/{bench.pk}/jobs/").json()
    assert body["count"] == 6
    assert [job["command"] for job in body["results"]] == ["activate", "start", "stop", "start", "stop", "create"]
    assert {job["requestedBy"] for job in body["results"]} == {"alice"}
    stops = api.get(f"/api/v1/benches/{bench.pk}/jobs/?command=stop&state=succeeded").json()
    assert stops["count"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/benches/{bench}/"), ("delete", "/api/v1/benches/{bench}/"),
     ("post", "/api/v1/benches/{bench}/activate/"), ("post", "/api/v1/benches/{bench}/start/"),
     ("post", "/api/v1/benches/{bench}/stop/"), ("post", "/api/v1/benches/{bench}/refresh-status/"),
     ("get", "/api/v1/benches/{bench}/jobs/"), ("get", "/api/v1/jobs/{job}/"), ("get", "/api/v1/jobs/{job}/log/"),
     ("post", "/api/v1/jobs/{job}/cancel/")],
)
def test_another_users_bench_or_job_is_404(make_user, local_agent, run_jobs, method, path):
    owner = make_user("owner")
    bench = services.create_bench(user=owner, name="mine")
    run_jobs()
    job = Job.objects.get()
    intruder = bearer_client(make_user("intruder"))
    response = getattr(intruder, method)(path.format(bench=bench.pk, job=job.pk))
    assert response.status_code == 404
    assert response.json()["error"] in ("DevBench not found", "Job not found")
    bench.refresh_from_db()
    assert bench.status == "active" and Job.objects.count() == 1


def test_unknown_and_huge_ids_are_json_404(api):
    for path in ("/api/v1/benches/999999/", "/api/v1/benches/9999999999999999999999/", "/api/v1/jobs/x/"):
        response = api.get(path, HTTP_ACCEPT="application/json")
        assert response.status_code == 404
        assert "error" in response.json()


def test_bench_list_writes_what_the_detail_writes_in_the_current_time_zone(user, settings):
    """The list's items and a bench's detail are the same JSON, every kind of value included, with
    times in the current time zone (UTC as ``Z``)."""
    from django.utils import timezone

    from benches import selectors
    from benches.api.serializers import BenchSerializer
    from benches.models import Host

    host = Host.objects.create(name="hv9", kind=Host.Kind.SSH, address="10.0.0.9", username="x",
                               script_path="/usr/local/bin/devbench-agent")
    DevBench.objects.create(user=user, host=host, name="plain")
    DevBench.objects.create(user=user, host=host, name="full", actual_name="alice_full", status="error",
                            ssh_info="6001", vnc_info="5001", vm_ip="10.0.2.15", last_error="no disk")
    for zone in ("UTC", "Asia/Kolkata"):
        with timezone.override(zone):
            listed = BenchSerializer(selectors.bench_list_for(user), many=True).data
            for written in listed:
                assert written == BenchSerializer(selectors.bench_detail_for_owner(user, written["id"])).data
            suffix = "+05:30" if zone == "Asia/Kolkata" else "Z"
            assert listed[0]["createdAt"].endswith(suffix)
            assert listed[1]["vmIp"] == "10.0.2.15" and listed[0]["latestJobId"] is None
            assert listed[1]["host"] == "hv9" and listed[1]["lastError"] == "no disk"
