"""Read an S3 browser upload (POST Object) as S3 reads it while it streams past, and write the one form the
emulator is given.

S3 reads the fields up to the file, by name whatever their case, and ignores the fields after the file.
moto reads every part by its exact name (the last one of each), so left to read the original body it
would store something other than what the policy was checked against: a second `key`, a `Key`, an `acl`
after the file, a second file. So the emulator never sees the original: it gets a form written from
what S3 read and the policy verified, each field once under its lower-case name, then the file.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from enum import Enum, auto
from typing import IO

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from imgflow_local.post_policy import PostPolicyError, VerifiedFields, check_file_size, max_file_size

# Form fields before the file are held in memory; S3 caps them too (MaxPostPreDataLengthExceeded).
MAX_PRE_DATA_BYTES = 20 * 1024
_MAX_PARTS = 1000
# Bounds the parser's own buffer: only malformed part headers can grow it this far.
_MAX_PARSER_BUFFER_BYTES = 1024**2
FILE_FIELD = "file"

# Given the fields before the file (lower-case names) and the file's name: what S3 accepts, or a refusal.
VerifyFields = Callable[[Mapping[str, str], str | None], VerifiedFields]


class _Stage(Enum):
    FIELDS = auto()
    FILE = auto()
    AFTER_FILE = auto()
    DONE = auto()


class UploadFormReader:
    """Parses an upload fed in chunks, refusing as soon as S3 would, and writes the emulator's form to `out`.

    The fields are verified when the file starts (before any of its bytes are read); the file is refused
    as soon as it outgrows the policy's `content-length-range` or `max_file_bytes`, whichever is smaller.
    """

    def __init__(self, boundary: bytes, out: IO[bytes], verify: VerifyFields, max_file_bytes: int) -> None:
        self._decoder = MultipartDecoder(boundary, max_form_memory_size=_MAX_PARSER_BUFFER_BYTES, max_parts=_MAX_PARTS)
        self._out = out
        self._verify = verify
        self._max_file_bytes = max_file_bytes
        self._boundary = secrets.token_hex(16).encode()
        self._stage = _Stage.FIELDS
        self._fields: dict[str, str] = {}
        self._field: str | None = None
        self._value = bytearray()
        self._pre_data_bytes = 0
        self._verified: VerifiedFields | None = None
        self._limit = max_file_bytes
        self.file_size = 0

    @property
    def content_type(self) -> str:
        """The Content-Type of the form written to `out`."""
        return f"multipart/form-data; boundary={self._boundary.decode()}"

    def feed(self, data: bytes) -> None:
        """Take the next bytes of the body; b"" means the body has ended."""
        if self._stage is _Stage.DONE:
            return
        try:
            self._decoder.receive_data(data or None)
            while self._stage is not _Stage.DONE:
                event = self._decoder.next_event()
                if isinstance(event, NeedData):
                    break
                self._on_event(event)
        except ValueError as exc:
            raise malformed() from exc
        if not data:
            self._finish()

    def _on_event(self, event: object) -> None:
        if isinstance(event, Field | File):
            self._start_part(event)
        elif isinstance(event, Data):
            self._on_data(event)
        elif isinstance(event, Epilogue):
            self._stage = _Stage.DONE

    def _start_part(self, part: Field | File) -> None:
        name = part.name.lower()
        if self._stage is _Stage.AFTER_FILE:
            if name == FILE_FIELD:
                raise _not_one_file()
            return  # S3 ignores the fields after the file, and so does the form the emulator gets.
        if name == FILE_FIELD:
            self._start_file(part.filename if isinstance(part, File) else None)
            return
        if name in self._fields or name == self._field:
            raise PostPolicyError(
                "InvalidArgument",
                f"POST requires exactly one value for each form field; '{part.name}' is given more than once.",
                details={"ArgumentName": part.name, "ArgumentValue": ""},
            )
        self._field = name
        self._value.clear()
        self._count_pre_data(len(name))

    def _start_file(self, filename: str | None) -> None:
        verified = self._verify(dict(self._fields), filename)
        self._verified = verified
        bound = max_file_size(verified)
        self._limit = self._max_file_bytes if bound is None else min(bound, self._max_file_bytes)
        self._stage = _Stage.FILE
        for name, value in verified.fields.items():
            self._write_part_head(f'name="{_quoted(name)}"', None)
            self._out.write(value.encode() + b"\r\n")
        # The key is already substituted: the file's own name is not the emulator's business.
        self._write_part_head(f'name="{FILE_FIELD}"; filename="upload"', "application/octet-stream")

    def _on_data(self, data: Data) -> None:
        if self._stage is _Stage.FILE:
            self.file_size += len(data.data)
            if self.file_size > self._limit:
                assert self._verified is not None
                check_file_size(self._verified, self.file_size)
                raise _too_large(self.file_size, self._limit)
            self._out.write(data.data)
            if not data.more_data:
                self._stage = _Stage.AFTER_FILE
            return
        if self._stage is _Stage.AFTER_FILE or self._field is None:
            return
        self._count_pre_data(len(data.data))
        self._value.extend(data.data)
        if not data.more_data:
            self._fields[self._field] = self._value.decode("utf-8", errors="replace")
            self._field = None

    def _finish(self) -> None:
        if self._verified is None:
            raise _not_one_file()
        if self._stage is _Stage.FILE:
            raise malformed()
        check_file_size(self._verified, self.file_size)
        self._out.write(b"\r\n--" + self._boundary + b"--\r\n")

    def _write_part_head(self, disposition: str, content_type: str | None) -> None:
        head = f"--{self._boundary.decode()}\r\nContent-Disposition: form-data; {disposition}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        self._out.write(head.encode() + b"\r\n")

    def _count_pre_data(self, size: int) -> None:
        self._pre_data_bytes += size
        if self._pre_data_bytes > MAX_PRE_DATA_BYTES:
            raise PostPolicyError(
                "MaxPostPreDataLengthExceeded",
                "Your POST request fields preceding the upload file were too large.",
            )


def _quoted(name: str) -> str:
    # As browsers write a field name into Content-Disposition (the HTML standard's escapes).
    return name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def malformed() -> PostPolicyError:
    return PostPolicyError(
        "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data."
    )


def _not_one_file() -> PostPolicyError:
    return PostPolicyError("IncorrectNumberOfFilesInPostRequest", "POST requires exactly one file upload per request.")


def _too_large(size: int, limit: int) -> PostPolicyError:
    return PostPolicyError(
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
        details={"ProposedSize": str(size), "MaxSizeAllowed": str(limit)},
    )
