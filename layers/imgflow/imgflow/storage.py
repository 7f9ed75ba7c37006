"""S3 access: presigned uploads and downloads, bounded reads of originals, writes of results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgflow.errors import ImageRejectedError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


class ObjectChangedError(Exception):
    """The object is no longer the one the event named: overwritten (a newer event is on its way) or deleted."""

    def __init__(self, key: str, *, deleted: bool) -> None:
        super().__init__(f"{key} was {'deleted' if deleted else 'overwritten'}")
        self.deleted = deleted


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
