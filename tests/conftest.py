"""Fixtures shared by every test: a Lambda context and the emulated AWS account with the template's
resources (helpers they use live in `support`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from imgflow import services
from imgflow.observability import metrics
from imgflow_local.stack import LocalStack
from support import REGION, ROOT, EmulatedAws, FakeLambdaContext


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def _reset_handler_caches() -> None:
    services.reset()
    # Powertools never clears metrics while they are disabled; at 100 values it would flush anyway.
    metrics.clear_metrics()
    ingest = sys.modules.get("ingest_handler")
    if ingest is not None:
        ingest._ingest_once.cache_clear()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedAws]:
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with mock_aws():
        stack = LocalStack(ROOT / "template.yaml", REGION, stack_name="imgflow-test")
        stack.create(boto3.session.Session(region_name=REGION))
        env: dict[str, str] = {}
        for function in stack.functions():
            env.update(function.environment)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _reset_handler_caches()
        yield EmulatedAws(stack, env)
        _reset_handler_caches()
