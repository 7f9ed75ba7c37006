"""Every AWS call a function's code can make is allowed by the policies template.yaml gives the function.

On AWS a missing permission is an AccessDenied at the first call (a 500, or a task retried until it
fails); locally nothing checks IAM at all, so only this test sees it. The calls are found by reading the
code (`aws_calls`), the permissions by expanding the SAM policy templates the template uses. Actions are
checked, not resources: which bucket or table a call names is known only when it runs.
"""

from __future__ import annotations

import copy
import fnmatch
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from aws_calls import AnalysisError, AwsCall, aws_calls
from imgflow_local.template import load_template
from support import ROOT

# The actions each SAM policy template grants, from aws-sam-translator's
# samtranslator/policy_templates_data/policy_templates.json. Only the templates template.yaml uses are
# here: one it starts to use fails the test until its actions are added.
SAM_POLICY_TEMPLATES: dict[str, frozenset[str]] = {
    "DynamoDBCrudPolicy": frozenset(
        f"dynamodb:{action}"
        for action in (
            "GetItem",
            "DeleteItem",
            "PutItem",
            "Scan",
            "Query",
            "UpdateItem",
            "BatchWriteItem",
            "BatchGetItem",
            "DescribeTable",
            "ConditionCheckItem",
        )
    ),
    "S3ReadPolicy": frozenset(
        f"s3:{action}"
        for action in ("GetObject", "ListBucket", "GetBucketLocation", "GetObjectVersion", "GetLifecycleConfiguration")
    ),
    "S3WritePolicy": frozenset({"s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"}),
    "S3CrudPolicy": frozenset(
        f"s3:{action}"
        for action in (
            "GetObject",
            "ListBucket",
            "GetBucketLocation",
            "GetObjectVersion",
            "PutObject",
            "PutObjectAcl",
            "GetLifecycleConfiguration",
            "PutLifecycleConfiguration",
            "DeleteObject",
        )
    ),
    "SQSSendMessagePolicy": frozenset({"sqs:SendMessage*"}),
    "SQSPollerPolicy": frozenset(
        f"sqs:{action}"
        for action in (
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
            "DeleteMessage",
            "DeleteMessageBatch",
            "GetQueueAttributes",
            "ReceiveMessage",
        )
    ),
    "EventBridgePutEventsPolicy": frozenset({"events:PutEvents"}),
    "AWSSecretsManagerGetSecretValuePolicy": frozenset({"secretsmanager:GetSecretValue"}),
}
# Operations whose IAM actions are not the one named after them.
IAM_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("s3", "HeadObject"): ("s3:GetObject",),
    ("s3", "ListObjects"): ("s3:ListBucket",),
    ("s3", "ListObjectsV2"): ("s3:ListBucket",),
    ("s3", "HeadBucket"): ("s3:ListBucket",),
    ("s3", "CopyObject"): ("s3:GetObject", "s3:PutObject"),
    ("s3", "DeleteObjects"): ("s3:DeleteObject",),
    ("sqs", "SendMessageBatch"): ("sqs:SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("sqs:DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("sqs:ChangeMessageVisibility",),
    # A transaction needs the action of each item in it; which ones is known only when it runs.
    ("dynamodb", "TransactWriteItems"): tuple(
        f"dynamodb:{action}" for action in ("PutItem", "UpdateItem", "DeleteItem", "ConditionCheckItem")
    ),
    ("dynamodb", "TransactGetItems"): ("dynamodb:GetItem",),
}
NO_VALUE = {"Ref": "AWS::NoValue"}


class UnknownPolicyError(Exception):
    pass


def allowed_actions(policies: list[Any]) -> set[str]:
    """The IAM actions (patterns, as IAM writes them) a function's `Policies` allow."""
    actions: set[str] = set()
    for policy in policies:
        if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
            # Either branch may hold: the code makes the call a conditional policy allows only under the same
            # setting (a secret's name given), which cannot be evaluated here.
            _, when_true, when_false = policy["Fn::If"]
            actions |= allowed_actions([branch for branch in (when_true, when_false) if branch != NO_VALUE])
        elif isinstance(policy, dict) and "Statement" in policy:
            for statement in policy["Statement"]:
                if statement.get("Effect") == "Allow":
                    action = statement["Action"]
                    actions.update([action] if isinstance(action, str) else action)
        elif isinstance(policy, dict) and len(policy) == 1 and next(iter(policy)) in SAM_POLICY_TEMPLATES:
            actions |= SAM_POLICY_TEMPLATES[next(iter(policy))]
        else:
            raise UnknownPolicyError(f"{policy!r}: add what it allows to SAM_POLICY_TEMPLATES")
    return actions


