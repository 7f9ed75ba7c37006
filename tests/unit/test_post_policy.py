"""The POST policy check against policies that boto3 itself signs (no network: presigning is local)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from imgflow_local.post_policy import PostPolicyError, error_xml, verify_post_policy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "uploads-bucket"
KEY = "uploads/job-1/original"
REGION = "us-east-1"
SECRETS = {"testing": "testing"}
IMAGE_CONDITIONS: list[Any] = [{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 1000]]

Presign = Callable[..., dict[str, str]]


def _client(signature_version: str = "s3v4") -> S3Client:
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url="http://127.0.0.1:1",
        config=Config(signature_version=signature_version, s3={"addressing_style": "path"}),
    )


@pytest.fixture
def presign() -> Presign:
    """Presigned POST fields, as the API hands them to a browser."""
    client = _client()

    def _presign(
        key: str = KEY,
        fields: dict[str, str] | None = None,
        conditions: list[Any] | None = None,
        expires_in: int = 600,
    ) -> dict[str, str]:
        post = client.generate_presigned_post(
            Bucket=BUCKET,
            Key=key,
            Fields={"Content-Type": "image/jpeg"} if fields is None else fields,
            Conditions=IMAGE_CONDITIONS if conditions is None else conditions,
            ExpiresIn=expires_in,
        )
        return dict(post["fields"])

    return _presign


def _verify(fields: dict[str, str], size: int = 500, *, bucket: str = BUCKET, **kwargs: Any) -> None:
    now = kwargs.pop("now", datetime.now(UTC))
    verify_post_policy(bucket, fields, size, SECRETS, REGION, now, **kwargs)


def _refusal(fields: dict[str, str], size: int = 500, **kwargs: Any) -> PostPolicyError:
    with pytest.raises(PostPolicyError) as caught:
        _verify(fields, size, **kwargs)
    return caught.value


def _sign_v4(fields: dict[str, str], policy: str) -> dict[str, str]:
    """Re-sign `fields` around a hand-written policy, the way S3 documents SigV4 POST signing."""
    _akid, date, region, service, _ = fields["x-amz-credential"].split("/")
    key = b"AWS4testing"
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()
    return {**fields, "policy": policy, "x-amz-signature": signature}


def _encode(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def test_given_a_boto3_presigned_post_when_the_form_is_sent_as_is_then_it_is_accepted(
    presign: Presign,
) -> None:
    _verify(presign())


def test_given_a_size_limit_when_the_file_is_larger_then_entity_too_large(presign: Presign) -> None:
    error = _refusal(presign(), size=1001)

    assert (error.status, error.code) == (400, "EntityTooLarge")
    assert error.details == {"ProposedSize": "1001", "MaxSizeAllowed": "1000"}


def test_given_a_minimum_size_when_the_file_is_empty_then_entity_too_small(presign: Presign) -> None:
    error = _refusal(presign(), size=0)

    assert (error.status, error.code) == (400, "EntityTooSmall")


def test_given_the_size_limits_when_the_file_is_at_either_bound_then_it_is_accepted(
    presign: Presign,
) -> None:
    _verify(presign(), size=1)
    _verify(presign(), size=1000)


def test_given_a_pinned_content_type_when_another_is_sent_then_access_denied(presign: Presign) -> None:
    fields = {**presign(), "Content-Type": "image/png"}

    error = _refusal(fields)

    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.message == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/jpeg"]'
    )


def test_given_a_pinned_key_when_another_key_is_sent_then_access_denied(presign: Presign) -> None:
    error = _refusal({**presign(), "key": "uploads/someone-else/original"})

    assert (error.status, error.code) == (403, "AccessDenied")
    assert '"$key"' in error.message


def test_given_a_signed_policy_when_the_policy_is_tampered_with_then_signature_does_not_match(
    presign: Presign,
) -> None:
    fields = presign()
    document = json.loads(base64.b64decode(fields["policy"]))
    document["conditions"][1] = ["content-length-range", 1, 10**9]

    error = _refusal({**fields, "policy": _encode(document)}, size=5000)

    assert (error.status, error.code) == (403, "SignatureDoesNotMatch")


def test_given_a_signature_when_it_is_altered_then_signature_does_not_match(presign: Presign) -> None:
    fields = presign()
    altered = ("0" if fields["x-amz-signature"][0] != "0" else "1") + fields["x-amz-signature"][1:]

    error = _refusal({**fields, "x-amz-signature": altered})

    assert error.code == "SignatureDoesNotMatch"


def test_given_an_unknown_access_key_when_verifying_then_invalid_access_key_id(presign: Presign) -> None:
    fields = presign()

    with pytest.raises(PostPolicyError) as caught:
        verify_post_policy(BUCKET, fields, 500, {"someone-else": "secret"}, REGION, datetime.now(UTC))

    assert (caught.value.status, caught.value.code) == (403, "InvalidAccessKeyId")


def test_given_an_expiry_when_the_clock_passes_it_then_policy_expired(presign: Presign) -> None:
    fields = presign(expires_in=60)

    error = _refusal(fields, now=datetime.now(UTC) + timedelta(minutes=2))

    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.message == "Invalid according to Policy: Policy expired."


def test_given_an_expiry_when_a_naive_utc_clock_is_before_it_then_it_is_accepted(presign: Presign) -> None:
    _verify(presign(expires_in=60), now=datetime.now(UTC).replace(tzinfo=None))


def test_given_a_policy_when_an_uncovered_field_is_added_then_extra_input_fields(presign: Presign) -> None:
    error = _refusal({**presign(), "x-amz-meta-owner": "mallory"})

    assert (error.status, error.code) == (403, "AccessDenied")
    assert error.message == "Invalid according to Policy: Extra input fields: x-amz-meta-owner"


def test_given_a_policy_when_an_x_ignore_field_is_added_then_it_is_accepted(presign: Presign) -> None:
    _verify({**presign(), "x-ignore-flash-filename": "cat.jpg", "X-Ignore-Other": "1"})


def test_given_a_policy_for_one_bucket_when_posted_to_another_then_access_denied(presign: Presign) -> None:
    error = _refusal(presign(), bucket="another-bucket")

    assert (error.status, error.code) == (403, "AccessDenied")
    assert '"$bucket"' in error.message


def test_given_form_field_names_in_another_case_when_verifying_then_they_match_case_insensitively(
    presign: Presign,
) -> None:
    fields = presign()
    fields["content-type"] = fields.pop("Content-Type")
    fields["X-Amz-Signature"] = fields.pop("x-amz-signature")

    _verify(fields)


def test_given_a_starts_with_key_when_the_key_is_under_the_prefix_then_it_is_accepted(
    presign: Presign,
) -> None:
    fields = presign(conditions=[*IMAGE_CONDITIONS, ["starts-with", "$key", "uploads/"]])

    _verify(fields)


def test_given_a_filename_key_when_the_file_name_is_given_then_it_is_substituted_and_checked(
    presign: Presign,
) -> None:
    fields = presign(key="uploads/job-1/${filename}")

    _verify(fields, filename="cat.jpg")
    _verify(fields, filename="C:\\Users\\me\\cat.jpg")


def test_given_a_starts_with_key_when_the_key_is_outside_the_prefix_then_access_denied(
    presign: Presign,
) -> None:
    fields = presign(key="uploads/job-1/${filename}")

    error = _refusal({**fields, "key": "other/${filename}"}, filename="cat.jpg")

    assert error.message == (
        'Invalid according to Policy: Policy Condition failed: ["starts-with", "$key", "uploads/job-1/"]'
    )


def test_given_a_starts_with_content_type_when_every_listed_type_matches_then_it_is_accepted(
    presign: Presign,
) -> None:
    fields = presign(
        fields={"Content-Type": "image/png,image/gif"},
        conditions=[["starts-with", "$Content-Type", "image/"]],
    )

    _verify(fields)
    assert _refusal({**fields, "Content-Type": "image/png,text/html"}).code == "AccessDenied"


def test_given_an_empty_starts_with_prefix_when_any_value_is_sent_then_it_is_accepted(
    presign: Presign,
) -> None:
    fields = presign(
        fields={"Content-Type": "image/jpeg", "x-amz-meta-note": "anything"},
        conditions=[*IMAGE_CONDITIONS, ["starts-with", "$x-amz-meta-note", ""]],
    )

    _verify(fields)


def test_given_an_eq_condition_when_the_field_is_missing_then_access_denied(presign: Presign) -> None:
    fields = presign(conditions=[*IMAGE_CONDITIONS, ["eq", "$success_action_status", "201"]])

    assert _refusal(fields).code == "AccessDenied"


def test_given_a_credential_for_another_region_when_verifying_then_it_is_refused(presign: Presign) -> None:
    with pytest.raises(PostPolicyError) as caught:
        verify_post_policy(BUCKET, presign(), 500, SECRETS, "eu-west-1", datetime.now(UTC))

    assert caught.value.status == 400
    assert "the region 'us-east-1' is wrong; expecting 'eu-west-1'" in caught.value.message


@pytest.mark.parametrize("missing", ["key", "policy", "x-amz-credential", "x-amz-date", "x-amz-algorithm"])
def test_given_a_form_without_a_required_field_when_verifying_then_invalid_argument(
    presign: Presign, missing: str
) -> None:
    fields = presign()
    del fields[missing]

    error = _refusal(fields)

    assert (error.status, error.code) == (400, "InvalidArgument")
    assert f"field named '{missing}'" in error.message


def test_given_an_unsigned_form_when_verifying_then_access_denied() -> None:
    error = _refusal({"key": KEY, "Content-Type": "image/jpeg"})

    assert (error.status, error.code) == (403, "AccessDenied")


def test_given_another_algorithm_when_verifying_then_invalid_argument(presign: Presign) -> None:
    error = _refusal({**presign(), "x-amz-algorithm": "AWS4-HMAC-SHA1"})

    assert (error.status, error.code) == (400, "InvalidArgument")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"conditions": []}, "Policy missing expiration."),
        ({"expiration": "2999-01-01T00:00:00Z"}, "Policy missing conditions."),
        ({"expiration": "tomorrow", "conditions": []}, "Invalid 'expiration' value"),
        (
            {"expiration": "2999-01-01T00:00:00Z", "conditions": [["ends-with", "$key", "x"]]},
            "Invalid Condition",
        ),
    ],
)
def test_given_a_signed_but_invalid_policy_when_verifying_then_invalid_policy_document(
    presign: Presign, document: dict[str, Any], reason: str
) -> None:
    fields = _sign_v4(presign(), _encode(document))

    error = _refusal(fields)

    assert (error.status, error.code) == (400, "InvalidPolicyDocument")
    assert reason in error.message


def test_given_a_signed_policy_that_is_not_json_when_verifying_then_invalid_policy_document(
    presign: Presign,
) -> None:
    fields = _sign_v4(presign(), base64.b64encode(b"not json").decode())

    assert _refusal(fields).code == "InvalidPolicyDocument"


def test_given_a_legacy_sigv2_presigned_post_when_verifying_then_it_is_checked_too() -> None:
    post = _client("s3").generate_presigned_post(
        Bucket=BUCKET, Key=KEY, Fields={"Content-Type": "image/jpeg"}, Conditions=IMAGE_CONDITIONS
    )
    fields = dict(post["fields"])

    _verify(fields)
    assert _refusal({**fields, "signature": base64.b64encode(b"x" * 20).decode()}).code == ("SignatureDoesNotMatch")
    assert _refusal(fields, size=1001).code == "EntityTooLarge"


def test_given_an_error_when_rendered_then_it_is_s3_xml_with_details_escaped() -> None:
    error = PostPolicyError("AccessDenied", 'Policy Condition failed: ["eq", "$key", "<a&b>"]')

    body = error_xml(error, "REQ123").decode()

    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>')
    assert '<Message>Policy Condition failed: ["eq", "$key", "&lt;a&amp;b&gt;"]</Message>' in body
    assert body.endswith("<RequestId>REQ123</RequestId></Error>")
    assert error.status == 403
