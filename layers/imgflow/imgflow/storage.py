"""S3 access: presigned uploads and downloads, bounded reads of originals, writes of results, conditional
copies and deletes of uploads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgflow.errors import ImageRejectedError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


class ObjectChangedError(Exception):
    """The object is no longer the one the event named: overwritten (a newer event is on its way) or deleted."""

    def __init__(self, key: str, *, deleted: bool) -> None:
        super().__init__(f"{key} was {'deleted' if deleted else 'overwritten'}")
        self.deleted = deleted


def _changed(error: ClientError, key: str) -> ObjectChangedError | None:
    """The object a conditional request named is no longer there as it was, if that is what S3 answered."""
    code = error.response.get("Error", {}).get("Code", "")
    if code in {"PreconditionFailed", "412"}:
        return ObjectChangedError(key, deleted=False)
    if code in {"NoSuchKey", "404"}:
        return ObjectChangedError(key, deleted=True)
    return None


def _entity_tag(etag: str) -> str:
    # Notifications carry eTags bare; the conditional headers take them quoted, as S3 returns them.
    return f'"{etag.strip(chr(34))}"'


class ObjectStorage:
    def __init__(self, client: S3Client) -> None:
        self._s3 = client

    def presigned_post(
        self, bucket: str, key: str, content_type: str, max_bytes: int, expires_in: int
    ) -> PresignedPost:
        # The policy pins the exact key, the exact content type and the size range: S3 refuses anything else.
        post = self._s3.generate_presigned_post(
            Bucket=bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=expires_in,
        )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]))

    def presigned_get(self, bucket: str, key: str, expires_in: int) -> str:
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in {"NoSuchKey", "404"}:
                return False
            raise
        return True

    def read(self, bucket: str, key: str, *, max_bytes: int, etag: str | None = None) -> bytes:
        """The object's bytes, refusing more than `max_bytes` without downloading them."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if etag:
            params["IfMatch"] = etag
        try:
            response = self._s3.get_object(**params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in {"PreconditionFailed", "412"}:
                raise ObjectChangedError(key, deleted=False) from error
            if code in {"NoSuchKey", "404"}:
                raise ObjectChangedError(key, deleted=True) from error
            raise
        length = response["ContentLength"]
        body = response["Body"]
        try:
            if length > max_bytes:
                raise ImageRejectedError(
                    "too_large_bytes", f"the file is {length} bytes; the limit is {max_bytes} bytes"
                )
            return body.read()
        finally:
            body.close()

    def write(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                # Keys are deterministic per job and content never changes under a key once written.
                CacheControl="public, max-age=31536000, immutable",
            )
        except ClientError as error:
            raise TransientError(f"could not write s3://{bucket}/{key}: {error}") from error

    def copy(
        self,
        source_bucket: str,
        source_key: str,
        bucket: str,
        key: str,
        *,
        etag: str | None,
        version_id: str | None,
        content_type: str,
    ) -> None:
        """Copy the object of `source_key` that has `etag` (and `version_id`, in a versioned bucket).

        S3 checks the condition in the copy itself, so a write to the source key after it was read cannot
        slip into the copy: the copy fails with `ObjectChangedError` instead. Nothing of the uploader's
        object but its bytes is kept: metadata and tags are replaced.
        """
        source: CopySourceTypeDef = {"Bucket": source_bucket, "Key": source_key}
        if version_id:
            source["VersionId"] = version_id
        params: dict[str, Any] = {}
        if etag:
            params["CopySourceIfMatch"] = _entity_tag(etag)
        try:
            self._s3.copy_object(
                Bucket=bucket,
                Key=key,
                CopySource=source,
                MetadataDirective="REPLACE",
                ContentType=content_type,
                CacheControl="public, max-age=31536000, immutable",
                # Copying the source's tags would need s3:GetObjectTagging and s3:PutObjectTagging as well.
                TaggingDirective="REPLACE",
                **params,
            )
        except ClientError as error:
            changed = _changed(error, source_key)
            if changed is None:
                raise
            raise changed from error

    def delete(self, bucket: str, key: str, *, etag: str | None, version_id: str | None) -> bool:
        """Delete the object of `key` only if it is still the one named by `version_id` (that version, in a
        versioned bucket) or else `etag` (whatever it holds when neither is known); False when the key holds
        another object, or none.

        Raises `TransientError` when S3 fails otherwise.
        """
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        elif etag:
            params["IfMatch"] = _entity_tag(etag)
        try:
            self._s3.delete_object(**params)
        except ClientError as error:
            if _changed(error, key) is not None:
                return False
            raise TransientError(f"could not delete s3://{bucket}/{key}: {error}") from error
        return True

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under `prefix`; how many there were."""
        deleted = 0
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            # A page holds at most 1,000 keys, as many as one DeleteObjects call takes.
            keys: list[Any] = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
            if keys:
                self._s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted
