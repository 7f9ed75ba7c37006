"""Verify S3 browser-based (presigned POST) uploads the way S3 does.

moto's server stores any POST upload it is given, so the local runtime checks the form here first:
the signature (SigV4, or legacy SigV2), the policy's expiration and every policy condition, with the
error codes, statuses and messages S3 answers with. Pure: no I/O, the clock is an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"

_STATUS_BY_CODE = {
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "SignatureDoesNotMatch": 403,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "InvalidArgument": 400,
    "InvalidPolicyDocument": 400,
    "AuthorizationQueryParametersError": 400,
    "MalformedPOSTRequest": 400,
    "MaxPostPreDataLengthExceeded": 400,
    "IncorrectNumberOfFilesInPostRequest": 400,
    "MissingContentLength": 411,
    "MethodNotAllowed": 405,
    "PreconditionFailed": 412,
}

# Fields S3 never asks a policy condition for: the proof itself, the content and opted-out fields.
_V4_EXEMPT = frozenset({"x-amz-signature", "file", "policy"})
_V2_EXEMPT = frozenset({"awsaccesskeyid", "signature", "file", "policy"})
_IGNORED_PREFIX = "x-ignore-"


class PostPolicyError(Exception):
    """An upload S3 would refuse; `details` become extra elements of the XML error (as S3 adds them)."""

    def __init__(
        self, code: str, message: str, *, status: int | None = None, details: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else _STATUS_BY_CODE.get(code, 400)
        self.details: dict[str, str] = dict(details or {})


def _policy_violation(detail: str) -> PostPolicyError:
    return PostPolicyError("AccessDenied", f"Invalid according to Policy: {detail}")


def _missing_field(name: str) -> PostPolicyError:
    return PostPolicyError(
        "InvalidArgument",
        f"Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields.",
        details={"ArgumentName": name, "ArgumentValue": ""},
    )


@dataclass(frozen=True)
class _Credential:
    access_key_id: str
    date: str
    region: str
    service: str
    terminator: str


@dataclass(frozen=True)
class VerifiedFields:
    """A form whose fields S3 would accept: what it stores, and the sizes the file may have."""

    fields: dict[str, str]  # lower-case names; the key with `${filename}` substituted
    length_ranges: tuple[tuple[int, int], ...]


def verify_post_policy(
    bucket: str,
    fields: Mapping[str, str],
    file_size: int,
    secrets: Mapping[str, str],
    region: str,
    now: datetime,
    *,
    filename: str | None = None,
) -> None:
    """Raise PostPolicyError unless S3 would accept this POST upload (fields and file size at once)."""
    verified = verify_post_fields(bucket, fields, secrets, region, now, filename=filename)
    check_file_size(verified, file_size)


def verify_post_fields(
    bucket: str,
    fields: Mapping[str, str],
    secrets: Mapping[str, str],
    region: str,
    now: datetime,
    *,
    filename: str | None = None,
) -> VerifiedFields:
    """Everything S3 checks before the file arrives: signature, expiry and every field condition.

    `fields` are the form fields before the file (names case-insensitive, as S3 treats them),
    `secrets` maps access key ids to secret keys, `filename` is the uploaded file's name, which S3
    substitutes for `${filename}` in the key before matching conditions.
    """
    form = {name.lower(): value for name, value in fields.items()}
    spelled = {name.lower(): name for name in fields}
    if "key" not in form:
        raise _missing_field("key")
    if filename is not None:
        form["key"] = form["key"].replace("${filename}", posixpath.basename(filename.replace("\\", "/")))
    if "x-amz-signature" in form or "x-amz-algorithm" in form:
        _verify_sigv4_signature(form, secrets, region)
        exempt = _V4_EXEMPT
    elif "signature" in form or "awsaccesskeyid" in form:
        _verify_sigv2_signature(form, secrets)
        exempt = _V2_EXEMPT
    elif "policy" in form:
        raise _missing_field("x-amz-signature")
    else:
        # An unsigned POST is an anonymous write: no bucket of ours is publicly writable.
        raise PostPolicyError("AccessDenied", "Access Denied")
    policy = _decode_policy(form["policy"])
    _check_expiration(policy, now)
    covered, ranges = _check_conditions(policy["conditions"], form, bucket)
    _check_all_fields_covered(spelled, covered, exempt)
    return VerifiedFields(form, tuple(ranges))


def check_file_size(verified: VerifiedFields, file_size: int) -> None:
    """Raise EntityTooLarge or EntityTooSmall unless every content-length-range allows `file_size`."""
    for low, high in verified.length_ranges:
        _check_length_range(low, high, file_size)


def max_file_size(verified: VerifiedFields) -> int | None:
    """The largest file the policy allows (None: it sets no bound)."""
    return min((high for _, high in verified.length_ranges), default=None)


def error_xml(error: PostPolicyError, request_id: str) -> bytes:
    """S3's error document for `error`."""
    elements = {"Code": error.code, "Message": error.message, **error.details, "RequestId": request_id}
    body = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{body}</Error>'.encode()


