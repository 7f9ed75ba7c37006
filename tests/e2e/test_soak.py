"""`imgflow soak` as users run it: a few uploads through the local runtime with every kind of fault
injected that costs no waiting (a timeout holds a container for the function's whole Timeout), and a
report that says nothing was lost, duplicated or left unannounced."""

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
        "4",
        "--faults",
        "crash_before=0.1,crash_after=0.2,duplicate=0.3,throttle=0.1",
        "--seed",
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
    assert (report["uploads"], report["terminal"], report["lost"]) == (4, 4, 0)
    assert (report["duplicated_outputs"], report["events_missing"]) == (0, 0)
    assert sum(report["by_status"].values()) == 4
    assert "IngestDeadLetterQueue" in report["dlq"]
    assert report["faults_injected"], "faults were injected"
