"""`imgflow events --follow` against a running runtime: the events of a job uploaded meanwhile, in version
order, from the runtime's own record or, with `--bus`, through a temporary rule and queue on the bus that
are gone once it stops."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from imgflow_local.runtime import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

if TYPE_CHECKING:
    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOPPER = (ROOT / "tests" / "fixtures" / "images" / "bad-inputs" / "hopper.jpg").read_bytes()
DONE = {"Job Accepted", "Variants Ready", "Job Succeeded"}


@contextmanager
def following(command: list[str], env: dict[str, str] | None = None) -> Iterator[queue.Queue[str]]:
    """`command` running, its stdout lines arriving on a queue; stopped with Ctrl-C (SIGINT) at the end."""
    # A runner started in the background (`make test &`) ignores SIGINT, and an ignored signal stays ignored
    # across exec: the command gets Ctrl-C's default disposition back, as a terminal would give it.
    with_ctrl_c = [
        sys.executable,
        "-c",
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])",
    ]
    process = subprocess.Popen(
        [*with_ctrl_c, *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or os.environ.copy(),
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    # It says on stderr once it follows: what happens from then on is printed.
    assert process.stderr is not None
    started = process.stderr.readline()
    assert started.startswith("imgflow events: following"), started
    try:
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("imgflow events did not stop on Ctrl-C")
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""


def events_of(lines: queue.Queue[str], job_id: str, timeout: float = 60) -> list[dict[str, Any]]:
    """The JSON events printed for `job_id` until its Job Succeeded (and the rest that is printed with it)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not {e["detail-type"] for e in seen if e["detail"].get("job_id") == job_id} >= DONE:
        try:
            seen.append(json.loads(lines.get(timeout=max(0.1, deadline - time.monotonic()))))
        except queue.Empty:
            pytest.fail(f"events printed: {[e['detail-type'] for e in seen]}")
    return [event for event in seen if event["detail"].get("job_id") == job_id]


def test_events_follow_prints_the_events_of_a_job_uploaded_meanwhile_in_version_order(
    pipeline: Pipeline, imgflow_cli: list[str]
) -> None:
    with following([*imgflow_cli, "events", "--follow", "--json", "--api", pipeline.api_url]) as lines:
        upload = pipeline.upload("tailed.jpg", HOPPER, "image/jpeg")
        events = events_of(lines, upload.job_id)

    assert {event["detail-type"] for event in events} == DONE
    versions = [event["detail"]["version"] for event in events]
    assert versions == sorted(versions)


def test_events_for_a_job_without_follow_print_its_history_as_lines_and_end(
    pipeline: Pipeline, imgflow_cli: list[str]
) -> None:
    upload = pipeline.upload("history.jpg", HOPPER, "image/jpeg")
    pipeline.wait_for_job(upload.job_id)
    pipeline.wait_for_events(upload.job_id, DONE)

    printed = subprocess.run(
        [*imgflow_cli, "events", "--job", upload.job_id, "--api", pipeline.api_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()

    assert [line.split()[1:3] for line in printed] == [["Job", "Accepted"], ["Variants", "Ready"], ["Job", "Succeeded"]]
    assert all(upload.job_id in line for line in printed)


def test_events_from_a_bus_go_through_a_temporary_rule_and_queue_that_are_removed_on_exit(
    pipeline: Pipeline, imgflow_cli: list[str]
) -> None:
    bus = pipeline.stack.physical_id("EventBus")
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": pipeline.aws_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    events_client = boto3.client(
        "events",
        endpoint_url=pipeline.aws_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        region_name=REGION,
    )

    def tail_queues() -> list[str]:
        urls = pipeline.sqs.list_queues(QueueNamePrefix="imgflow-tail-").get("QueueUrls", [])
        return [str(url) for url in urls]

    def tail_rules() -> list[str]:
        rules = events_client.list_rules(EventBusName=bus, NamePrefix="imgflow-tail-")["Rules"]
        return [str(rule["Name"]) for rule in rules]

    command = [*imgflow_cli, "events", "--bus", bus, "--follow", "--json", "--type", "Job Succeeded"]
    with following(command, env) as lines:
        assert tail_rules()
        upload = pipeline.upload("bus.jpg", HOPPER, "image/jpeg")
        line = lines.get(timeout=60)
        assert len(tail_queues()) == 1

    event = json.loads(line)
    assert (event["detail-type"], event["detail"]["job_id"]) == ("Job Succeeded", upload.job_id)
    assert tail_rules() == []
    assert tail_queues() == []
