"""moto, faster where the local runtime leans on it hardest. No change alters what moto answers, only
what it costs to answer.

Dispatch: moto's server finds the backend of every request by listing its own package's directory, a
listdir and a stat per module (about two hundred), under the one lock every request takes, on every
request. In a soak that was a tenth of the runtime's CPU, and it held the other requests back while it
ran. The modules do not change while the server runs: they are listed once.

DynamoDB's answers: moto writes every answer through a serializer that walks the botocore model member
by member, trying several spellings of each name on the result. A GetItem or UpdateItem of a job's item
(a few dozen attributes, eight variants) cost 16 ms of CPU with the HTTP around it, 6 ms without the
serializer: `imgflow process` of one image took 6.1 s of CPU, now 5.5. The results of DynamoDB's item
operations (and of its stream's reads) are already the wire's JSON (attribute values in their typed
form, keys as the API spells them), so they are written as they are. A result holding anything else (an
object, bytes, None) still goes through moto's serializer, as every other operation's does.

EventBridge's targets: moto makes each target's input from the event by reading eight JSONPath
expressions (the default input paths, or the target's InputPathsMap), and builds a parser for each
expression anew (0.6 ms of CPU), for every target of every event: 5 ms an event a target, about 30 ms
of the runtime's CPU an upload (three events, two targets each), taken from the encodes beside it. The
expressions are the rules' own, so few: each is parsed once (a parsed path only reads what it is given).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

# The operations whose results moto builds as wire JSON (tests/integration/test_moto_speedups.py calls
# each and holds its answer to the serializer's); others build theirs from objects, which only the
# model can write.
PLAIN_JSON_OPERATIONS = {
    "dynamodb": frozenset(
        {
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "Query",
            "Scan",
            "BatchGetItem",
            "BatchWriteItem",
            "TransactGetItems",
            "TransactWriteItems",
        }
    ),
    "dynamodbstreams": frozenset({"GetShardIterator", "GetRecords"}),
}


# Enough for every path of every rule a stack defines; a bound all the same, as rules can be added at will.
_PARSED_PATHS = 1024


class _NotPlain(Exception):
    """A result holding something the wire does not carry as it is."""


@functools.cache
def install() -> None:
    """The speed-ups, once per process (in-process mocks as well as the server)."""
    import jsonpath_ng.ext
    from moto import backends
    from moto.core.responses import ActionResult

    modules = frozenset(backends.list_of_moto_modules())
    # Its one caller, the server's dispatcher, asks only whether a name is one of them.
    backends.list_of_moto_modules = lambda: modules

    by_model = ActionResult.execute_result

    @functools.wraps(by_model)
    def execute_result(self: ActionResult, context: Any) -> Any:
        return plain_answer(self.result, context) or by_model(self, context)

    ActionResult.execute_result = execute_result  # type: ignore[method-assign]

    # moto imports `parse` from this module as it calls it, so it gets the cached one.
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=_PARSED_PATHS)(jsonpath_ng.ext.parse)


def plain_answer(result: object, context: Any) -> tuple[int, dict[str, str], str] | None:
    """moto's answer (status, headers, body) to `result` written as it is, or None where it cannot be:
    another operation, an error, or a value JSON would carry differently from the model's serializer."""
    service_model, operation = context.service_model, context.operation_model
    plain = PLAIN_JSON_OPERATIONS.get(service_model.service_name, frozenset())
    if operation.name not in plain or not isinstance(result, dict) or (output := operation.output_shape) is None:
        return None
    # Only the output's members, as the serializer writes (moto adds a few of its own, such as
    # DeleteItem's ConsumedCapacityUnits); below them, attribute values have no members to leave out.
    result = {name: value for name, value in result.items() if name in output.members}
    try:
        _refuse_none(result)
        body = json.dumps(result, allow_nan=False, default=_timestamp, check_circular=False)
    except (_NotPlain, TypeError, ValueError):
        return None
    content_type = f"application/x-amz-json-{service_model.metadata.get('jsonVersion', '1.0')}"
    return operation.http.get("responseCode", 200), {"Content-Type": content_type}, body


def _timestamp(value: object) -> int | float:
    """A datetime as moto's serializer writes a JSON timestamp (epoch seconds, milliseconds if any)."""
    if not isinstance(value, datetime):
        raise _NotPlain
    from moto.core.serialize import TimestampSerializer

    return TimestampSerializer._timestamp_unixtimestamp(value)


def _refuse_none(value: object) -> None:
    # The serializer leaves a None member out; JSON would write null, which botocore reads as a value.
    if value is None:
        raise _NotPlain
    if isinstance(value, dict):
        for item in value.values():
            _refuse_none(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_none(item)
