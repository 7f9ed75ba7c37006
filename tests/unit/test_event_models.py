"""Unit tests of the event models: S3 notifications through SQS, as S3 and emulators send them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from imgflow.event_models import IngestRecordModel, created_objects
from support import load_fixture_event


def sqs_record(body: Any) -> dict[str, Any]:
    return {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1",
            "SenderId": "s",
            "ApproximateFirstReceiveTimestamp": "1",
        },
        "messageAttributes": {},
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


@pytest.mark.parametrize(
    ("fixture", "key"),
    [
        ("s3_key_space_plus.json", "uploads/u123/red flower.jpg"),
        ("s3_key_literal_plus.json", "uploads/u123/a+b.jpg"),
        ("s3_key_unicode.json", None),
    ],
)
def test_given_an_encoded_key_when_parsed_then_it_is_decoded_once(fixture: str, key: str | None) -> None:
    record = IngestRecordModel.model_validate(sqs_record(load_fixture_event(fixture)))
    [source] = created_objects(record.body)
    if key is not None:
        assert source.key == key
    assert "%" not in source.key
    assert "+" not in source.key or fixture == "s3_key_literal_plus.json"


def test_given_a_test_event_when_parsed_then_it_names_no_object() -> None:
    record = IngestRecordModel.model_validate(sqs_record(load_fixture_event("s3_test_event.json")))
    assert created_objects(record.body) == []


def test_given_an_emulator_notification_without_identity_fields_when_parsed_then_it_is_accepted() -> None:
    body = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Post",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "c",
                    "bucket": {"name": "b", "arn": "arn:aws:s3:::b"},
                    "object": {"key": "uploads%2Fa+b.jpg", "size": 3, "eTag": "e"},
                },
            }
        ]
    }
    [source] = created_objects(IngestRecordModel.model_validate(sqs_record(body)).body)
    assert (source.key, source.size, source.sequencer) == ("uploads/a b.jpg", 3, None)


@pytest.mark.parametrize("body", ['{"not": "an s3 event"}', "{truncated json"])
def test_given_a_poison_body_when_parsed_then_it_is_refused(body: str) -> None:
    with pytest.raises(ValidationError):
        IngestRecordModel.model_validate(sqs_record(body))
