"""Models of the events our functions receive, extending Powertools' parser models.

S3 keys arrive form-URL-encoded (`red+flower.jpg` is `red flower.jpg`); they are decoded here, once.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import S3Model, S3RecordModel, SqsRecordModel
from pydantic import BaseModel, Json

from imgflow.models import SourceObject, VariantsMessage


class S3TestEventModel(BaseModel):
    """Sent once by S3 when a notification is configured; carries no records."""

    Service: str
    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


class IngestRecordModel(SqsRecordModel):  # type: ignore[override]
    body: Json[S3Model | S3TestEventModel]  # type: ignore[assignment]


class VariantsRecordModel(SqsRecordModel):  # type: ignore[override]
    body: Json[VariantsMessage]  # type: ignore[assignment]


def source_object(record: S3RecordModel) -> SourceObject:
    obj = record.s3.object
    return SourceObject(
        bucket=record.s3.bucket.name,
        key=unquote_plus(obj.key),
        size=int(obj.size or 0),
        etag=obj.eTag,
        sequencer=obj.sequencer,
        version_id=obj.versionId if obj.versionId not in {None, "null"} else None,
    )


def created_objects(body: S3Model | S3TestEventModel) -> list[SourceObject]:
    """The objects an S3 notification says were created; none for a test event."""
    if isinstance(body, S3TestEventModel):
        return []
    return [source_object(record) for record in body.Records if record.eventName.startswith("ObjectCreated:")]
