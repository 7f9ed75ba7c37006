"""Invocations of one function never share state in the local runtime, as on Lambda, where a container
serves one invocation at a time: concurrent API requests each get the job of their own body, and
concurrent status reads each get their own job, never a 5xx.

These failed when the runtime ran every invocation of a function on threads of one process: Powertools'
resolver keeps the current event on the router class, so a request could be served with another's
body (one job in about a thousand came back with another request's filename) or fail with
`KeyError: '_route'`."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

CLIENTS = 24
REQUESTS = 320


@pytest.fixture(scope="module")
def pipeline(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]]) -> Iterator[Pipeline]:
    """A runtime whose stage takes these bursts: the stage's throttle (100/s, bursts of 200) would answer
    some with 429 on a fast machine, and these tests are about invocations, not the stage."""
    with serve_imgflow("--parameter", "ApiThrottleRate=100000", "--parameter", "ApiThrottleBurst=100000") as served:
        yield served


def test_given_concurrent_uploads_with_distinct_bodies_when_created_then_each_job_is_its_own(
    pipeline: Pipeline,
) -> None:
    def create(number: int) -> tuple[int, int, dict[str, Any]]:
        # An owner per request: an answer in another's name would show, and no owner meets its quota.
        response = pipeline.create_upload(
            f"isolation-{number}.jpg",
            "image/jpeg",
            1000 + number,
            owner=f"isolation-{number}",
            metadata={"request": str(number)},
        )
        return number, response.status_code, response.json()

    with ThreadPoolExecutor(CLIENTS) as clients:
        created = list(clients.map(create, range(REQUESTS)))

    assert Counter(status for _, status, _ in created) == {201: REQUESTS}
    job_ids = {body["job_id"] for _, _, body in created}
    assert len(job_ids) == REQUESTS, "two requests were answered with the same job"

    def read(entry: tuple[int, int, dict[str, Any]]) -> tuple[int, int, dict[str, Any]]:
        number, _, body = entry
        response = pipeline.job(body["job_id"], owner=f"isolation-{number}")
        return number, response.status_code, response.json()

    with ThreadPoolExecutor(CLIENTS) as clients:
        views = list(clients.map(read, created))

    assert Counter(status for _, status, _ in views) == {200: REQUESTS}
    crossed = [
        (number, view.get("filename"), view.get("metadata"))
        for number, _, view in views
        if view["filename"] != f"isolation-{number}.jpg"
        or view["metadata"] != {"request": str(number)}
        or view["owner"] != f"isolation-{number}"
    ]
    assert not crossed, f"jobs carrying another request's body: {crossed[:5]}"
    # The declared size travels with the job to ingest (`upload_mismatch`): it must be this body's too.
    for number, _, body in created[:50]:
        item = pipeline.jobs_table.get_item(Key={"pk": body["job_id"]}, ConsistentRead=True)["Item"]
        assert item["declared_size"] == 1000 + number


def test_given_many_concurrent_status_reads_then_none_answers_5xx_or_another_job(pipeline: Pipeline) -> None:
    owners = [f"reader-{n}" for n in range(8)]
    job_ids = [pipeline.create_upload("reads.png", "image/png", 100, owner=owner).json()["job_id"] for owner in owners]

    def read(number: int) -> tuple[str, int, str]:
        job_id, owner = job_ids[number % len(job_ids)], owners[number % len(owners)]
        response = pipeline.job(job_id, owner=owner)
        return job_id, response.status_code, response.json().get("job_id", response.text)

    with ThreadPoolExecutor(CLIENTS) as clients:
        answers = list(clients.map(read, range(REQUESTS)))

    assert Counter(status for _, status, _ in answers) == {200: REQUESTS}
    assert all(asked == answered for asked, _, answered in answers)


def test_given_a_burst_then_the_step_log_reports_each_cold_start(pipeline: Pipeline) -> None:
    with ThreadPoolExecutor(8) as clients:
        list(clients.map(lambda _: pipeline.api("GET", "/health").status_code, range(64)))

    cold_starts = [line for line in pipeline.log if re.search(r"ApiFunction .*cold start: new container", line)]
    assert cold_starts, "no cold start was logged"
