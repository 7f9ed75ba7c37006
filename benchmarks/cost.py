"""`make cost`: what imgflow costs on AWS, from what `make load` measured (benchmarks/load-results.json)
and the template's memory sizes, at public us-east-1 prices (arm64). Prints the README's cost table.

Per upload: each function's invocations and mean duration (the local runtime's invocation records; a
cold start's container fork left out), the AWS requests the emulator served for a sample of uploads
(DynamoDB, SQS, S3, EventBridge), the bytes stored. Then two rates: 10,000 uploads a day and 1,000
uploads a second, with the concurrency each function needs at the second (Little's law: arrivals per
second x seconds each) against the account's default limits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# us-east-1, as published on the pricing pages below (read 2026-12-02; none has changed since the
# DynamoDB on-demand cut of 2024-11-01). First tiers; free tiers left out (they round 10,000 a day to ~0).
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,  # https://aws.amazon.com/lambda/pricing/ (first 7.5 B GB-s/month)
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,  # https://aws.amazon.com/api-gateway/pricing/ (HTTP API, first 300 M)
    "sqs_request": 0.40 / 1e6,  # https://aws.amazon.com/sqs/pricing/ (standard, per 64 KB chunk)
    "dynamodb_write_unit": 0.625 / 1e6,  # https://aws.amazon.com/dynamodb/pricing/on-demand/
    "dynamodb_read_unit": 0.125 / 1e6,
    "dynamodb_gb_month": 0.25,
    "s3_put_class": 0.005 / 1000,  # https://aws.amazon.com/s3/pricing/ (PUT, COPY, POST, LIST)
    "s3_get_class": 0.0004 / 1000,  # GET, HEAD; DELETE is free
    "s3_gb_month": 0.023,  # S3 Standard, first 50 TB
    "eventbridge_event": 1.00 / 1e6,  # https://aws.amazon.com/eventbridge/pricing/ (custom events)
}
PRICES_READ = "2026-12-02"

# The account's defaults that 1,000 uploads a second meets (us-east-1).
LIMITS = [
    ("Lambda concurrent executions", "1,000 per account and Region (a quota increase raises it)"),
    ("Lambda scaling", "each function adds at most 1,000 concurrent executions every 10 s"),
    ("SQS event source", "scales by up to 300 concurrent invocations a minute, to 1,250 per queue mapping"),
    ("S3", "3,500 PUT/COPY/POST/DELETE and 5,500 GET/HEAD per second per partitioned prefix"),
    (
        "DynamoDB on-demand",
        "a new table serves 4,000 writes and 12,000 reads a second at once (more with warm"
        " throughput), 40,000 read and write units per table by default, 1,000 WCU per partition",
    ),
    ("EventBridge PutEvents", "10,000 entries a second in us-east-1 (soft)"),
    (
        "API Gateway",
        "10,000 requests a second per account and Region (5,000 burst); the template's stage"
        " throttle (ApiThrottleRate) first",
    ),
]

# Run on a schedule, not per upload: a few invocations a day whatever the traffic.
_SCHEDULED = {"SweepFunction"}
# What a client's long poll waits on, from upload to `succeeded`.
_PIPELINE = ("IngestFunction", "VariantsFunction")
_READS = {"GetItem", "Query", "BatchGetItem", "Scan"}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_S3_PUT_CLASS = {"PostObject", "PutObject", "CopyObject", "ListObjects"}
_S3_GET_CLASS = {"GetObject", "HeadObject"}


def memory_sizes(template: Path) -> dict[str, int]:
    from imgflow_local.runtime import REGION
    from imgflow_local.stack import LocalStack

    return {spec.logical_id: spec.memory_mb for spec in LocalStack(template, REGION).functions()}


def vcpus(memory_mb: int) -> float:
    """Lambda's CPU share: one vCPU at 1,769 MB, in proportion below and above (six at 10,240 MB)."""
    return memory_mb / 1769


