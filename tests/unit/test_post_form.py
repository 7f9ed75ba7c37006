"""The upload form reader: S3's reading of a POST upload, and the one form the emulator is given."""

from __future__ import annotations

import io
from collections.abc import Mapping

import pytest
from werkzeug.formparser import parse_form_data
from werkzeug.test import EnvironBuilder

from imgflow_local.post_form import MAX_PRE_DATA_BYTES, UploadFormReader
from imgflow_local.post_policy import PostPolicyError, VerifiedFields

BOUNDARY = "b0undary"
SIGNED = {"key": "uploads/a/original", "content-type": "image/jpeg", "policy": "p", "x-amz-signature": "s"}

Part = tuple[str, bytes, str | None]  # name, value, filename


def body(parts: list[Part], *, end: bool = True) -> bytes:
    out = b""
    for name, value, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def fields_then_file(fields: Mapping[str, str], data: bytes, *after: Part, file_name: str = "file") -> bytes:
    parts: list[Part] = [(name, value.encode(), None) for name, value in fields.items()]
    return body([*parts, (file_name, data, "cat.jpg"), *after])


class Verifier:
    """Accepts any fields, as the policy would, and remembers what it was asked."""

    def __init__(self, length_range: tuple[int, int] = (1, 1000)) -> None:
        self.length_range = length_range
        self.seen: list[tuple[dict[str, str], str | None]] = []

    def __call__(self, fields: Mapping[str, str], filename: str | None) -> VerifiedFields:
        self.seen.append((dict(fields), filename))
        return VerifiedFields(dict(fields), (self.length_range,))


def read(data: bytes, verifier: Verifier | None = None, chunk: int = 7) -> tuple[dict[str, str], bytes]:
    """Feed `data` in small chunks; the fields and file of the form written for the emulator."""
    out = io.BytesIO()
    reader = UploadFormReader(BOUNDARY.encode(), out, verifier or Verifier(), max_file_bytes=10_000)
    for start in range(0, len(data), chunk):
        reader.feed(data[start : start + chunk])
    reader.feed(b"")
    environ = EnvironBuilder(method="POST", data=out.getvalue(), content_type=reader.content_type).get_environ()
    _, form, files = parse_form_data(environ)
    assert list(files) == ["file"], list(files)
    return dict(form.items()), files["file"].read()


def refusal(data: bytes, verifier: Verifier | None = None) -> PostPolicyError:
    with pytest.raises(PostPolicyError) as raised:
        read(data, verifier)
    return raised.value


def test_a_signed_form_reaches_the_emulator_as_its_fields_then_the_file() -> None:
    fields, data = read(fields_then_file(SIGNED, b"\xff\xd8 jpeg"))
    assert fields == SIGNED
    assert data == b"\xff\xd8 jpeg"


def test_field_names_are_read_whatever_their_case_and_passed_on_in_lower_case() -> None:
    verifier = Verifier()
    fields, _ = read(fields_then_file({"Key": "uploads/a/original", "Content-Type": "image/jpeg"}, b"x"), verifier)
    assert verifier.seen == [({"key": "uploads/a/original", "content-type": "image/jpeg"}, "cat.jpg")]
    assert fields == {"key": "uploads/a/original", "content-type": "image/jpeg"}


@pytest.mark.parametrize("repeated", ["key", "Key", "Content-Type", "CONTENT-TYPE"])
def test_a_field_given_twice_before_the_file_is_refused_before_the_file_is_read(repeated: str) -> None:
    verifier = Verifier()
    data = body([(repeated, b"uploads/evil", None), *[(n, v.encode(), None) for n, v in SIGNED.items()]])
    error = refusal(data, verifier)
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert verifier.seen == []


def test_fields_after_the_file_are_ignored_as_s3_ignores_them() -> None:
    fields, data = read(fields_then_file(SIGNED, b"x", ("acl", b"public-read", None), ("key", b"other", None)))
    assert fields == SIGNED
    assert data == b"x"


def test_a_second_file_part_is_refused() -> None:
    error = refusal(fields_then_file(SIGNED, b"x", ("FILE", b"y" * 5000, "more.jpg")))
    assert (error.code, error.status) == ("IncorrectNumberOfFilesInPostRequest", 400)


def test_a_file_field_named_in_capitals_is_the_file() -> None:
    fields, data = read(fields_then_file(SIGNED, b"jpeg", file_name="FILE"))
    assert fields == SIGNED
    assert data == b"jpeg"


def test_a_form_without_a_file_is_refused() -> None:
    error = refusal(body([(n, v.encode(), None) for n, v in SIGNED.items()]))
    assert error.code == "IncorrectNumberOfFilesInPostRequest"


def test_a_file_over_the_policy_range_is_refused_as_soon_as_it_outgrows_it() -> None:
    out = io.BytesIO()
    reader = UploadFormReader(BOUNDARY.encode(), out, Verifier((1, 1000)), max_file_bytes=10_000)
    opening = fields_then_file(SIGNED, b"")[: -len(f"\r\n--{BOUNDARY}--\r\n")]
    reader.feed(opening)

    def feed_the_file() -> None:
        for _ in range(100):  # far less than the body a client announced: the rest is never read
            reader.feed(b"x" * 512)

    with pytest.raises(PostPolicyError) as raised:
        feed_the_file()
    assert raised.value.code == "EntityTooLarge"
    assert raised.value.details["MaxSizeAllowed"] == "1000"
    assert reader.file_size <= 1000 + 512


def test_a_file_under_the_policy_range_is_refused_at_the_end() -> None:
    error = refusal(fields_then_file(SIGNED, b""))
    assert (error.code, error.status) == ("EntityTooSmall", 400)


def test_fields_over_the_pre_data_limit_are_refused() -> None:
    error = refusal(fields_then_file({**SIGNED, "x-ignore-pad": "x" * MAX_PRE_DATA_BYTES}, b"x"))
    assert error.code == "MaxPostPreDataLengthExceeded"


def test_a_body_cut_off_inside_the_file_is_malformed() -> None:
    error = refusal(fields_then_file(SIGNED, b"x" * 100)[:-40])
    assert error.code == "MalformedPOSTRequest"


def test_a_refusal_of_the_fields_stops_before_the_file() -> None:
    def refuse(fields: Mapping[str, str], filename: str | None) -> VerifiedFields:
        raise PostPolicyError("AccessDenied", "Access Denied")

    out = io.BytesIO()
    reader = UploadFormReader(BOUNDARY.encode(), out, refuse, max_file_bytes=10_000)
    with pytest.raises(PostPolicyError):
        reader.feed(fields_then_file({"key": "k"}, b"x" * 100))
    assert out.getvalue() == b""
