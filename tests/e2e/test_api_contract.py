"""The OpenAPI document as a test: Schemathesis generates requests from `/openapi.json` as `imgflow serve`
serves it and sends them with a token. No 5xx, no status code the document does not list, no request the
document allows refused, no response of another type or off its schema. Bounded and seeded, so it is the
same run every time (CONTRACT_EXAMPLES requests per operation)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

if TYPE_CHECKING:
    from schemathesis.generation.case import Case

    from e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e
CONTRACT_EXAMPLES = 8
# An owner of its own: its quotas and webhooks are nobody else's.
FUZZ_OWNER = "contract-fuzz"
# Where any URL the fuzzer makes up points instead: loopback's discard port refuses at once, and nothing
# may leave the machine (a webhook to a generated host would be delivered there).
NOWHERE = "http://127.0.0.1:9/hook"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    positive_data_acceptance,
    content_type_conformance,
    response_schema_conformance,
]


def load_schema(pipeline: Pipeline) -> Any:
    auth = {"Authorization": f"Bearer {pipeline.token(FUZZ_OWNER)}"}
    schema = schemathesis.openapi.from_url(f"{pipeline.api_url}/openapi.json", headers=auth, timeout=30)
    schema.config.update(base_url=pipeline.api_url, headers=auth)
    return schema


def on_loopback(case: Case) -> None:
    """Generated data that cannot be valid from the document alone is replaced by what a client would send."""
    if isinstance(case.body, dict):
        for field in ("url", "notify_url"):
            if isinstance(case.body.get(field), str):
                case.body[field] = NOWHERE
    # A cursor is opaque: a client only ever passes back one the API gave it.
    if case.query:
        case.query.pop("cursor", None)


def fuzz(operation: Any) -> None:
    """CONTRACT_EXAMPLES generated requests of one operation; raises on the first that fails a check."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=CONTRACT_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Case) -> None:
        on_loopback(case)
        case.call_and_validate(checks=CHECKS, timeout=30)

    send()


def test_the_api_answers_as_its_openapi_document_says(pipeline: Pipeline) -> None:
    failures = []
    for loaded in load_schema(pipeline).get_all_operations():
        operation = loaded.ok()
        try:
            fuzz(operation)
        # Every operation is tried and all failures reported together (Schemathesis raises a BaseExceptionGroup).
        except (Exception, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}: {failure}")
    assert not failures, "\n\n".join(failures)
