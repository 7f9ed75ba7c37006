"""Each function runs as its own role, and the embedded emulator holds every call to that role's policies.

On AWS a function can do only what its role allows, so a permission missing from template.yaml is an
AccessDenied at its first call. Here the same holds:
- `function_roles` expands the template as `sam deploy` does (aws-sam-translator: SAM policy templates,
  the managed policies its event sources and tracing add) and reads each function's role: its trust
  policy and its inline and managed policies, intrinsics resolved to the local resources' names;
- `assume_function_roles` creates those roles in the emulator and assumes each through STS: a function
  runs with session credentials, as Lambda hands them to it;
- `Enforcement` switches on moto's own IAM check (every request signed by a key the emulator knows, every
  action allowed by the caller's policies) and makes it check what AWS checks where moto checks less:
  - resources: moto asks DynamoDB and EventBridge policies about resource `*`, which no statement scoped
    to a table or a bus matches (every call would be denied); here the table, index or bus of the call;
  - actions: a transaction needs each item's action, an SQS batch its single action (AWS knows no
    `sqs:SendMessageBatch` permission), as AWS authorizes them;
  - S3: a browser POST is checked on the object's key (moto: the bucket), DeleteObjects per key (moto
    refuses them all), CopyObject needs GetObject on its source too; presigned URLs are verified
    (signature, expiry, session token) and authorized as their signer (moto fails on them);
  - errors are what each protocol answers: AccessDeniedException from the JSON services, 403 AccessDenied
    from S3.
  The runtime's own calls (pollers, the front door, tests' clients) sign with its admin key.
- `refused_deliveries` reads the queue policies the emulator ignores: an S3 notification or an EventBridge
  rule target that its queue's policy would refuse on AWS stops the runtime's start.

Statements with a Condition are not granted: moto cannot evaluate conditions (it would turn such an Allow
into a Deny), and granting them unconditionally would be more lenient than AWS.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import boto3

from imgflow_local.stack import LocalStack

# What deploys would upload; the translator only checks the form of these.
_ARTIFACT_URI = "s3://imgflow-local/artifact.zip"
_ARTIFACT_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")
ADMIN_USER = "imgflow-local-admin"
_ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
# Lambda's sessions last the function's lifetime locally: moto does not expire them, and the runtime
# asks for the longest a role allows anyway.
_SESSION_SECONDS = 12 * 3600
# What a cached translation holds (`_translated`); another value is another cache entry.
_CACHE_FORMAT = 2


class IamError(Exception):
    """A function whose role the local runtime cannot reproduce."""


@dataclass(frozen=True)
class FunctionRole:
    function: str
    trust_policy: dict[str, Any]
    # Policy name (the managed policy's name for a managed one) -> its document, intrinsics resolved.
    policies: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class SessionCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The variables Lambda sets for a function's role."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


# --- the roles the template gives its functions --------------------------------------------------


def function_roles(stack: LocalStack) -> dict[str, FunctionRole]:
    """Each function's role as `sam deploy` would create it, for the local stack's resources."""
    translated = _translated(stack)
    resources, managed = translated["Resources"], translated["ManagedPolicies"]
    roles = {}
    for spec in stack.functions():
        role = resources[spec.logical_id]["Properties"].get("Role")
        role_id = _logical_id_of(role)
        if role_id is None or resources.get(role_id, {}).get("Type") != "AWS::IAM::Role":
            raise IamError(
                f"{spec.logical_id}: its Role ({role!r}) is not a role that the template declares; the local "
                "runtime cannot tell what it allows (run with --no-iam)"
            )
        properties = resources[role_id]["Properties"]
        policies = {
            policy["PolicyName"]: _granted(stack.resolver.resolve(policy["PolicyDocument"]))
            for policy in stack.resolver.resolve(properties.get("Policies", []))
        }
        for arn in stack.resolver.resolve(properties.get("ManagedPolicyArns", [])):
            name = arn.rpartition("/")[2]
            policies[name] = _granted(managed[name]["Document"] if name in managed else _managed_policy(name))
        trust = stack.resolver.resolve(properties["AssumeRolePolicyDocument"])
        roles[spec.logical_id] = FunctionRole(spec.logical_id, trust, policies)
    return roles


def _translated(stack: LocalStack) -> dict[str, Any]:
    """The template's functions and their roles as CloudFormation receives them from `sam deploy`.

    Kept in the user's cache, by all they derive from: the template, the parameters that the functions,
    the Globals they inherit, IAM resources, Conditions or Mappings name (not, say, the origins, which the
    runtime gives its own port at every start), the region, and the translator's and moto's versions.
    Importing and running the translator is about half a second of CPU at every start, for the same answer.
    """
    import moto
    import samtranslator

    template = copy.deepcopy(stack.template)
    for resource in [*template["Resources"].values(), template.get("Globals", {}).get("Function", {})]:
        properties = resource.get("Properties", resource)
        for name in _ARTIFACT_PROPERTIES:
            if isinstance(properties.get(name), str):
                properties[name] = _ARTIFACT_URI
    parameters = dict(stack.resolver.parameters)
    role_inputs = json.dumps(
        [
            template.get("Globals", {}).get("Function", {}),
            template.get("Conditions", {}),
            template.get("Mappings", {}),
            {
                name: resource
                for name, resource in template["Resources"].items()
                if resource["Type"] == "AWS::Serverless::Function" or resource["Type"].startswith("AWS::IAM::")
            },
        ],
        sort_keys=True,
        default=str,
    )
    named = {name: value for name, value in parameters.items() if re.search(rf"\b{re.escape(name)}\b", role_inputs)}
    inputs = [_CACHE_FORMAT, template, named, stack.region, samtranslator.__version__, moto.__version__]
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    cached = _cache_folder() / f"sam-roles-{digest[:32]}.json"
    with contextlib.suppress(OSError, ValueError):
        saved: dict[str, Any] = json.loads(cached.read_text())
        return saved
    resources = _translate(template, parameters, stack.region)["Resources"]
    functions = [name for name, resource in resources.items() if resource["Type"] == "AWS::Lambda::Function"]
    roles = [role for role in {_logical_id_of(resources[name]["Properties"].get("Role")) for name in functions} if role]
    managed = {
        arn.rpartition("/")[2]
        for role in roles
        for arn in stack.resolver.resolve(resources[role]["Properties"].get("ManagedPolicyArns", []))
    }
    translated = {
        "Resources": {name: resources[name] for name in [*functions, *roles]},
        # moto's managed policies are one large document (~0.2 s to parse): the roles' few are kept here.
        "ManagedPolicies": {name: _aws_managed_policies()[name] for name in managed if name in _aws_managed_policies()},
    }
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed: runtimes starting side by side never read half a file.
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(translated))
        os.replace(partial, cached)
    return translated


def _translate(template: dict[str, Any], parameters: dict[str, Any], region: str) -> dict[str, Any]:
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    translated: dict[str, Any] = translator.translate(template, parameters, get_managed_policy_map=_managed_policy_arns)
    return translated


def _cache_folder() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imgflow"


def _logical_id_of(role: Any) -> str | None:
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        logical_id, _, _ = (target if isinstance(target, str) else ".".join(target)).partition(".")
        return logical_id
    return None


@cache
def _aws_managed_policies() -> dict[str, Any]:
    # moto ships every AWS managed policy's document; the translator names them by ARN.
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    policies: dict[str, Any] = json.loads(aws_managed_policies_data)
    return policies


def _managed_policy_arns() -> dict[str, str]:
    policies = _aws_managed_policies()
    return {name: f"arn:aws:iam::aws:policy{policy.get('Path', '/')}{name}" for name, policy in policies.items()}


def _managed_policy(name: str) -> dict[str, Any]:
    if name not in _aws_managed_policies():
        raise IamError(f"{name}: not an AWS managed policy the local runtime knows")
    document: dict[str, Any] = _aws_managed_policies()[name]["Document"]
    return document


def _granted(document: dict[str, Any]) -> dict[str, Any]:
    statements = document["Statement"]
    statements = statements if isinstance(statements, list) else [statements]
    granted = [statement for statement in statements if "Condition" not in statement]
    # SAM writes no Version; IAM takes that as the oldest language, which moto refuses (it matters only to
    # policy variables, which no statement here uses).
    return {"Version": "2012-10-17", **document, "Statement": granted}


# --- what queues let services deliver --------------------------------------------------------------

# Condition operators and keys a queue policy's delivery statement is checked on; any other is assumed to hold.
_CONDITION_MATCHERS = {
    "ArnEquals": lambda value, pattern: value == pattern,
    "ArnLike": fnmatch.fnmatchcase,
    "StringEquals": lambda value, pattern: value == pattern,
    "StringLike": fnmatch.fnmatchcase,
}


@dataclass(frozen=True)
class _Delivery:
    what: str
    principal: str  # the service that sends: s3.amazonaws.com, events.amazonaws.com
    source_arn: str
    queue_arn: str


def refused_deliveries(stack: LocalStack) -> list[str]:
    """S3 notifications and EventBridge rule targets that their queue's policy would refuse on AWS.

    The emulator delivers them whatever the queue's policy says; on AWS S3 refuses to save such a
    notification (the stack fails to deploy) and EventBridge fails every delivery.
    """
    statements = [
        (stack.resolver.resolve(queue), statement)
        for policy in stack.of_type("AWS::SQS::QueuePolicy").values()
        for queue in policy["Properties"]["Queues"]
        for statement in _listed(stack.resolver.resolve(policy["Properties"]["PolicyDocument"])["Statement"])
    ]
    return [
        f"{delivery.what} to {delivery.queue_arn}: the queue's policy does not let {delivery.principal} send it"
        for delivery in _deliveries(stack)
        if not any(
            queue_url.rpartition("/")[2] == delivery.queue_arn.rpartition(":")[2]
            and _lets_deliver(statement, delivery, stack.account_id)
            for queue_url, statement in statements
        )
    ]


def _deliveries(stack: LocalStack) -> list[_Delivery]:
    deliveries = []
    for bucket in stack.of_type("AWS::S3::Bucket"):
        configuration = stack.resolver.resolve(stack.properties(bucket).get("NotificationConfiguration", {}))
        for notification in configuration.get("QueueConfigurations", []):
            source = stack.attribute(bucket, "Arn")
            deliveries.append(_Delivery(f"{bucket}'s notifications", "s3.amazonaws.com", source, notification["Queue"]))
    for rule in stack.of_type("AWS::Events::Rule"):
        for target in stack.resolver.resolve(stack.properties(rule).get("Targets", [])):
            if ":sqs:" in target["Arn"]:
                source = stack.attribute(rule, "Arn")
                deliveries.append(_Delivery(f"{rule}'s events", "events.amazonaws.com", source, target["Arn"]))
    return deliveries


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _lets_deliver(statement: Mapping[str, Any], delivery: _Delivery, account_id: str) -> bool:
    principals = statement.get("Principal", {})
    services = _listed(principals.get("Service", [])) if isinstance(principals, dict) else []
    if statement.get("Effect") != "Allow" or (principals != "*" and delivery.principal not in services):
        return False
    actions, resources = _listed(statement.get("Action", [])), _listed(statement.get("Resource", []))
    if not any(fnmatch.fnmatchcase("sqs:sendmessage", a.lower()) for a in actions):
        return False
    if not any(fnmatch.fnmatchcase(delivery.queue_arn, r) for r in resources):
        return False
    context = {"aws:sourcearn": delivery.source_arn, "aws:sourceaccount": account_id}
    for operator, conditions in statement.get("Condition", {}).items():
        matches = _CONDITION_MATCHERS.get(operator)
        if matches is None:
            continue
        for key, expected in conditions.items():
            value = context.get(key.lower())
            if value is not None and not any(matches(value, pattern) for pattern in _listed(expected)):
                return False
    return True


# --- the roles in the emulator -------------------------------------------------------------------


def assume_function_roles(stack: LocalStack) -> dict[str, SessionCredentials]:
    """Create each function's role in the embedded emulator and assume it: the credentials each function
    runs with. Through the emulator's IAM and STS backends in this process, which validate each policy as
    their API does: the API's 65 requests (a role, its policies one by one, the session) cost ~0.7 s of CPU
    at every start."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    iam, sts = iam_backends[stack.account_id]["aws"], sts_backends[stack.account_id]["aws"]
    credentials = {}
    for function, role in function_roles(stack).items():
        # Role names are at most 64 characters; the function's name keeps them apart.
        name = f"{stack.stack_name}-{function}"[-64:]
        created = iam.create_role(
            role_name=name,
            assume_role_policy_document=json.dumps(role.trust_policy),
            path="/",
            permissions_boundary=None,
            description="",
            tags=[],
            max_session_duration=str(_SESSION_SECONDS),
        )
        for policy_name, document in role.policies.items():
            iam.put_role_policy(name, policy_name, json.dumps(document))
        # No session policy and no external id: None, as STS's API passes a parameter the call leaves out.
        session = sts.assume_role(
            region_name=stack.region,
            role_session_name=function,
            role_arn=created.arn,
            policy=None,  # type: ignore[arg-type]
            duration=_SESSION_SECONDS,
            external_id=None,  # type: ignore[arg-type]
        )
        credentials[function] = SessionCredentials(
            session.access_key_id, session.secret_access_key, session.session_token
        )
    return credentials


