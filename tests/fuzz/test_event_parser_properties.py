"""The event parsers, on any message: an SQS record's body is parsed into its model or refused with a
ValidationError (the message is then a poison message, left to the dead-letter queue), never anything else;
what a parsed S3 notification names is what S3 sent, its key decoded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from fuzz.fuzzing import replayable
from imgflow.event_models import (
    EditRecordModel,
    IngestRecordModel,
    S3Notification,
    VariantsRecordModel,
    created_objects,
)

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "s3-events"
SQS_RECORD: dict[str, Any] = json.loads((EVENTS / "sqs_batch_two_copies_same_s3_event.json").read_text())["Records"][0]
NOTIFICATIONS = [
    json.loads((EVENTS / name).read_text())
    for name in (
        "s3_key_unicode.json",
        "s3_key_space_plus.json",
        "s3_two_records.json",
        "s3_zero_size.json",
        "s3_test_event.json",
    )
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """`document` with one value somewhere in it replaced or removed."""
    if isinstance(document, dict) and document:
        key = draw(st.sampled_from(sorted(document)))
        action = draw(st.sampled_from(["descend", "replace", "remove"]))
        copy = dict(document)
        if action == "remove":
            del copy[key]
        else:
            copy[key] = draw(mutated(document[key])) if action == "descend" else draw(json_values)
        return copy
    if isinstance(document, list) and document:
        at = draw(st.integers(0, len(document) - 1))
        return [*document[:at], draw(mutated(document[at])), *document[at + 1 :]]
    return draw(json_values)


notification_bodies = st.one_of(
    st.sampled_from(NOTIFICATIONS).flatmap(lambda n: mutated(n)).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=50),
)


def parsed_or_refused(model: type[BaseModel], body: str) -> BaseModel | None:
    try:
        return model.model_validate({**SQS_RECORD, "body": body})
    except ValidationError:
        return None


# What the first fuzz run found: Powertools' own check of a record crashed (AttributeError, TypeError).
@example('{"Records": [{"eventName": "ObjectCreated:Put", "s3": null}]}')
@example('{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": null}}]}')
@example('{"Records": [{"eventName": null, "s3": {"object": {"key": "k"}}}]}')
@example('{"Records": [null]}')
@replayable
@given(notification_bodies)
def test_an_ingest_message_is_parsed_or_refused_and_names_what_s3_sent(body: str) -> None:
    record = parsed_or_refused(IngestRecordModel, body)
    if record is None:
        return
    assert isinstance(record, IngestRecordModel)
    objects = created_objects(record.body)
    if isinstance(record.body, S3Notification):
        raw = json.loads(body)["Records"]
        sent = [r["s3"] for r in raw if r["eventName"].startswith("ObjectCreated:")]
        assert [(o.bucket, o.key) for o in objects] == [
            (s["bucket"]["name"], unquote_plus(s["object"]["key"])) for s in sent
        ]
        assert all(o.size >= 0 for o in objects)
    else:
        assert objects == []


@replayable
@given(st.one_of(json_values.map(json.dumps), st.text(max_size=50)))
def test_a_task_message_is_parsed_or_refused(body: str) -> None:
    for model in (VariantsRecordModel, EditRecordModel):
        parsed_or_refused(model, body)