@cache
def signing_name(service: str) -> str:
    """The service's prefix in IAM actions (each lookup reads the service's model from disk)."""
    name: str = botocore.session.get_session().get_service_model(service).signing_name
    return name


def iam_actions(call: AwsCall) -> tuple[str, ...]:
    return IAM_ACTIONS.get((call.service, call.operation), (f"{signing_name(call.service)}:{call.operation}",))


def is_allowed(action: str, allowed: set[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in allowed)


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@cache
def function_calls(code_uri: str, handler: str) -> frozenset[AwsCall]:
    """The analysis of one function's code, done once: two tests of every function read it."""
    return frozenset(aws_calls(ROOT / code_uri, handler))


def disallowed_calls(function: dict[str, Any]) -> list[str]:
    """The calls the function's code can make that its policies do not allow, as `action (where)`."""
    allowed = allowed_actions(function.get("Policies", []))
    calls = function_calls(function["CodeUri"], function["Handler"])
    return sorted(
        f"{action} ({call.where})" for call in calls for action in iam_actions(call) if not is_allowed(action, allowed)
    )


TEMPLATE = load_template(ROOT / "template.yaml")


@pytest.mark.parametrize("name", sorted(functions(TEMPLATE)))
def test_given_a_function_in_the_template_then_its_policies_allow_every_aws_call_its_code_can_make(name: str) -> None:
    assert disallowed_calls(functions(TEMPLATE)[name]) == []


def test_given_the_publisher_without_put_events_then_the_check_names_the_call_that_would_be_denied() -> None:
    publisher = copy.deepcopy(functions(TEMPLATE)["PublisherFunction"])
    publisher["Policies"] = [policy for policy in publisher["Policies"] if "EventBridgePutEventsPolicy" not in policy]

    [denied] = disallowed_calls(publisher)
    assert denied.startswith("events:PutEvents (imgflow/lifecycle.py:")


@pytest.mark.parametrize("name", sorted(set(functions(TEMPLATE)) - {"PublisherFunction"}))
def test_given_a_function_other_than_the_publisher_then_it_may_not_publish(name: str) -> None:
    # Lifecycle events come from JobsTable's stream alone (imgflow.outbox); the test below checks the code.
    assert not is_allowed("events:PutEvents", allowed_actions(functions(TEMPLATE)[name].get("Policies", [])))


# What each function's job needs at least: an analysis that found nothing would pass the test above.
_JOB_CALLS = {"dynamodb:GetItem", "dynamodb:UpdateItem"}
NEEDED_CALLS: dict[str, set[str]] = {
    "PublisherFunction": {"events:PutEvents"},
    # The webhook functions read endpoints and record deliveries; they publish nothing.
    "WebhookFanOutFunction": {"dynamodb:Query", "dynamodb:PutItem", "sqs:SendMessage"},
    "WebhookDeliveryFunction": {"dynamodb:GetItem", "dynamodb:UpdateItem", "sqs:ChangeMessageVisibility"},
}


@pytest.mark.parametrize("name", sorted(functions(TEMPLATE)))
def test_given_a_function_then_the_analysis_finds_the_calls_its_job_needs(name: str) -> None:
    function = functions(TEMPLATE)[name]
    actions = {
        action for call in function_calls(function["CodeUri"], function["Handler"]) for action in iam_actions(call)
    }

    assert NEEDED_CALLS.get(name, _JOB_CALLS) <= actions
    # Only the publisher publishes: a service that did would announce twice, or once without the write.
    assert ("events:PutEvents" in actions) is (name == "PublisherFunction")


def test_given_a_policy_template_the_table_does_not_know_then_the_check_fails_rather_than_passes() -> None:
    with pytest.raises(UnknownPolicyError, match="S3FullAccessPolicy"):
        allowed_actions([{"S3FullAccessPolicy": {"BucketName": {"Ref": "MediaBucket"}}}])


def test_given_a_managed_policy_by_name_then_the_check_fails_rather_than_passes() -> None:
    with pytest.raises(UnknownPolicyError, match="AmazonS3FullAccess"):
        allowed_actions(["AmazonS3FullAccess"])


def test_given_a_conditional_policy_and_an_inline_statement_then_both_are_expanded() -> None:
    policies = [
        {"Fn::If": ["HasSecret", {"EventBridgePutEventsPolicy": {"EventBusName": "bus"}}, NO_VALUE]},
        {"Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage*", "Resource": "*"}]},
    ]

    allowed = allowed_actions(policies)

    assert is_allowed("events:PutEvents", allowed)
    assert is_allowed("sqs:SendMessageBatch", allowed)
    assert not is_allowed("sqs:ReceiveMessage", allowed)