def per_upload(measured: dict[str, Any], memory: dict[str, int]) -> dict[str, Any]:
    """Requests, GB-seconds and dollars for one upload.

    A function's billed seconds are its measured CPU seconds per invocation at the CPU share its memory
    gives, taken as one thread (the variants encodes use a second vCPU only above 1,769 MB), which leaves
    out network waits (tens of milliseconds a call) and x86-to-Graviton differences. The api function is
    also billed while a long poll waits: a client that long-polls holds one invocation from upload to
    `succeeded`, which is ingest's and variants' time here."""
    uploads = measured["uploads"]["uploads"]
    cpu = measured["uploads"]["function_cpu_s_per_upload"]
    functions = {}
    for name, record in measured["uploads"]["invocations"].items():
        if name in _SCHEDULED:
            continue
        count = record["invocations"] / uploads
        mb = memory.get(name, 512)
        seconds = cpu.get(name, 0.0) / count / min(1.0, vcpus(mb)) if count else 0.0
        functions[name] = {
            "memory_mb": mb,
            "invocations": count,
            "cpu_s": cpu.get(name, 0.0),
            "local_wall_s": record["duration_ms_mean"] / 1000,
            "seconds": seconds,
        }
    pipeline = sum(
        functions[name]["seconds"] * functions[name]["invocations"] for name in _PIPELINE if name in functions
    )
    if "ApiFunction" in functions:
        api = functions["ApiFunction"]
        api["seconds"] += pipeline / api["invocations"]
    for f in functions.values():
        f["gb_seconds"] = f["invocations"] * f["seconds"] * f["memory_mb"] / 1024
    requests = measured["requests"]["per_upload"]
    item_kb = measured["requests"]["job_item"]["item_bytes_median"] / 1024

    def total(service: str, operations: set[str]) -> float:
        return sum(n for key, n in requests.items() if key.split(":")[0] == service and key.split(":")[1] in operations)

    # Strongly consistent reads (the job store reads so): a unit per 4 KB; a write, a unit per 1 KB.
    reads = total("dynamodb", _READS) * max(1, math.ceil(item_kb / 4))
    writes = total("dynamodb", _WRITES) * max(1, math.ceil(item_kb))
    sqs = sum(n for key, n in requests.items() if key.startswith("sqs:"))
    s3_put, s3_get = total("s3", _S3_PUT_CLASS), total("s3", _S3_GET_CLASS)
    events = requests.get("events:Entries", requests.get("events:PutEvents", 0))
    # Ingest keeps the validated original beside the variants (a copy in the media bucket).
    stored_bytes = measured["requests"]["upload_bytes_mean"] + measured["requests"]["variant_bytes_mean"]
    api = functions.get("ApiFunction", {}).get("invocations", 0)
    p = PRICES
    dollars = {
        "lambda": sum(f["gb_seconds"] for f in functions.values()) * p["lambda_gb_second_arm64"]
        + sum(f["invocations"] for f in functions.values()) * p["lambda_request"],
        "api_gateway": api * p["http_api_request"],
        "sqs": sqs * p["sqs_request"],
        "dynamodb": reads * p["dynamodb_read_unit"] + writes * p["dynamodb_write_unit"],
        "s3_requests": s3_put * p["s3_put_class"] + s3_get * p["s3_get_class"],
        "eventbridge": events * p["eventbridge_event"],
    }
    return {
        "functions": functions,
        "requests": {
            "http_api": api,
            "sqs": sqs,
            "dynamodb_read_units": reads,
            "dynamodb_write_units": writes,
            "s3_put_class": s3_put,
            "s3_get_class": s3_get,
            "eventbridge_events": events,
        },
        "item_kb": item_kb,
        "stored_bytes": stored_bytes,
        "dollars": dollars,
    }