# --- enforcement -----------------------------------------------------------------------------------


class Enforcement:
    """moto's IAM check, on in this process (where the embedded emulator runs) from `start` to `stop`."""

    def __init__(self, session: boto3.session.Session, account_id: str, access_key_id: str, secret: str) -> None:
        self._session = session
        self._account_id = account_id
        self._admin = (access_key_id, secret)
        self._previous: tuple[float, int] | None = None

    def start(self) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        self._register_admin()
        _install_checks()
        self._previous = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

    def stop(self) -> None:
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        if self._previous is not None:
            settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = self._previous
            self._previous = None

    def _register_admin(self) -> None:
        """The runtime's key (which developers' tools use too) becomes an administrator's.

        IAM makes up the ids of the keys it creates; the runtime's is fixed (tests and `aws --endpoint-url`
        use it), so the key IAM created is given the runtime's id and secret in the emulator's store.
        """
        from moto.iam.models import iam_backends

        iam = self._session.client("iam")
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(UserName=ADMIN_USER, PolicyName="admin", PolicyDocument=json.dumps(_ADMIN_POLICY))
        created = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]["AccessKeyId"]
        backend = iam_backends[self._account_id]["aws"]
        key = backend.access_keys.pop(created)
        key.access_key_id, key.secret_access_key = self._admin
        backend.access_keys[key.access_key_id] = key


