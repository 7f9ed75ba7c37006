"""`scripts/ensure-chromium.sh` where Chromium is missing and cannot be installed: it must say so and end,
never run the commands its message names (backticks in double quotes once ran `make test` again, forever)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure-chromium.sh"


def test_given_no_chromium_and_no_apt_when_the_script_runs_then_it_explains_and_fails_fast(tmp_path: Path) -> None:
    # A PATH with `id` but no apt-get (the branch a non-root user takes too), and a `make` that leaves a mark.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to("/usr/bin/id")
    ran_make = tmp_path / "make-ran"
    fake_make = bin_dir / "make"
    fake_make.write_text(f"#!/bin/sh\ntouch {ran_make}\n")
    fake_make.chmod(0o755)
    missing = tmp_path / "no-chromium"

    done = subprocess.run(
        ["/bin/bash", str(SCRIPT)],
        env={"PATH": str(bin_dir), "CHROMIUM": str(missing), "HOME": os.environ.get("HOME", "/")},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    assert not ran_make.exists(), "the message ran `make`"
    assert "`make test` needs it" in done.stderr
    assert f"{missing} is missing and cannot be installed here" in done.stderr
