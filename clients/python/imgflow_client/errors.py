"""What the API or S3 refused, with the code and message they gave."""

from __future__ import annotations

import re

import requests


class ImgflowError(Exception):
    """A refusal: `code` is stable and machine-readable, `message` says why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class ApiError(ImgflowError):
    """The API answered 4xx/5xx; `code` is its `error.code` (`invalid_request`, `quota_exceeded`, ...)."""

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(response.status_code, str(error.get("code")), str(error.get("message", "")))
        # API Gateway's own answers (`{"message": "Unauthorized"}`, a throttled 500) have no error object.
        message = body.get("message") if isinstance(body, dict) else None
        return cls(response.status_code, f"http_{response.status_code}", str(message or response.reason))


class UploadRefusedError(ImgflowError):
    """S3 refused the presigned POST (its XML `Code`, e.g. `AccessDenied`, `EntityTooLarge`); no job will start."""

    def __init__(self, status: int, code: str, message: str, job_id: str) -> None:
        super().__init__(status, code, message)
        self.job_id = job_id

    @classmethod
    def from_s3(cls, status: int, xml: str, job_id: str) -> UploadRefusedError:
        code = re.search(r"<Code>([^<]+)</Code>", xml)
        message = re.search(r"<Message>([^<]+)</Message>", xml)
        return cls(status, code[1] if code else f"http_{status}", message[1] if message else "", job_id)
