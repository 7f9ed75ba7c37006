"""Fixtures of the integration tests (handlers in-process against moto)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imgflow_local import atomic_dynamodb, moto_speedups
from integration.helpers import shared_service_models, tap_lifecycle_events
from support import EmulatedAws


@pytest.fixture(autouse=True, scope="session")
def _shared_service_models() -> Iterator[None]:
    with shared_service_models():
        yield


@pytest.fixture(autouse=True, scope="session")
def _atomic_dynamodb() -> None:
    # Some tests run handlers on threads side by side, as Lambda does: moto's own races must not show in
    # JobsTable or its stream (imgflow_local.atomic_dynamodb).
    atomic_dynamodb.install()


@pytest.fixture(autouse=True, scope="session")
def _moto_speedups() -> None:
    # The emulator as the runtime runs it (imgflow_local.moto_speedups): the same answers, for less CPU.
    moto_speedups.install()


@pytest.fixture
def tap(aws: EmulatedAws) -> None:
    """Lifecycle events of the test, readable with `lifecycle_events`."""
    tap_lifecycle_events(aws)