def report(measured: dict[str, Any], memory: dict[str, int], retention_days: int, gemini: float) -> str:
    one = per_upload(measured, memory)
    lines = [
        f"Per upload (measured by `make load` on {measured['machine']['cpu_model']}, prices of {PRICES_READ}):",
        "",
        "| function | MemorySize | invocations | CPU s per upload (measured) | billed s per invocation (model)"
        " | GB-s per upload |",
        "|---|---|---|---|---|---|",
    ]
    for name, f in sorted(one["functions"].items()):
        lines.append(
            f"| {name} | {f['memory_mb']} MB | {f['invocations']:.2f} | {f['cpu_s']:.3f} | {f['seconds']:.3f}"
            f" | {f['gb_seconds']:.3f} |"
        )
    gb_s = sum(f["gb_seconds"] for f in one["functions"].values())
    r = one["requests"]
    lines += [
        "",
        f"Lambda {gb_s:.2f} GB-s; HTTP API {r['http_api']:.1f} requests; SQS {r['sqs']:.1f} requests; DynamoDB"
        f" {r['dynamodb_read_units']:.1f} read and {r['dynamodb_write_units']:.1f} write units (a job item of"
        f" {one['item_kb']:.1f} KB); S3 {r['s3_put_class']:.1f} PUT-class and {r['s3_get_class']:.1f} GET-class"
        f" requests, {one['stored_bytes'] / 1e6:.2f} MB stored (the original and its variants) for {retention_days}"
        f" days; EventBridge"
        f" {r['eventbridge_events']:.1f} events.",
        "",
        "| | per upload | 10,000 a day (month of 30 days) | 1,000 a second (per hour) |",
        "|---|---|---|---|",
    ]
    month, hour = 10_000 * 30, 1000 * 3600
    for service, dollars in one["dollars"].items():
        lines.append(
            f"| {service} | ${dollars * 1e6:,.0f} per million | ${dollars * month:,.2f} | ${dollars * hour:,.2f} |"
        )
    storage_month = one["stored_bytes"] / 1e9 * PRICES["s3_gb_month"]
    # Kept for retention_days: in steady state a month holds retention_days of uploads.
    lines.append(
        f"| S3 storage (steady state) | | ${10_000 * retention_days * storage_month:,.2f} a month |"
        f" ${1000 * 86400 * retention_days * storage_month:,.0f} a month |"
    )
    total = sum(one["dollars"].values())
    lines.append(
        f"| **total, without storage** | ${total * 1e6:,.0f} per million | ${total * month:,.2f}"
        f" | ${total * hour:,.2f} |"
    )
    lines += [
        "",
        f"AI edits: ${gemini} per call (GeminiCostPerCall) dominates any edit: 1,000 edits ${gemini * 1000:,.0f}.",
        "",
        "1,000 uploads a second, concurrency by Little's law (arrivals a second x seconds each):",
        "",
    ]
    concurrency = {name: 1000 * f["invocations"] * f["seconds"] for name, f in one["functions"].items()}
    for name, value in sorted(concurrency.items(), key=lambda item: -item[1]):
        lines.append(f"- {name}: {value:,.0f} concurrent executions")
    lines.append(f"- all functions: {sum(concurrency.values()):,.0f}, against the default of 1,000 an account has")
    lines += ["", "Limits met on the way:", ""] + [f"- {name}: {text}" for name, text in LIMITS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measurements", type=Path, default=ROOT / "benchmarks" / "load-results.json")
    parser.add_argument("--template", type=Path, default=ROOT / "template.yaml")
    parser.add_argument("--retention-days", type=int, default=30, help="JobRetentionDays")
    parser.add_argument("--gemini-cost-per-call", type=float, default=0.039, help="GeminiCostPerCall")
    args = parser.parse_args(argv)
    measured = json.loads(args.measurements.read_text())
    print(report(measured, memory_sizes(args.template), args.retention_days, args.gemini_cost_per_call))
    return 0


if __name__ == "__main__":
    sys.exit(main())
