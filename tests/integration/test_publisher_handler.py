"""Integration tests of the publisher: JobsTable's real stream records (moto's) in, lifecycle events on the bus."""

from __future__ import annotations

import copy
from typing import Any

import publisher_handler
from imgflow import aws as clients
from imgflow.services import uploads_service
from imgflow.webhook_models import LifecycleEnvelope
from imgflow.webhooks import message_id
from integration.helpers import (
    API_OWNER,
    HOPPER,
    accepted_api_job,
    job_changes,
    lifecycle_events,
    throttled,
)
from support import EmulatedAws, FakeLambdaContext, load_event


def publish(records: list[dict[str, Any]], context: FakeLambdaContext) -> list[str]:
    """The sequence numbers the publisher reports failed."""
    result = publisher_handler.lambda_handler({"Records": records}, context)
    return [failure["itemIdentifier"] for failure in result["batchItemFailures"]]


def announced(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(event["detail-type"], event["detail"]["version"]) for event in events]


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [message_id(LifecycleEnvelope.model_validate(event)) for event in events]


def test_given_a_job_accepted_then_deleted_then_its_stream_records_announce_each_step_in_version_order(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    uploads_service().delete_job(job_id, API_OWNER)
    records = job_changes(aws)
    keys = [record["dynamodb"]["Keys"]["pk"]["S"] for record in records]
    # What else the table holds changed too (quota counters, the tombstone): none of it is announced.
    assert any(key.startswith("quota#") for key in keys)
    assert f"deleted#{job_id}" in keys

    assert publish(records, lambda_context) == []

    events = lifecycle_events(aws)
    assert [event["detail"]["job_id"] for event in events] == [job_id, job_id]
    [(accepted, version), (deleted, deleted_version)] = announced(events)
    assert (accepted, deleted) == ("Job Accepted", "Job Deleted")
    assert deleted_version == version + 1


def test_given_eventbridge_fails_on_a_record_then_it_and_every_later_record_are_retried_and_nothing_overtakes_it(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    uploads_service().delete_job(job_id, API_OWNER)
    records = job_changes(aws)
    with throttled(clients.events(), "put_events", code="ThrottlingException", status=400):
        failed = publish(records, lambda_context)

    accepting = next(r for r in records if r["dynamodb"].get("NewImage", {}).get("status", {}).get("S") == "processing")
    start = records.index(accepting)
    # Lambda resumes from the first failure it is told of: the record that failed and all after it.
    assert failed == [record["dynamodb"]["SequenceNumber"] for record in records[start:]]
    assert lifecycle_events(aws) == []

    assert publish(records[start:], lambda_context) == []
    assert announced(lifecycle_events(aws, job_id))[0][0] == "Job Accepted"


def test_given_the_same_records_again_then_the_same_events_are_published_with_the_same_ids(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    records = job_changes(aws)

    assert publish(records, lambda_context) == []
    first = lifecycle_events(aws, job_id)
    assert publish(copy.deepcopy(records), lambda_context) == []
    again = lifecycle_events(aws, job_id)

    assert announced(first) == announced(again) == [("Job Accepted", first[0]["detail"]["version"])]
    assert ids(first) == ids(again)


def test_given_dynamodbs_ttl_removed_a_job_then_no_deletion_is_announced(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    job_id, _, _ = accepted_api_job(aws, lambda_context, HOPPER.read_bytes())
    lifecycle_events(aws)  # what came before the removal
    aws.table().delete_item(Key={"pk": job_id})
    [removal] = job_changes(aws)
    # The emulator runs no TTL: its removals are marked as DynamoDB marks them (a user's carry no identity).
    by_ttl = {**removal, "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}

    assert publish([by_ttl], lambda_context) == []
    assert lifecycle_events(aws) == []

    assert publish([removal], lambda_context) == []
    assert announced(lifecycle_events(aws, job_id))[0][0] == "Job Deleted"


def test_given_the_sample_event_of_an_accepted_upload_then_job_accepted_carries_its_version_and_image(
    aws: EmulatedAws, lambda_context: FakeLambdaContext, tap: None
) -> None:
    # events/publisher_job_change.json: what `sam local invoke PublisherFunction -e` sends, as Lambda sends it.
    assert publish(load_event("publisher_job_change.json")["Records"], lambda_context) == []

    [accepted] = lifecycle_events(aws)
    assert announced([accepted]) == [("Job Accepted", 3)]
    assert (accepted["detail"]["image"]["width"], accepted["detail"]["owner"]) == (128, "alice")