# --- signatures ---------------------------------------------------------------------------------


def _require(form: Mapping[str, str], *names: str) -> None:
    for name in names:
        if name not in form:
            raise _missing_field(name)


def _verify_sigv4_signature(form: Mapping[str, str], secrets: Mapping[str, str], region: str) -> None:
    _require(form, "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature", "policy")
    if form["x-amz-algorithm"] != SIGV4_ALGORITHM:
        raise PostPolicyError(
            "InvalidArgument",
            f"Unsupported value for x-amz-algorithm: {form['x-amz-algorithm']}",
            details={"ArgumentName": "x-amz-algorithm", "ArgumentValue": form["x-amz-algorithm"]},
        )
    credential = _parse_credential(form["x-amz-credential"], region)
    secret = _secret_for(credential.access_key_id, secrets)
    expected = hmac.new(
        _sigv4_signing_key(secret, credential.date, credential.region, credential.service),
        form["policy"].encode(),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected.encode(), form["x-amz-signature"].strip().lower().encode()):
        raise _signature_mismatch(credential.access_key_id)


def _parse_credential(value: str, region: str) -> _Credential:
    parts = value.split("/")
    if len(parts) != 5 or not all(parts):
        raise PostPolicyError(
            "InvalidArgument",
            "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
            details={"ArgumentName": "x-amz-credential", "ArgumentValue": value},
        )
    credential = _Credential(*parts)
    _check_credential_scope(credential, region)
    return credential


def _check_credential_scope(credential: _Credential, region: str) -> None:
    problem = None
    if not (len(credential.date) == 8 and credential.date.isdigit()):
        problem = (
            f"incorrect date format '{credential.date}'. This date in the credential must be in the "
            'format "yyyyMMdd".'
        )
    elif credential.region != region:
        problem = f"the region '{credential.region}' is wrong; expecting '{region}'"
    elif credential.service != "s3":
        problem = f"incorrect service '{credential.service}'. This endpoint belongs to 's3'."
    elif credential.terminator != "aws4_request":
        problem = f"incorrect terminal '{credential.terminator}'. This endpoint uses 'aws4_request'."
    if problem is not None:
        raise PostPolicyError(
            "AuthorizationQueryParametersError",
            f"Error parsing the X-Amz-Credential parameter; {problem}",
            details={"Region": region} if credential.region != region else None,
        )


def _sigv4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _verify_sigv2_signature(form: Mapping[str, str], secrets: Mapping[str, str]) -> None:
    _require(form, "awsaccesskeyid", "signature", "policy")
    secret = _secret_for(form["awsaccesskeyid"], secrets)
    digest = hmac.new(secret.encode(), form["policy"].encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest), form["signature"].strip().encode()):
        raise _signature_mismatch(form["awsaccesskeyid"])


def _secret_for(access_key_id: str, secrets: Mapping[str, str]) -> str:
    secret = secrets.get(access_key_id)
    if secret is None:
        raise PostPolicyError(
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
            details={"AWSAccessKeyId": access_key_id},
        )
    return secret


def _signature_mismatch(access_key_id: str) -> PostPolicyError:
    return PostPolicyError(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
        details={"AWSAccessKeyId": access_key_id},
    )


# --- the policy document ------------------------------------------------------------------------


