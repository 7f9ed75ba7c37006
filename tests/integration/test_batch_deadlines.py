"""A batch that runs short of time starts no more records: they go back to the queue untouched, rather
than being cut short with the whole invocation when Lambda times it out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import ingest_handler
from imgflow.models import JobStatus
from integration.helpers import (
    HOPPER,
    create_api_job,
    put_upload,
    reported_failures,
    retarget_notification,
    sqs_event,
    stored_job,
)
from support import EmulatedAws, FakeLambdaContext, load_event


@dataclass
class RunningOutContext(FakeLambdaContext):
    """An invocation whose remaining time is read from `remaining`, one value a call (the last one stays)."""

    remaining: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def test_given_a_batch_running_out_of_time_when_records_remain_then_they_are_left_for_the_next_delivery(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    data = HOPPER.read_bytes()
    notification = load_event("ingest_s3_upload.json")["Records"][0]["body"]
    bodies, job_ids = [], []
    for _ in range(3):
        created = create_api_job(
            lambda_context, {"filename": "hopper.jpg", "content_type": "image/jpeg", "size": len(data)}
        )
        key = created["upload"]["fields"]["key"]
        etag = put_upload(aws, key, data)
        bodies.append(
            retarget_notification(json.loads(notification), aws.uploads_bucket, key=key, etag=etag, size=len(data))
        )
        job_ids.append(created["job_id"])
    event = sqs_event(*bodies)
    # A minute at the start; then, after the first upload, less than any upload may need.
    context = RunningOutContext(remaining=[60_000, ingest_handler.RECORD_TIME_MS - 1])

    failures = reported_failures(ingest_handler.lambda_handler, event, context)

    assert failures == [record["messageId"] for record in event["Records"][1:]]
    statuses = [stored_job(aws, job_id).status for job_id in job_ids]
    assert statuses == [JobStatus.PROCESSING, JobStatus.AWAITING_UPLOAD, JobStatus.AWAITING_UPLOAD]
