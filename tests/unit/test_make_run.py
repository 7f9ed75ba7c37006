"""`make run ARGS=...` hands its flags to `imgflow serve`: the way around a busy port that the runtime's
message names (`make run ARGS="--port 3001"`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_given_args_when_make_run_is_planned_then_imgflow_serve_gets_them() -> None:
    # -n: print the commands, run none (no install, no server). Under `make test` this is a sub-make, which
    # would announce the directories it enters unless told not to.
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "ARGS=--port 3001 --aws-port 4567"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("bin/imgflow serve --port 3001 --aws-port 4567"), done.stdout
