"""Each function's role, read from template.yaml as `sam deploy` expands it (SAM policy templates, the
managed policies event sources add), with the local resources' names: what the emulator enforces."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from imgflow_local.iam import FunctionRole, IamError, function_roles, refused_deliveries
from imgflow_local.stack import LocalStack
from imgflow_local.template import load_template
from support import REGION, ROOT


@pytest.fixture(scope="module")
def stack() -> LocalStack:
    return LocalStack(ROOT / "template.yaml", REGION)


@pytest.fixture(scope="module")
def roles(stack: LocalStack) -> dict[str, FunctionRole]:
    return function_roles(stack)


def allows(role: FunctionRole, action: str, resource: str) -> bool:
    def matches(patterns: str | list[str], value: str) -> bool:
        return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))

    return any(
        statement["Effect"] == "Allow"
        and matches(statement["Action"], action)
        and matches(statement["Resource"], resource)
        for policy in role.policies.values()
        for statement in policy["Statement"]
    )


def test_given_the_template_then_every_function_has_a_role(stack: LocalStack, roles: dict[str, FunctionRole]) -> None:
    assert set(roles) == {spec.logical_id for spec in stack.functions()}
    assert all(
        role.trust_policy["Statement"][0]["Principal"]["Service"] == ["lambda.amazonaws.com"] for role in roles.values()
    )


def test_given_a_sam_policy_template_then_it_is_expanded_onto_the_local_resources(
    stack: LocalStack, roles: dict[str, FunctionRole]
) -> None:
    jobs_table = stack.attribute("JobsTable", "Arn")
    media = stack.attribute("MediaBucket", "Arn")

    assert allows(roles["ApiFunction"], "dynamodb:UpdateItem", jobs_table)
    assert allows(roles["ApiFunction"], "dynamodb:Query", f"{jobs_table}/index/owner-index")
    assert allows(roles["VariantsFunction"], "s3:PutObject", f"{media}/jobs/a/b/variants/thumb.webp")
    assert not allows(roles["VariantsFunction"], "s3:GetObject", f"{stack.attribute('UploadsBucket', 'Arn')}/uploads/x")
    assert not allows(roles["ApiFunction"], "dynamodb:GetItem", stack.attribute("IdempotencyTable", "Arn"))


def test_given_an_sqs_event_source_then_the_role_has_the_managed_policy_sam_adds(
    roles: dict[str, FunctionRole],
) -> None:
    assert "AWSLambdaSQSQueueExecutionRole" in roles["IngestFunction"].policies
    assert "AWSLambdaSQSQueueExecutionRole" not in roles["ApiFunction"].policies
    assert "AWSLambdaBasicExecutionRole" in roles["ApiFunction"].policies


def test_given_a_conditional_policy_then_it_is_granted_only_when_its_condition_holds(
    roles: dict[str, FunctionRole],
) -> None:
    with_secret = function_roles(
        LocalStack(ROOT / "template.yaml", REGION, parameter_overrides={"GeminiApiKeysSecret": "keys"})
    )
    secret = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:keys-AbCdEf"

    assert not allows(roles["EditFunction"], "secretsmanager:GetSecretValue", secret)
    assert allows(with_secret["EditFunction"], "secretsmanager:GetSecretValue", secret)


def write_template(tmp_path: Path, change: Any) -> LocalStack:
    template = load_template(ROOT / "template.yaml")
    change(template["Resources"])
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return LocalStack(path, REGION)


def test_given_a_statement_with_a_condition_then_it_is_not_granted(tmp_path: Path) -> None:
    statement = {
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
    }
    stack = write_template(
        tmp_path,
        lambda resources: resources["ApiFunction"]["Properties"]["Policies"].append({"Statement": [statement]}),
    )

    assert not allows(function_roles(stack)["ApiFunction"], "sqs:SendMessage", stack.attribute("IngestQueue", "Arn"))


def test_given_a_role_the_template_does_not_declare_then_the_runtime_refuses_to_guess(tmp_path: Path) -> None:
    def own_role(resources: dict[str, Any]) -> None:
        properties = resources["ApiFunction"]["Properties"]
        del properties["Policies"]
        properties["Role"] = "arn:aws:iam::123456789012:role/somebody-elses"

    with pytest.raises(IamError, match="ApiFunction"):
        function_roles(write_template(tmp_path, own_role))


# --- what queues let S3 and EventBridge deliver ---------------------------------------------------------


def test_given_the_template_then_its_queue_policies_let_every_notification_and_rule_deliver(stack: LocalStack) -> None:
    assert refused_deliveries(stack) == []


def test_given_the_ingest_queue_without_its_policy_then_the_upload_notifications_are_refused(tmp_path: Path) -> None:
    stack = write_template(tmp_path, lambda resources: resources.pop("IngestQueuePolicy"))

    [refused] = refused_deliveries(stack)
    assert refused.startswith("UploadsBucket's notifications to arn:aws:sqs:")
    assert "s3.amazonaws.com" in refused


def test_given_a_queue_policy_for_another_rule_then_the_rule_events_are_refused(tmp_path: Path) -> None:
    def other_rule(resources: dict[str, Any]) -> None:
        [statement] = resources["WebhookEventQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        statement["Condition"] = {"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/other"}}

    [refused] = refused_deliveries(write_template(tmp_path, other_rule))
    assert refused.startswith("WebhookEventRule's events to arn:aws:sqs:")
