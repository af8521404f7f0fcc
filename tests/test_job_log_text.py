"""The job log's text leaves out terminal control sequences (colours, titles, cursor moves);
``raw=1`` gives the text as the script wrote it."""

from __future__ import annotations

import pytest

from benches import services
from benches.models import Job, JobChunk
from tests.api_helpers import bearer_client

pytestmark = pytest.mark.django_db

WRITTEN = [
    ("stdout", "\x1b[1;32mCloning VM...\x1b[0m done\n"),
    ("stdout", "\x1b]0;pwned title\x07\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\\tok\n"),
    ("stderr", "disk \x1b[2K\x1b[1Alow\x08\x07\x9b31m\x1bc\n"),
]


@pytest.fixture
def job(user, local_agent) -> Job:
    bench = services.create_bench(user=user, name="colours")
    job = Job.objects.get(bench=bench)
    JobChunk.objects.bulk_create([
        JobChunk(job=job, seq=seq, stream=stream, data=data) for seq, (stream, data) in enumerate(WRITTEN, start=1)
    ])
    return job


def test_the_log_text_has_no_control_sequences(user, job):
    body = bearer_client(user).get(f"/api/v1/jobs/{job.pk}/log/").json()
    assert body["results"] == [
        {"seq": 1, "stream": "stdout", "data": "Cloning VM... done\n"},
        {"seq": 2, "stream": "stdout", "data": "link\tok\n"},
        {"seq": 3, "stream": "stderr", "data": "ERROR: disk low\n"},
    ]


def test_raw_gives_the_text_as_written_and_pages_stay_raw(user, job):
    api = bearer_client(user)
    first = api.get(f"/api/v1/jobs/{job.pk}/log/?raw=1&limit=2").json()
    assert [chunk["data"] for chunk in first["results"]] == [data for _stream, data in WRITTEN[:2]]
    second = api.get(first["next"]).json()
    assert second["results"] == [{"seq": 3, "stream": "stderr", "data": "ERROR: " + WRITTEN[2][1]}]
    assert api.get(f"/api/v1/jobs/{job.pk}/log/?raw=0").json()["results"][0]["data"] == "Cloning VM... done\n"


def test_a_bad_raw_value_is_400(user, job):
    response = bearer_client(user).get(f"/api/v1/jobs/{job.pk}/log/?raw=maybe")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["raw"]
