"""`--aws-endpoint`: which emulator each service goes to, as the runtime and its functions' boto3 see it."""

from __future__ import annotations

import pytest

from imgflow_local.endpoints import AwsEndpoints, EndpointError, service_variable
from imgflow_local.stack import LocalStack
from support import ROOT

LOCALSTACK = "http://127.0.0.1:4566"
EMBEDDED = "http://127.0.0.1:5000"


def test_given_no_endpoint_when_applied_then_every_service_is_on_the_embedded_emulator() -> None:
    environ: dict[str, str] = {}
    endpoints = AwsEndpoints.parse([])

    endpoints.apply(environ, EMBEDDED)

    assert endpoints.needs_embedded
    assert environ == {"AWS_ENDPOINT_URL": EMBEDDED}


def test_given_localstack_with_dynamodb_embedded_when_applied_then_only_dynamodb_stays_embedded() -> None:
    environ: dict[str, str] = {}
    endpoints = AwsEndpoints.parse([f"{LOCALSTACK}/", "dynamodb=embedded"])

    endpoints.apply(environ, EMBEDDED)

    assert endpoints.needs_embedded
    assert environ == {"AWS_ENDPOINT_URL": LOCALSTACK, "AWS_ENDPOINT_URL_DYNAMODB": EMBEDDED}


def test_given_every_service_elsewhere_then_no_embedded_emulator_is_needed() -> None:
    endpoints = AwsEndpoints.parse([LOCALSTACK, "s3=http://127.0.0.1:4567"])

    assert not endpoints.needs_embedded
    assert endpoints.urls(None) == (LOCALSTACK, {"s3": "http://127.0.0.1:4567"})


def test_given_endpoint_variables_in_the_shell_when_applied_then_they_are_replaced_not_merged() -> None:
    environ = {
        "AWS_ENDPOINT_URL_S3": "http://elsewhere:9000",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        "HOME": "/root",
    }

    AwsEndpoints.parse(["sqs=embedded", LOCALSTACK]).apply(environ, EMBEDDED)

    assert environ == {"AWS_ENDPOINT_URL": LOCALSTACK, "AWS_ENDPOINT_URL_SQS": EMBEDDED, "HOME": "/root"}


def test_given_client_names_then_the_variables_are_botocores() -> None:
    assert service_variable("events") == "AWS_ENDPOINT_URL_EVENTBRIDGE"
    assert service_variable("s3") == "AWS_ENDPOINT_URL_S3"
    assert service_variable("secretsmanager") == "AWS_ENDPOINT_URL_SECRETS_MANAGER"


@pytest.mark.parametrize("value", ["localhost:4566", "ftp://127.0.0.1", "nosuchservice=http://127.0.0.1:4566"])
def test_given_a_bad_value_when_parsed_then_it_is_refused(value: str) -> None:
    with pytest.raises(EndpointError, match="--aws-endpoint"):
        AwsEndpoints.parse([value])


def test_given_an_account_then_the_stack_names_queues_and_buses_in_it() -> None:
    stack = LocalStack(ROOT / "template.yaml", "us-east-1", stack_name="imgflow-unit", account_id="000000000000")

    assert stack.attribute("IngestQueue", "Arn") == "arn:aws:sqs:us-east-1:000000000000:imgflow-unit-IngestQueue"
    assert "/000000000000/" in stack.queue_url("IngestQueue")
    assert stack.resolver.ref("AWS::AccountId") == "000000000000"
