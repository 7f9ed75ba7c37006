"""Hypothesis settings of the property-based targets: a short seeded replay in `make test`, a long search in
`make fuzz` (IMGFLOW_FUZZ_EXAMPLES=N examples per target, a fresh seed each run).

Both share the example database in `examples/`: what a fuzz run finds is saved there, committed with its
fix, and replayed by every `make test` from then on (read-only there, so a test run never rewrites it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hypothesis import HealthCheck, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase, ReadOnlyDatabase

EXAMPLES = DirectoryBasedExampleDatabase(Path(__file__).parent / "examples")
FUZZ_EXAMPLES = int(os.environ.get("IMGFLOW_FUZZ_EXAMPLES", "0"))
# The replay's generated examples: the same every run, so `make test` is repeatable.
REPLAY_SEED = 20261201
_Test = TypeVar("_Test", bound=Callable[..., None])


def load_profile() -> None:
    # Decoding an image takes milliseconds, more than Hypothesis' deadline and health checks expect.
    common = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("imgflow-replay", common, max_examples=40, database=ReadOnlyDatabase(EXAMPLES))
    settings.register_profile("imgflow-fuzz", common, max_examples=max(FUZZ_EXAMPLES, 1), database=EXAMPLES)
    settings.load_profile("imgflow-fuzz" if FUZZ_EXAMPLES else "imgflow-replay")


def replayable(test: _Test) -> _Test:
    """Seeded in `make test`; free to search in `make fuzz`."""
    return test if FUZZ_EXAMPLES else seed(REPLAY_SEED)(test)