# --- the analysis itself, on handlers written for the test ------------------------------------------------


def handler_folder(tmp_path: Path, source: str) -> Path:
    (tmp_path / "probe_handler.py").write_text(textwrap.dedent(source))
    return tmp_path


def test_given_a_call_reached_only_through_an_import_inside_a_function_then_it_is_found(tmp_path: Path) -> None:
    folder = handler_folder(
        tmp_path,
        """
        def lambda_handler(event, context):
            from imgflow.services import publisher

            publisher().publish(event)
        """,
    )

    assert {(call.service, call.operation) for call in aws_calls(folder, "probe_handler.lambda_handler")} == {
        ("events", "PutEvents")
    }


def test_given_code_that_is_imported_but_never_reached_then_its_calls_are_not_counted(tmp_path: Path) -> None:
    folder = handler_folder(
        tmp_path,
        """
        from imgflow import services

        def lambda_handler(event, context):
            return services.get_settings().jobs_table
        """,
    )

    assert aws_calls(folder, "probe_handler.lambda_handler") == set()


@pytest.mark.parametrize(
    ("use", "expected"),
    [
        pytest.param('event["image"].copy()', set(), id="another-copy-with-other-arguments"),
        pytest.param('store.copy("a", target="b")', {("s3", "CopyObject")}, id="a-call-that-fits"),
        pytest.param("store.copy", {("s3", "CopyObject")}, id="the-method-handed-on"),
    ],
)
def test_given_a_method_name_then_a_use_reaches_it_when_its_arguments_could_be_for_it(
    tmp_path: Path, use: str, expected: set[tuple[str, str]]
) -> None:
    folder = handler_folder(
        tmp_path,
        f"""
        import boto3

        class Store:
            def __init__(self):
                self.s3 = boto3.client("s3")

            def copy(self, source, target, *, version=None):
                self.s3.copy_object(CopySource=source, Bucket="media", Key=target)

        def lambda_handler(event, context):
            store = Store()
            return {use}
        """,
    )

    assert {(call.service, call.operation) for call in aws_calls(folder, "probe_handler.lambda_handler")} == expected


def test_given_a_presigned_url_then_the_operation_it_signs_is_the_call(tmp_path: Path) -> None:
    folder = handler_folder(
        tmp_path,
        """
        import boto3

        def lambda_handler(event, context):
            s3 = boto3.client("s3")
            return s3.generate_presigned_url("delete_object", Params=event), s3.generate_presigned_post("b", "k")
        """,
    )

    calls = {(call.service, call.operation) for call in aws_calls(folder, "probe_handler.lambda_handler")}

    assert calls == {("s3", "DeleteObject"), ("s3", "PutObject")}


def test_given_a_library_name_that_may_call_aws_and_is_not_in_the_table_then_the_analysis_fails(
    tmp_path: Path,
) -> None:
    folder = handler_folder(
        tmp_path,
        """
        from aws_lambda_powertools.utilities import parameters

        def lambda_handler(event, context):
            return parameters.get_parameter("/imgflow/key")
        """,
    )

    with pytest.raises(AnalysisError, match=r"parameters\.get_parameter"):
        aws_calls(folder, "probe_handler.lambda_handler")