def _invalid_policy(reason: str) -> PostPolicyError:
    return PostPolicyError("InvalidPolicyDocument", f"Invalid Policy: {reason}")


def _decode_policy(encoded: str) -> dict[str, Any]:
    try:
        # Some encoders wrap base64 lines; the signature covers the field as sent, so this is safe.
        document = json.loads(base64.b64decode("".join(encoded.split()), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise _invalid_policy("Invalid JSON.") from exc
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid JSON.")
    if "expiration" not in document:
        raise _invalid_policy("Policy missing expiration.")
    if not isinstance(document.get("conditions"), list):
        raise _invalid_policy("Policy missing conditions.")
    return document


def _check_expiration(policy: Mapping[str, Any], now: datetime) -> None:
    raw = policy["expiration"]
    try:
        expiration = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        expiration = None
    if expiration is None:
        raise _invalid_policy(f"Invalid 'expiration' value: '{raw}'")
    if _as_utc(expiration) <= _as_utc(now):
        raise _policy_violation("Policy expired.")


def _as_utc(moment: datetime) -> datetime:
    # ISO 8601 in a policy is GMT; a naive clock is taken to be UTC too.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_conditions(
    conditions: list[Any], form: Mapping[str, str], bucket: str
) -> tuple[set[str], list[tuple[int, int]]]:
    """Check every field condition; return the (lower-case) field names they cover and the size ranges."""
    covered: set[str] = set()
    ranges: list[tuple[int, int]] = []
    for condition in conditions:
        if isinstance(condition, dict):
            for name, expected in condition.items():
                covered.add(_check_match("eq", f"${name}", expected, form, bucket))
        elif isinstance(condition, list) and condition and isinstance(condition[0], str):
            operator = condition[0].lower()
            if operator == "content-length-range" and len(condition) == 3:
                ranges.append(_length_range(condition[1], condition[2]))
            elif operator in ("eq", "starts-with") and len(condition) == 3:
                covered.add(_check_match(operator, condition[1], condition[2], form, bucket))
            else:
                raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
        else:
            raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    return covered, ranges


def _check_match(operator: str, reference: Any, expected: Any, form: Mapping[str, str], bucket: str) -> str:
    if not (isinstance(reference, str) and reference.startswith("$") and isinstance(expected, str)):
        raise _invalid_policy(f"Invalid Condition: {json.dumps([operator, reference, expected])}")
    name = reference[1:].lower()
    # The bucket is the one in the URL, whatever a form field says.
    actual = bucket if name == "bucket" else form.get(name, "")
    if not _matches(operator, name, actual, expected):
        raise _policy_violation(f"Policy Condition failed: {json.dumps([operator, reference, expected])}")
    return name


def _matches(operator: str, name: str, actual: str, expected: str) -> bool:
    if operator == "eq":
        return actual == expected
    if name == "content-type" and expected:
        # S3 reads a comma-separated Content-Type as a list: every entry must match the prefix.
        return all(item.strip().startswith(expected) for item in actual.split(","))
    return actual.startswith(expected)


def _length_range(minimum: Any, maximum: Any) -> tuple[int, int]:
    try:
        return int(minimum), int(maximum)
    except (TypeError, ValueError) as exc:
        raise _invalid_policy(
            f"Invalid content-length-range: {json.dumps(['content-length-range', minimum, maximum])}"
        ) from exc


def _check_length_range(low: int, high: int, file_size: int) -> None:
    if file_size > high:
        raise PostPolicyError(
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size",
            details={"ProposedSize": str(file_size), "MaxSizeAllowed": str(high)},
        )
    if file_size < low:
        raise PostPolicyError(
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed size",
            details={"ProposedSize": str(file_size), "MinSizeAllowed": str(low)},
        )


def _check_all_fields_covered(spelled: Mapping[str, str], covered: set[str], exempt: frozenset[str]) -> None:
    """`spelled` maps each lower-case field name to the spelling the form used, for the message."""
    for name, as_sent in spelled.items():
        if name in exempt or name in covered or name.startswith(_IGNORED_PREFIX):
            continue
        raise _policy_violation(f"Extra input fields: {as_sent}")
