"""Models of the events our functions receive, extending Powertools' parser models.

S3 keys arrive form-URL-encoded (`red+flower.jpg` is `red flower.jpg`); they are decoded here, once.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import (
    DynamoDBStreamChangedRecordModel,
    DynamoDBStreamRecordModel,
    S3Model,
    S3RecordModel,
    SqsRecordModel,
)
from aws_lambda_powertools.utilities.parser.models.s3 import (
    S3Bucket,
    S3Identity,
    S3Message,
    S3Object,
    S3OwnerIdentify,
    S3RequestParameters,
    S3ResponseElements,
)
from pydantic import BaseModel, Json, model_validator

from imgflow.models import EditMessage, SourceObject, VariantsMessage


class S3TestEventModel(BaseModel):
    """Sent once by S3 when a notification is configured; carries no records."""

    Service: str
    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


# Ingest reads only the bucket and the object; the identity fields that S3 adds (and emulators omit) may be absent.
class S3NotificationBucket(S3Bucket):
    ownerIdentity: S3OwnerIdentify | None = None  # type: ignore[assignment]


class S3NotificationMessage(S3Message):
    bucket: S3NotificationBucket
    object: S3Object


class S3NotificationRecord(S3RecordModel):
    userIdentity: S3Identity | None = None  # type: ignore[assignment]
    requestParameters: S3RequestParameters | None = None  # type: ignore[assignment]
    responseElements: S3ResponseElements | None = None  # type: ignore[assignment]
    s3: S3NotificationMessage

    @model_validator(mode="before")
    @classmethod
    def validate_s3_object(cls, values: Any) -> Any:
        """Powertools' check of the same name, on any input: it reads the record as a dict of dicts and fails
        with AttributeError or TypeError on anything else (found by tests/fuzz), where a malformed message
        must be refused as every other one is, with a ValidationError."""
        if not isinstance(values, dict):
            return values
        s3, event_name = values.get("s3"), values.get("eventName")
        s3_object = (s3.get("object") or s3.get("get_object")) if isinstance(s3, dict) else None
        if not (isinstance(event_name, str) and isinstance(s3_object, dict)) or ":Delete" in event_name:
            return values
        if s3_object.get("size") is None or s3_object.get("eTag") is None:
            raise ValueError("Size and eTag fields are required for all events except ObjectRemoved:*.")
        return values


class S3Notification(S3Model):
    Records: list[S3NotificationRecord]  # type: ignore[assignment]


class IngestRecordModel(SqsRecordModel):
    body: Json[S3Notification | S3TestEventModel]


class VariantsRecordModel(SqsRecordModel):
    body: Json[VariantsMessage]


class EditRecordModel(SqsRecordModel):
    body: Json[EditMessage]


class ItemChange(DynamoDBStreamChangedRecordModel):
    """A change of a JobsTable item: its images as plain items (Powertools deserializes them; numbers are
    Decimal), either absent when the item did not exist before or no longer does."""

    NewImage: dict[str, Any] | None = None
    OldImage: dict[str, Any] | None = None


class ItemChangeRecordModel(DynamoDBStreamRecordModel):
    dynamodb: ItemChange

    @property
    def removed_by_ttl(self) -> bool:
        """DynamoDB names itself (the service `dynamodb.amazonaws.com`) only on the removals its TTL makes."""
        return self.eventName == "REMOVE" and self.userIdentity is not None


def source_object(record: S3NotificationRecord) -> SourceObject:
    obj = record.s3.object
    return SourceObject(
        bucket=record.s3.bucket.name,
        key=unquote_plus(obj.key),
        size=int(obj.size or 0),
        etag=obj.eTag,
        sequencer=obj.sequencer,
        version_id=obj.versionId if obj.versionId not in {None, "null"} else None,
    )


def created_objects(body: S3Notification | S3TestEventModel) -> list[SourceObject]:
    """The objects an S3 notification says were created; none for a test event."""
    if isinstance(body, S3TestEventModel):
        return []
    return [source_object(record) for record in body.Records if record.eventName.startswith("ObjectCreated:")]
