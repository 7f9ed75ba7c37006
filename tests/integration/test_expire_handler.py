"""The scheduled sweep ends jobs whose upload never came, and only those."""

from __future__ import annotations

import json
from typing import Any

import api_handler
import expire_handler
from integration.helpers import publish_job_changes
from support import EmulatedAws, FakeLambdaContext, load_event


def create_upload(lambda_context: FakeLambdaContext) -> str:
    response = api_handler.lambda_handler(load_event("api_create_upload.json"), lambda_context)
    assert response["statusCode"] == 201
    job_id: str = json.loads(response["body"])["job_id"]
    return job_id


def lifecycle_queue(aws: EmulatedAws) -> str:
    sqs, events = aws.client("sqs"), aws.client("events")
    url: str = sqs.create_queue(QueueName="lifecycle-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = aws.env["EVENT_BUS_NAME"]
    events.put_rule(Name="tap", EventBusName=bus, EventPattern=json.dumps({"source": ["imgflow"]}))
    events.put_targets(Rule="tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def received(aws: EmulatedAws, url: str) -> list[dict[str, Any]]:
    publish_job_changes(aws)  # the publisher announces what the sweep wrote
    messages = aws.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def scheduled_event() -> dict[str, Any]:
    return {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}


def test_given_an_upload_form_long_expired_when_the_sweep_runs_then_the_job_expires_and_says_so(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    events = lifecycle_queue(aws)
    overdue, fresh = create_upload(lambda_context), create_upload(lambda_context)
    aws.table().update_item(
        Key={"pk": overdue},
        UpdateExpression="SET upload_expires_at = :past",
        ExpressionAttributeValues={":past": 1_000},
    )

    result = expire_handler.lambda_handler(scheduled_event(), lambda_context)

    assert result == {"expired": 1}
    items = {job_id: aws.table().get_item(Key={"pk": job_id})["Item"] for job_id in (overdue, fresh)}
    assert items[overdue]["status"] == "expired"
    assert "awaiting_upload_shard" not in items[overdue]
    assert items[fresh]["status"] == "awaiting_upload"
    assert [(e["detail-type"], e["detail"]["job_id"]) for e in received(aws, events)] == [("Job Expired", overdue)]


def test_given_an_expired_job_when_the_sweep_runs_again_then_nothing_changes(
    aws: EmulatedAws, lambda_context: FakeLambdaContext
) -> None:
    job_id = create_upload(lambda_context)
    aws.table().update_item(
        Key={"pk": job_id}, UpdateExpression="SET upload_expires_at = :past", ExpressionAttributeValues={":past": 1}
    )
    expire_handler.lambda_handler(scheduled_event(), lambda_context)
    version = aws.table().get_item(Key={"pk": job_id})["Item"]["version"]

    assert expire_handler.lambda_handler(scheduled_event(), lambda_context) == {"expired": 0}
    assert aws.table().get_item(Key={"pk": job_id})["Item"]["version"] == version
