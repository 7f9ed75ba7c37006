"""The embedded emulator's request dispatch lists moto's modules once, not on every request."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from moto import backends

from imgflow_local import moto_dispatch


def test_given_installed_when_a_request_is_dispatched_then_the_same_modules_answer_without_listing_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    modules_on_disk = set(backends.list_of_moto_modules())
    moto_dispatch.install()
    moto_dispatch.install()  # twice is once

    def no_listing(path: str | os.PathLike[str]) -> list[str]:
        raise AssertionError(f"listed {Path(path)} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert set(backends.list_of_moto_modules()) == modules_on_disk
    assert {"dynamodb", "s3", "sqs", "events"} <= modules_on_disk
    assert "dynamodb" in backends.list_of_moto_modules()
    assert "not_a_service" not in backends.list_of_moto_modules()
