"""Unit tests of what `make load` reads from moto's recording and what `make cost` makes of it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from support import load_benchmark

load = load_benchmark("load")
cost = load_benchmark("cost")


def recorded(method: str, url: str, headers: dict[str, str], body: str = "") -> dict[str, Any]:
    return {"method": method, "url": url, "headers": headers, "body": body, "body_encoded": False}


def test_given_two_entries_on_one_line_and_a_torn_one_when_read_then_every_whole_entry_is_kept() -> None:
    first = recorded("GET", "http://aws/bucket/key", {"Authorization": "x"})
    second = recorded("POST", "http://aws/bucket", {})
    text = json.dumps(first) + json.dumps(second) + "\n" + json.dumps(first)[:40] + "\n" + json.dumps(second) + "\n"

    entries = load._entries(text)

    assert entries == [first, second, second]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (recorded("POST", "http://aws/", {"X-Amz-Target": "DynamoDB_20120810.UpdateItem"}), ("dynamodb", "UpdateItem")),
        (recorded("POST", "http://aws/", {"X-Amz-Target": "AmazonSQS.DeleteMessage"}), ("sqs", "DeleteMessage")),
        (recorded("POST", "http://aws/", {"X-Amz-Target": "AWSEvents.PutEvents"}), ("events", "PutEvents")),
        (recorded("POST", "http://aws/uploads-bucket", {"Content-Type": "multipart/form-data"}), ("s3", "PostObject")),
        (recorded("PUT", "http://aws/media/k", {"x-amz-copy-source": "/uploads/k"}), ("s3", "CopyObject")),
        (recorded("PUT", "http://aws/media/k", {}), ("s3", "PutObject")),
        (recorded("GET", "http://aws/media/k", {}), ("s3", "GetObject")),
    ],
)
def test_given_a_recorded_request_then_its_service_and_operation_are_named(
    entry: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert load._operation(entry) == expected


def test_given_put_events_and_the_runtimes_own_lifecycle_queue_when_counted_then_entries_count_and_it_does_not(
    tmp_path: Path,
) -> None:
    events = recorded("POST", "http://aws/", {"X-Amz-Target": "AWSEvents.PutEvents"}, json.dumps({"Entries": [{}, {}]}))
    lifecycle = recorded(
        "POST",
        "http://aws/",
        {"X-Amz-Target": "AmazonSQS.DeleteMessage"},
        base64.b64encode(b'{"QueueUrl": "http://aws/1/imgflow-local-local-lifecycle"}').decode(),
    )
    lifecycle["body_encoded"] = True
    recording = tmp_path / "recording.jsonl"
    recording.write_text("\n".join(json.dumps(entry) for entry in (events, lifecycle)) + "\n")

    counts = load._count(recording)

    assert counts == {("events", "PutEvents"): 1, ("events", "Entries"): 2}


def measured(variants_cpu: float) -> dict[str, Any]:
    return {
        "machine": {"cpu_model": "test"},
        "uploads": {
            "uploads": 10,
            "invocations": {
                "ApiFunction": {"invocations": 20, "duration_ms_mean": 50.0},
                "VariantsFunction": {"invocations": 10, "duration_ms_mean": 900.0},
                "SweepFunction": {"invocations": 1, "duration_ms_mean": 10.0},
            },
            "function_cpu_s_per_upload": {"ApiFunction": 0.1, "VariantsFunction": variants_cpu},
        },
        "requests": {
            "per_upload": {"dynamodb:GetItem": 4.0, "dynamodb:UpdateItem": 2.0, "s3:PutObject": 4.0},
            "job_item": {"item_bytes_median": 2500},
            "upload_bytes_mean": 1_000_000,
            "variant_bytes_mean": 500_000,
        },
    }


def test_given_measurements_then_billed_time_is_cpu_at_the_memorys_share_plus_the_long_polls_wait() -> None:
    one = cost.per_upload(measured(variants_cpu=1.0), {"ApiFunction": 512, "VariantsFunction": 3538})

    variants, api = one["functions"]["VariantsFunction"], one["functions"]["ApiFunction"]
    # Above 1,769 MB one thread gets no faster: 1 s of CPU bills 1 s at 3.456 GB.
    assert variants["gb_seconds"] == pytest.approx(1.0 * 3538 / 1024)
    # At 512 MB the api has 512/1769 of a vCPU, and its client's long poll waits out the variants' second.
    assert api["invocations"] * api["seconds"] == pytest.approx(0.1 / (512 / 1769) + 1.0)
    assert "SweepFunction" not in one["functions"]  # scheduled, not per upload
    # A 2.5 KB item: a write is 3 units, a strongly consistent read 1.
    assert one["requests"]["dynamodb_write_units"] == 6
    assert one["requests"]["dynamodb_read_units"] == 4
    assert one["stored_bytes"] == 1_500_000
