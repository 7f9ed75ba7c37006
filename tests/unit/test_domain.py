"""Unit tests of the domain rules that need no AWS: keys, ordering, planning, settling, settings."""

from __future__ import annotations

import os

import pytest

from imgflow.ingest import drop_job_id
from imgflow.job_store import sequencer_order_key
from imgflow.keys import is_safe_upload_key, job_prefix, owner_segment, upload_key, variant_key
from imgflow.models import ANONYMOUS, Job, JobStatus, SourceObject, Task, TaskStatus, VariantsRequest
from imgflow.settings import Settings
from imgflow.settling import settle_status
from imgflow.variants import plan

BASE_ENV = {"JOBS_TABLE": "jobs", "UPLOADS_BUCKET": "up", "MEDIA_BUCKET": "media"}


def a_job(**changes: object) -> Job:
    values: dict[str, object] = {
        "job_id": "0" * 32,
        "owner": ANONYMOUS,
        "status": JobStatus.PROCESSING,
        "created_at": 1,
        "updated_at": 1,
        "expires_at": 2,
    }
    values.update(changes)
    return Job.model_validate(values)


@pytest.mark.parametrize(
    ("key", "safe"),
    [
        ("uploads/abc/original", True),
        ("uploads/u123/red flower.jpg", True),
        ("uploads/café ☕.jpg", True),
        ("uploads/../etc/passwd", False),
        ("uploads/a/../../b", False),
        ("uploads//double", False),
        ("uploads/./x", False),
        ("uploads/", False),
        ("other/x.jpg", False),
        ("uploads/a\\..\\b", False),
        ("uploads/nul\x00byte", False),
    ],
)
def test_given_a_key_when_checked_then_only_plain_keys_under_the_prefix_are_safe(key: str, safe: bool) -> None:
    assert is_safe_upload_key(key) is safe


def test_given_a_job_id_when_keys_are_made_then_they_are_deterministic_and_under_the_owners_prefix() -> None:
    alice = owner_segment("alice")
    assert upload_key("alice", "ab" * 16) == f"uploads/{alice}/{'ab' * 16}/original"
    assert variant_key("alice", "ab" * 16, "thumb", "webp") == f"jobs/{alice}/{'ab' * 16}/variants/thumb.webp"
    assert job_prefix("alice", "ab" * 16) == f"jobs/{alice}/{'ab' * 16}/"


@pytest.mark.parametrize(
    "owner",
    ["alice", "auth0|5f7c8ec7c33c6c004bbafe82", "alice@example.com", "../bob", "a/b", "x" * 256, "ünïcødé", "."],
)
def test_given_any_owner_when_its_segment_is_made_then_it_is_one_plain_key_segment_of_fixed_length(
    owner: str,
) -> None:
    segment = owner_segment(owner)
    assert len(segment) == 32
    assert segment.isalnum()
    assert segment == owner_segment(owner)
    assert is_safe_upload_key(upload_key(owner, "ab" * 16))


def test_given_two_owners_when_their_segments_are_made_then_they_differ_also_by_case() -> None:
    assert owner_segment("alice") != owner_segment("bob")
    assert owner_segment("alice") != owner_segment("Alice")


def test_given_the_same_write_twice_when_a_drop_job_id_is_derived_then_it_is_the_same_and_differs_per_write() -> None:
    first = SourceObject(bucket="b", key="uploads/x.jpg", size=1, etag="e", sequencer="0055")
    again = SourceObject(bucket="b", key="uploads/x.jpg", size=1, etag="e", sequencer="0055")
    newer = SourceObject(bucket="b", key="uploads/x.jpg", size=1, etag="f", sequencer="0056")
    assert drop_job_id(first) == drop_job_id(again)
    assert drop_job_id(first) != drop_job_id(newer)
    assert len(drop_job_id(first)) == 32


def test_given_sequencers_of_different_lengths_when_ordered_then_they_compare_after_right_padding() -> None:
    assert sequencer_order_key("0055AED6DCD90281E5") > sequencer_order_key("0055AED6DCD90281E4")
    assert sequencer_order_key("0055AED6DCD90281E5") == sequencer_order_key("0055AED6DCD90281E500")
    assert sequencer_order_key("0055AED6DCD90281E501") > sequencer_order_key("0055AED6DCD90281E5")
    assert sequencer_order_key("0055aed6dcd90281e6") > sequencer_order_key("0055AED6DCD90281E5")


def test_given_default_settings_when_planned_then_every_preset_in_webp_largest_first() -> None:
    steps = plan(a_job(), Settings.from_environment(BASE_ENV))
    assert [(p.name, p.long_edge, fmt) for p, fmt in steps] == [
        ("full", 4096, "webp"),
        ("large", 1200, "webp"),
        ("small", 600, "webp"),
        ("thumb", 150, "webp"),
    ]


def test_given_a_request_for_some_presets_and_avif_when_planned_then_only_those() -> None:
    job = a_job(variants_request=VariantsRequest(presets=("thumb",), formats=("webp", "avif")))
    steps = plan(job, Settings.from_environment(BASE_ENV))
    assert [(p.name, fmt) for p, fmt in steps] == [("thumb", "webp"), ("thumb", "avif")]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([TaskStatus.SUCCEEDED], JobStatus.SUCCEEDED),
        ([TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED], JobStatus.SUCCEEDED),
        ([TaskStatus.SUCCEEDED, TaskStatus.FAILED], JobStatus.FAILED),
        ([TaskStatus.FAILED, TaskStatus.RUNNING], None),
        ([TaskStatus.PENDING], None),
    ],
)
def test_given_task_statuses_when_settled_then_the_job_ends_only_when_all_tasks_have(
    statuses: list[TaskStatus], expected: JobStatus | None
) -> None:
    job = a_job(tasks={f"t{i}": Task(status=status) for i, status in enumerate(statuses)})
    assert settle_status(job) == expected


def test_given_environment_when_settings_are_read_then_presets_and_formats_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in BASE_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VARIANT_PRESETS", "tiny=64, hero=2000")
    monkeypatch.setenv("DEFAULT_FORMATS", "webp,avif")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "1000")
    settings = Settings.from_environment(os.environ)
    assert [(p.name, p.long_edge) for p in settings.variant_presets] == [("tiny", 64), ("hero", 2000)]
    assert settings.default_formats == ("webp", "avif")
    assert settings.max_upload_bytes == 1000


def test_given_a_missing_table_name_when_settings_are_read_then_it_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBS_TABLE", raising=False)
    monkeypatch.setenv("UPLOADS_BUCKET", "up")
    monkeypatch.setenv("MEDIA_BUCKET", "media")
    with pytest.raises(ValueError, match="jobs_table"):
        Settings.from_environment(os.environ)


def test_given_terminal_statuses_then_exactly_the_four_endings_are_terminal() -> None:
    assert {s for s in JobStatus if s.is_terminal} == {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.REJECTED,
        JobStatus.EXPIRED,
    }
