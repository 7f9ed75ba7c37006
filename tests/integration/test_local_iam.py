"""IAM in the embedded emulator: each function's credentials do what its template role allows, and get
AWS's AccessDenied for what it does not (one call per service), through the front door as functions and
browsers reach it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.moto_api._internal.models import moto_api_backend

from imgflow_local.front_door import FrontDoorServer, embedded_emulator, make_front_door
from imgflow_local.iam import Enforcement, SessionCredentials, assume_function_roles, function_roles
from imgflow_local.runtime import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from imgflow_local.stack import LocalStack
from support import REGION, ROOT

_CONFIG = Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1})


@dataclass
class EnforcedStack:
    stack: LocalStack
    url: str
    roles: dict[str, SessionCredentials]

    def client(self, function: str | None, service: str, config: Config = _CONFIG) -> Any:
        """A client of `service` as `function`'s role, or as the runtime (None)."""
        credentials = self.roles[function] if function else SessionCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, "")
        # Any service's client: the stubs type each by the literal name.
        make_client: Any = boto3.client
        return make_client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token or None,
            config=config,
        )

    def publisher(self, allowed: bool) -> str:
        """A function whose role may (or may not) put events on the bus."""
        return next(
            function
            for function, role in function_roles(self.stack).items()
            if allowed
            == any(
                "events:PutEvents" in statement.get("Action", [])
                for policy in role.policies.values()
                for statement in policy["Statement"]
            )
        )


@pytest.fixture(scope="module")
def enforced() -> Iterator[EnforcedStack]:
    moto_api_backend.reset()
    secrets = {ACCESS_KEY_ID: SECRET_ACCESS_KEY}
    front_door = FrontDoorServer(make_front_door(embedded_emulator(), secrets, REGION, own_key=ACCESS_KEY_ID))
    front_door.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", front_door.url)
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        session = boto3.session.Session(region_name=REGION)
        stack = LocalStack(ROOT / "template.yaml", REGION)
        stack.create(session)
        roles = assume_function_roles(stack)
        secrets.update({role.access_key_id: role.secret_access_key for role in roles.values()})
        enforcement = Enforcement(session, stack.account_id, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        enforcement.start()
        try:
            yield EnforcedStack(stack, front_door.url, roles)
        finally:
            enforcement.stop()
            front_door.stop()
            moto_api_backend.reset()


def error_code(call: Any) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    code: str = raised.value.response["Error"]["Code"]
    return code


def test_given_a_function_role_then_dynamodb_allows_its_own_table_and_denies_another(enforced: EnforcedStack) -> None:
    dynamodb = enforced.client("ApiFunction", "dynamodb")
    jobs, idempotency = (enforced.stack.physical_id(t) for t in ("JobsTable", "IdempotencyTable"))

    dynamodb.put_item(TableName=jobs, Item={"pk": {"S": "iam-probe"}})
    dynamodb.query(
        TableName=jobs,
        IndexName="owner-index",
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "nobody"}},
    )

    assert error_code(lambda: dynamodb.get_item(TableName=idempotency, Key={"id": {"S": "x"}})) == (
        "AccessDeniedException"
    )


def test_given_a_transaction_then_each_item_needs_its_own_action_on_its_table(enforced: EnforcedStack) -> None:
    dynamodb = enforced.client("IngestFunction", "dynamodb")
    jobs, webhooks = (enforced.stack.physical_id(t) for t in ("JobsTable", "WebhooksTable"))
    put = {"Put": {"TableName": jobs, "Item": {"pk": {"S": f"iam-{uuid.uuid4().hex}"}}}}

    dynamodb.transact_write_items(TransactItems=[put])
    denied = {"Put": {"TableName": webhooks, "Item": {"pk": {"S": "x"}, "sk": {"S": "y"}}}}

    assert error_code(lambda: dynamodb.transact_write_items(TransactItems=[put, denied])) == "AccessDeniedException"


def test_given_a_function_role_then_sqs_allows_its_queue_and_denies_another(enforced: EnforcedStack) -> None:
    sqs = enforced.client("IngestFunction", "sqs")

    sqs.send_message(QueueUrl=enforced.stack.queue_url("VariantsQueue"), MessageBody="{}")
    sqs.send_message_batch(QueueUrl=enforced.stack.queue_url("EditQueue"), Entries=[{"Id": "1", "MessageBody": "{}"}])

    assert (
        error_code(
            lambda: sqs.send_message(QueueUrl=enforced.stack.queue_url("WebhookDeliveryQueue"), MessageBody="{}")
        )
        == "AccessDenied"
    )


def test_given_function_roles_then_only_those_allowed_to_put_events_reach_the_bus(enforced: EnforcedStack) -> None:
    entry = {"Source": "imgflow", "DetailType": "Probe", "Detail": "{}"}
    entry["EventBusName"] = enforced.stack.physical_id("EventBus")

    answer = enforced.client(enforced.publisher(allowed=True), "events").put_events(Entries=[entry])
    denied = enforced.client(enforced.publisher(allowed=False), "events")

    assert answer["FailedEntryCount"] == 0
    assert error_code(lambda: denied.put_events(Entries=[entry])) == "AccessDeniedException"


def test_given_a_function_role_then_s3_allows_its_actions_per_bucket_and_denies_the_rest(
    enforced: EnforcedStack,
) -> None:
    ingest = enforced.client("IngestFunction", "s3")
    uploads, media = (enforced.stack.physical_id(b) for b in ("UploadsBucket", "MediaBucket"))
    admin = enforced.client(None, "s3")
    admin.put_object(Bucket=uploads, Key="uploads/a b+c.jpg", Body=b"x")

    # Ingest copies an accepted upload into the media bucket (GetObject there, PutObject here) ...
    ingest.copy_object(Bucket=media, Key="jobs/a b+c.jpg", CopySource={"Bucket": uploads, "Key": "uploads/a b+c.jpg"})
    ingest.delete_objects(Bucket=uploads, Delete={"Objects": [{"Key": "uploads/a b+c.jpg"}]})

    # ... but never reads it back, and the variants function may not read the uploads bucket at all.
    assert error_code(lambda: ingest.get_object(Bucket=media, Key="jobs/a b+c.jpg")) == "AccessDenied"
    variants = enforced.client("VariantsFunction", "s3")
    copy = {"Bucket": uploads, "Key": "uploads/a b+c.jpg"}
    assert error_code(lambda: variants.copy_object(Bucket=media, Key="jobs/x.jpg", CopySource=copy)) == "AccessDenied"


def test_given_delete_objects_then_each_key_is_authorized_on_its_own(enforced: EnforcedStack) -> None:
    media = enforced.stack.physical_id("MediaBucket")
    enforced.client(None, "s3").put_object(Bucket=media, Key="jobs/gone.webp", Body=b"x")

    answer = enforced.client("ApiFunction", "s3").delete_objects(
        Bucket=media, Delete={"Objects": [{"Key": "jobs/gone.webp"}]}
    )
    refused = enforced.client("IngestFunction", "s3").delete_objects(
        Bucket=media, Delete={"Objects": [{"Key": "jobs/kept.webp"}]}
    )

    assert [deleted["Key"] for deleted in answer["Deleted"]] == ["jobs/gone.webp"]
    assert [error["Code"] for error in refused["Errors"]] == ["AccessDenied"]


def test_given_presigned_urls_then_they_are_authorized_as_their_signer_and_checked(enforced: EnforcedStack) -> None:
    media = enforced.stack.physical_id("MediaBucket")
    enforced.client(None, "s3").put_object(Bucket=media, Key="jobs/a b+c.webp", Body=b"pixels")
    params = {"Bucket": media, "Key": "jobs/a b+c.webp"}

    def url(function: str, expires: int = 60) -> str:
        signed: str = enforced.client(function, "s3").generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires
        )
        return signed

    assert requests.get(url("ApiFunction"), timeout=10).content == b"pixels"
    # The ingest role may write the media bucket but not read it: neither may its URLs.
    assert requests.get(url("IngestFunction"), timeout=10).status_code == 403
    tampered = url("ApiFunction").replace("X-Amz-Expires=60", "X-Amz-Expires=600")
    assert "SignatureDoesNotMatch" in requests.get(tampered, timeout=10).text
    expired = url("ApiFunction", expires=1)
    time.sleep(2)
    assert "AccessDenied" in requests.get(expired, timeout=10).text
    assert requests.get(f"{enforced.url}/{media}/jobs/a%20b%2Bc.webp", timeout=10).status_code == 403


@pytest.mark.parametrize(("function", "status"), [("ApiFunction", 204), ("VariantsFunction", 403)])
def test_given_a_presigned_post_then_the_upload_is_authorized_as_the_role_that_signed_it(
    enforced: EnforcedStack, function: str, status: int
) -> None:
    uploads = enforced.stack.physical_id("UploadsBucket")
    key = f"uploads/{uuid.uuid4().hex}/original"
    form = enforced.client(function, "s3").generate_presigned_post(
        Bucket=uploads, Key=key, Conditions=[["content-length-range", 1, 1024]], ExpiresIn=60
    )

    answer = requests.post(form["url"], data=form["fields"], files={"file": ("a.jpg", b"\xff\xd8\xff")}, timeout=10)

    assert answer.status_code == status, answer.text
    listed = enforced.client(None, "s3").list_objects_v2(Bucket=uploads, Prefix=key)
    assert listed.get("KeyCount", 0) == (1 if status == 204 else 0)


def test_given_a_key_the_emulator_does_not_know_then_every_call_is_refused(enforced: EnforcedStack) -> None:
    stranger = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=enforced.url,
        aws_access_key_id="AKIAUNKNOWN000000000",
        aws_secret_access_key="x",
        config=_CONFIG,
    )

    assert error_code(lambda: stranger.list_queues()) == "InvalidClientTokenId"


def test_given_a_sigv2_presigned_url_then_it_is_checked_as_well(enforced: EnforcedStack) -> None:
    media = enforced.stack.physical_id("MediaBucket")
    enforced.client(None, "s3").put_object(Bucket=media, Key="jobs/v2 +.webp", Body=b"v2")
    legacy = _CONFIG.merge(Config(signature_version="s3"))

    def url(function: str | None) -> str:
        client = enforced.client(function, "s3", legacy)
        signed: str = client.generate_presigned_url("get_object", Params={"Bucket": media, "Key": "jobs/v2 +.webp"})
        return signed

    assert requests.get(url("ApiFunction"), timeout=10).content == b"v2"
    assert requests.get(url(None), timeout=10).content == b"v2"
    assert requests.get(url("IngestFunction"), timeout=10).status_code == 403
    assert "SignatureDoesNotMatch" in requests.get(url("ApiFunction").replace("Expires=", "Expires=1"), timeout=10).text
