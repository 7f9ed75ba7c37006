"""The embedded emulator's speed-ups change what moto costs, never what it answers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import jsonpath_ng.ext
import pytest
from moto import backends
from moto.core.responses import ActionResult
from moto.events.utils import EventTemplateParser

from imgflow_local import moto_speedups
from support import REGION, EmulatedAws

Answer = tuple[int, dict[str, str], str]


def test_given_installed_when_a_request_is_dispatched_then_the_same_modules_answer_without_listing_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_speedups.install()
    modules = set(backends.list_of_moto_modules())
    moto_speedups.install()  # twice is once

    def no_listing(path: str | os.PathLike[str]) -> list[str]:
        raise AssertionError(f"listed {Path(path)} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert set(backends.list_of_moto_modules()) == modules
    assert {"dynamodb", "dynamodbstreams", "s3", "sqs", "events"} <= modules
    assert "not_a_service" not in backends.list_of_moto_modules()


@pytest.fixture
def answers(aws: EmulatedAws, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Answer | None, Answer]]:
    """Every answer of the test: the operation, the plain answer (None where moto's serializer answered)
    and what moto's serializer makes of the same result."""
    moto_speedups.install()
    by_model = ActionResult.execute_result.__wrapped__  # type: ignore[attr-defined]
    recorded: list[tuple[str, Answer | None, Answer]] = []

    def both(self: ActionResult, context: Any) -> Any:
        plain = moto_speedups.plain_answer(self.result, context)
        recorded.append((context.operation_model.name, plain, by_model(self, context)))
        return plain or by_model(self, context)

    monkeypatch.setattr(ActionResult, "execute_result", both)
    return recorded


def test_given_dynamodb_and_its_stream_when_answered_plainly_then_each_answer_is_the_one_moto_would_give(
    aws: EmulatedAws, answers: list[tuple[str, Answer | None, Answer]]
) -> None:
    dynamodb, table = aws.client("dynamodb"), aws.env["JOBS_TABLE"]
    variant = {"M": {"preset": {"S": "large"}, "width": {"N": "1200"}, "animated": {"BOOL": False}}}
    item = {
        "pk": {"S": "job-1"},
        "owner": {"S": "alice"},
        "created_at": {"S": "2026-12-02T07:00:00Z"},
        "variants": {"L": [variant, variant]},
        "tags": {"SS": ["a", "b"]},
        "sizes": {"NS": ["1", "-1E-130", "9.9999999999999999999999999999999999999E+125"]},
        "nothing": {"NULL": True},
        "text": {"S": 'ünïcødé \u2028 "quoted" \\ </script>'},
    }
    dynamodb.put_item(TableName=table, Item=item)
    dynamodb.put_item(TableName=table, Item={**item, "pk": {"S": "job-2"}})
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "job-1"}})["Item"] == item
    dynamodb.get_item(TableName=table, Key={"pk": {"S": "absent"}})
    dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "job-1"}},
        UpdateExpression="SET progress = :p ADD tags :t",
        ExpressionAttributeValues={":p": {"N": "50"}, ":t": {"SS": ["c"]}},
        ReturnValues="ALL_NEW",
    )
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "job-1"}},
            UpdateExpression="SET progress = :p",
            ConditionExpression="progress = :old",
            ExpressionAttributeValues={":p": {"N": "60"}, ":old": {"N": "0"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    dynamodb.query(
        TableName=table,
        IndexName="owner-index",
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "alice"}},
        Limit=1,
    )
    dynamodb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": "job-1"}}, {"pk": {"S": "job-2"}}]}})
    dynamodb.scan(TableName=table, Limit=1)
    dynamodb.put_item(TableName=table, Item={**item, "progress": {"N": "0"}}, ReturnValues="ALL_OLD")
    dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {**item, "pk": {"S": "job-4"}}}}]})
    dynamodb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": {"pk": {"S": "job-4"}}}}])
    dynamodb.transact_write_items(
        TransactItems=[{"Delete": {"TableName": table, "Key": {"pk": {"S": "job-4"}}}}],
        ReturnConsumedCapacity="TOTAL",
    )
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "job-2"}}, ReturnValues="ALL_OLD")
    # The mock routes DynamoDB Streams by this host only (boto3 would name the account in it).
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )
    stream = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    changes = ["INSERT", "INSERT", "MODIFY", "MODIFY", "INSERT", "REMOVE", "REMOVE"]
    assert [record["eventName"] for record in records] == changes
    dynamodb.put_item(TableName=table, Item={**item, "pk": {"S": "job-3"}, "blob": {"B": b"\x00\xff"}})
    assert dynamodb.get_item(TableName=table, Key={"pk": {"S": "job-3"}})["Item"]["blob"] == {"B": b"\x00\xff"}

    for operation, plain, by_model in answers:
        if plain is not None:
            status, headers, body = plain
            assert (status, headers["Content-Type"]) == (by_model[0], by_model[1]["Content-Type"]), operation
            assert json.loads(body) == json.loads(by_model[2]), operation
    answered_plainly = {operation for operation, plain, _ in answers if plain is not None}
    assert answered_plainly == {
        operation for operations in moto_speedups.PLAIN_JSON_OPERATIONS.values() for operation in operations
    }
    # A blob is base64 on the wire, which only the model knows: its GetItem went to moto's serializer.
    assert [plain is None for operation, plain, _ in answers if operation == "GetItem"] == [False, False, True]


def test_given_installed_when_an_event_is_made_into_a_targets_input_then_each_path_is_parsed_once_and_reads_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moto_speedups.install()
    event = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Job Succeeded",
        "source": "imgflow",
        "account": "123456789012",
        "time": 1796194800,  # as moto's PutEvents writes it (its default template leaves it unquoted)
        "region": REGION,
        "resources": ["arn:aws:s3:::media/job-1"],
        "detail": {"job_id": "job-1", "version": 7, "variants": [{"preset": "large", "bytes": 1}]},
        "ingestion-time": "2026-12-02T07:00:00.123Z",
    }
    paths = {"job": "$.detail.job_id", "first": "$.detail.variants[0].preset", "absent": "$.detail.nothing"}
    template = '{"job": "<job>", "first": "<first>", "absent": "<absent>", "whole": <aws.events.event.json>}'

    def inputs() -> list[dict[str, Any]]:
        by_rule = EventTemplateParser.parse(template, paths, event)  # type: ignore[arg-type]
        by_default = EventTemplateParser.parse("", {}, event)  # type: ignore[arg-type]
        return [by_rule, by_default]

    cached = inputs()

    assert jsonpath_ng.ext.parse("$.detail.job_id") is jsonpath_ng.ext.parse("$.detail.job_id")
    monkeypatch.setattr(jsonpath_ng.ext, "parse", jsonpath_ng.ext.parse.__wrapped__)  # type: ignore[attr-defined]
    assert cached == inputs()
    assert cached[0] == {"job": "job-1", "first": "large", "absent": "<absent>", "whole": event}
