"""How `imgflow soak` reads the jobs it waits for: by key, in BatchGetItem's pages, all of each item at the
end and only what says whether a job moved while it waits."""

from __future__ import annotations

import boto3

from imgflow_local.soak import _PROGRESS, _get_jobs
from support import REGION, EmulatedAws


def test_given_more_jobs_than_one_call_reads_when_read_then_every_one_that_exists_and_only_the_asked_attributes(
    aws: EmulatedAws,
) -> None:
    dynamodb = boto3.session.Session(region_name=REGION).resource("dynamodb")
    table_name = aws.stack.physical_id("JobsTable")
    table = dynamodb.Table(table_name)
    with table.batch_writer() as batch:
        for number in range(250):
            batch.put_item(
                Item={
                    "pk": f"job-{number}",
                    "status": "processing",
                    "version": number,
                    "tasks": {"variants": {"status": "running"}},
                    "variants": {"thumb": {"key": "k"}},
                }
            )
    asked = [f"job-{number}" for number in range(250)] + ["job-never"]

    whole = _get_jobs(dynamodb, table_name, asked)
    progress = _get_jobs(dynamodb, table_name, asked, projection=_PROGRESS)

    assert set(whole) == set(progress) == set(asked) - {"job-never"}
    assert whole["job-7"]["variants"] == {"thumb": {"key": "k"}}
    assert progress["job-7"] == {
        "pk": "job-7",
        "status": "processing",
        "version": 7,
        "tasks": {"variants": {"status": "running"}},
    }
