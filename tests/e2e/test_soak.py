"""`imgflow soak` as users run it: two uploads (a photo and a hostile file) through the local runtime with
the faults that cost little waiting (a timeout holds a container for the function's whole Timeout, and
each crash a retry delay), and a report that says nothing was lost, duplicated or left unannounced. Its
time is two runtime starts and the pipeline; how the report judges what it sees is tested in
tests/unit/test_soak_report.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOAK_SECONDS = 300


def test_given_faults_when_soaking_a_few_uploads_then_the_report_holds_and_its_last_line_is_json(
    imgflow_cli: list[str],
) -> None:
    command = [
        *imgflow_cli,
        "soak",
        "--uploads",
        "2",
        "--retry-delay",
        "1",
        "--faults",
        # Enough chances that some fault is certain to be injected: each message, invocation and AWS call is one.
        "crash_after=0.2,duplicate=0.5,throttle=0.05",
        "--seed",
        "1",  # draws a photo and a corrupt PNG
        "--poison",
        "1",
        "--json",
    ]

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=SOAK_SECONDS, check=False)

    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, report["problems"] or done.stderr[-3000:]
    assert {
        "uploads",
        "terminal",
        "lost",
        "duplicated_outputs",
        "by_status",
        "dlq",
        "events_missing",
        "seconds",
    } <= set(report)
    assert (report["uploads"], report["terminal"], report["lost"]) == (2, 2, 0)
    assert (report["duplicated_outputs"], report["events_missing"]) == (0, 0)
    assert report["by_status"] == {"rejected": 1, "succeeded": 1}
    # The poisoned message, and nothing else, ended in a dead-letter queue.
    assert (report["poisoned"], report["poison_missing"], report["dead_letters_unexpected"]) == (1, 0, 0)
    assert report["dlq"]["IngestDeadLetterQueue"] >= 1
    assert report["faults_injected"], "faults were injected"