# --- what moto checks, made to check what AWS checks ----------------------------------------------

_installed = False


def _install_checks() -> None:
    global _installed
    if _installed:
        return
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        from moto import settings

        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            original(self, iam_request_cls, resource)
            return
        _authorize(self, iam_request_cls, resource)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]
    _installed = True


def _authorize(response: Any, iam_request_cls: type, resource: str) -> None:
    """moto's check (signature, then each action on its resource), for the actions and resources AWS checks."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError, _RESTError

    if response.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    try:
        _check(response, iam_request_cls, resource)
    except _RESTError as refused:
        if "X-Amz-Target" not in response.headers:
            raise
        # The JSON protocols (DynamoDB, EventBridge, SQS) answer in JSON: moto's XML would reach the SDK
        # as a bare 403. AccessDenied is AccessDeniedException there.
        code = "AccessDeniedException" if refused.error_type == "AccessDenied" else refused.error_type
        if response.service_name == "sqs":
            # SQS speaks JSON but names its errors as its query API did; the SDK reads them from this header.
            response.response_headers["x-amzn-query-error"] = f"{refused.error_type};Sender"
        raise JsonRESTError(code, refused.message) from refused


def _check(response: Any, iam_request_cls: type, resource: str) -> None:
    from moto.core.exceptions import AccessDeniedError

    query = urlsplit(response.uri).query
    path = response.raw_path + (f"?{query}" if query else "")
    headers: Mapping[str, str] = response.headers
    presigned = "Authorization" not in headers
    if presigned:
        headers = _verify_presigned(response, query)
    for index, (action, checked) in enumerate(_checks(response, response._get_action(), resource)):
        request = iam_request_cls(
            account_id=response.current_account,
            method=response.method,
            path=path,
            data=response.data,
            body=response.raw_body,
            headers=headers,
            action=action,
        )
        if index == 0 and not presigned:
            request.check_signature()
        try:
            request.check_action_permitted(checked)
        except AccessDeniedError as denied:
            denied.message = f"{denied.message} on resource: {checked}"
            raise


def _checks(response: Any, action: str, resource: str) -> list[tuple[str, str]]:
    """(action, resource ARN) pairs that AWS authorizes for this request."""
    service = response.service_name
    if service == "dynamodb":
        return _dynamodb_checks(response, action)
    if service == "events" and action == "PutEvents":
        body = _json_body(response)
        return [(action, _bus_arn(response, entry.get("EventBusName"))) for entry in body.get("Entries", [])]
    if service == "sqs" and action.endswith("Batch"):
        return [(action.removesuffix("Batch"), resource)]
    if service == "s3":
        return _s3_checks(response, action, resource)
    return [(action, resource)]


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _json_body(response: Any) -> dict[str, Any]:
    # Some of moto's handlers have parsed the body already.
    body = response.body
    parsed: dict[str, Any] = body if isinstance(body, dict) else json.loads(body or "{}")
    return parsed


def _dynamodb_checks(response: Any, action: str) -> list[tuple[str, str]]:
    body = _json_body(response)

    def table(name: str, index: str | None = None) -> str:
        if name.startswith("arn:"):
            return name
        arn = f"arn:aws:dynamodb:{response.region}:{response.current_account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    if action in ("BatchGetItem", "BatchWriteItem"):
        return [(action, table(name)) for name in body.get("RequestItems", {})]
    if action == "TransactWriteItems":
        return [
            (_TRANSACT_ACTIONS[kind], table(operation["TableName"]))
            for item in body.get("TransactItems", [])
            for kind, operation in item.items()
        ]
    if action == "TransactGetItems":
        return [("GetItem", table(item["Get"]["TableName"])) for item in body.get("TransactItems", [])]
    if "TableName" in body:
        return [(action, table(body["TableName"], body.get("IndexName")))]
    return [(action, "*")]


def _bus_arn(response: Any, bus: str | None) -> str:
    if bus and bus.startswith("arn:"):
        return bus
    return f"arn:aws:events:{response.region}:{response.current_account}:event-bus/{bus or 'default'}"


def _s3_checks(response: Any, action: str, resource: str) -> list[tuple[str, str]]:
    bucket_arn, _, key = resource.partition("/")
    if response.method == "POST" and not key and action == "PutObject" and "key" in response.querystring:
        # A browser upload (POST Object): its key is a form field.
        return [(action, f"{bucket_arn}/{response.querystring['key'][0]}")]
    if response.method == "POST" and not key and action == "DeleteObject":
        keys = re.findall(rb"<Key>(.*?)</Key>", response.body or b"", re.DOTALL)
        return [(action, f"{bucket_arn}/{_xml_text(found)}") for found in keys] or [(action, resource)]
    checks = [(action, resource)]
    source = response.headers.get("x-amz-copy-source")
    if response.method == "PUT" and source and key:
        checks.append(("GetObject", f"arn:aws:s3:::{unquote(source.partition('?')[0].lstrip('/'))}"))
    return checks


def _xml_text(raw: bytes) -> str:
    text = raw.decode()
    for entity, character in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&")):
        text = text.replace(entity, character)
    return text


# --- presigned URLs ----------------------------------------------------------------------------------

_ALGORITHM = "AWS4-HMAC-SHA256"


def _verify_presigned(response: Any, query: str) -> dict[str, str]:
    """Check a request signed in its query string (a presigned URL, SigV4 or SigV2) as S3 does, and answer
    the headers moto's check reads the signer from."""
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
    from moto.s3.exceptions import (
        S3AccessDeniedError,
        S3InvalidAccessKeyIdError,
        S3InvalidTokenError,
        S3SignatureDoesNotMatchError,
    )

    pairs = parse_qsl(query, keep_blank_values=True)
    params = dict(pairs)
    sigv4 = params.get("X-Amz-Algorithm") == _ALGORITHM and "X-Amz-Credential" in params
    if not sigv4 and not {"AWSAccessKeyId", "Signature", "Expires"} <= params.keys():
        # Anonymous: no bucket here is public.
        raise S3AccessDeniedError()
    credential = (
        params["X-Amz-Credential"]
        if sigv4
        else f"{params['AWSAccessKeyId']}/{_today()}/{response.region}/s3/aws4_request"
    )
    token = params.get("X-Amz-Security-Token") or params.get("x-amz-security-token")
    try:
        key = create_access_key(
            account_id=response.current_account,
            partition="aws",
            access_key_id=credential.split("/")[0],
            headers={"X-Amz-Security-Token": token} if token else {},
        )
    except CreateAccessKeyFailure as failure:
        raise S3InvalidTokenError() if failure.reason == "InvalidToken" else S3InvalidAccessKeyIdError() from failure
    secret = key.create_credentials().secret_key
    if sigv4:
        signed_at = datetime.strptime(params.get("X-Amz-Date", ""), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires_at = signed_at + timedelta(seconds=int(params.get("X-Amz-Expires", "0")))
        expected = _sigv4_query_signature(response, pairs, secret)
    else:
        expires_at = datetime.fromtimestamp(int(params["Expires"]), UTC)
        expected = _sigv2_query_signature(response, pairs, credential.split("/")[0], secret, token)
    if datetime.now(UTC) > expires_at:
        raise S3AccessDeniedError()
    if not hmac.compare_digest(expected, params.get("X-Amz-Signature") or params.get("Signature", "")):
        raise S3SignatureDoesNotMatchError()
    headers = {"Authorization": f"{_ALGORITHM} Credential={credential}, SignedHeaders=host"}
    if token:
        headers["X-Amz-Security-Token"] = token
    return headers


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")


def _sigv4_query_signature(response: Any, pairs: list[tuple[str, str]], secret: str) -> str:
    params = dict(pairs)
    signed_headers = params.get("X-Amz-SignedHeaders", "host").split(";")
    canonical = "\n".join(
        [
            response.method,
            response.raw_path,
            "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(pairs) if name != "X-Amz-Signature"),
            "".join(f"{name}:{' '.join(str(response.headers.get(name, '')).split())}\n" for name in signed_headers),
            ";".join(signed_headers),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = params["X-Amz-Credential"].split("/")[1:]
    string_to_sign = "\n".join(
        [_ALGORITHM, params["X-Amz-Date"], "/".join(scope), hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = f"AWS4{secret}".encode()
    for part in scope:
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _sigv2_query_signature(
    response: Any, pairs: list[tuple[str, str]], access_key_id: str, secret: str, token: str | None
) -> str:
    from botocore.auth import HmacV1QueryAuth
    from botocore.awsrequest import HTTPHeaders
    from botocore.credentials import Credentials

    expires = dict(pairs)["Expires"]

    class SignedWhenSigned(HmacV1QueryAuth):
        # botocore signs "now + expiry"; the URL carries the moment that came to.
        def _get_date(self) -> str:
            return expires

    auth_params = {"AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token"}
    unsigned = "&".join(f"{_encode(n)}={_encode(v)}" for n, v in pairs if n not in auth_params)
    headers: Any = HTTPHeaders()
    signature: str = SignedWhenSigned(Credentials(access_key_id, secret, token)).get_signature(
        response.method, urlsplit(f"{response.raw_path}?{unsigned}"), headers
    )
    return signature


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


# --- signing the front door's requests --------------------------------------------------------------


def s3_authorization(
    method: str, url: str, headers: Mapping[str, str], credentials: tuple[str, str, str | None], region: str
) -> dict[str, str]:
    """The headers that sign a request to S3 (`headers` and the URL's host; the body unsigned, as S3 allows)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers={**headers, "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(Credentials(*credentials), "s3", region).add_auth(request)
    signed = ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token")
    return {name: request.headers[name] for name in signed if name in request.headers}
