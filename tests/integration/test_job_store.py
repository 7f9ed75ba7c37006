"""JobStore against JobsTable as template.yaml declares it: conditional transitions, versions, sequencers."""

from __future__ import annotations

import pytest

from imgflow.errors import TransitionRejectedError
from imgflow.job_store import JobStore
from imgflow.keys import upload_key, variant_key
from imgflow.models import (
    ImageInfo,
    Job,
    JobError,
    JobStatus,
    Placeholder,
    SourceObject,
    Task,
    TaskStatus,
    Variant,
)
from imgflow.overdue import Deadlines
from imgflow.settings import get_settings
from support import EmulatedAws

JOB_ID = "0123456789abcdef0123456789abcdef"
NOW = 1_795_780_800
SOURCE = SourceObject(bucket="uploads", key=upload_key("alice", JOB_ID), size=6412, etag="e", sequencer="01")
IMAGE = ImageInfo(format="JPEG", width=128, height=128)
VARIANT = Variant(
    preset="thumb",
    format="webp",
    key=variant_key("alice", JOB_ID, "thumb", "webp"),
    width=128,
    height=128,
    bytes=900,
    content_type="image/webp",
)
PLACEHOLDER = Placeholder(blurhash="LQDu[Zvc5tNI%OaINfbc9uXn#*xG", dominant_color="#a56d59")
BROKEN = JobError(code="corrupt_image", message="the JPEG image is corrupt or truncated")


@pytest.fixture
def store(aws: EmulatedAws) -> JobStore:
    return JobStore(aws.table(), Deadlines.from_settings(get_settings()), clock=lambda: NOW)


def new_job(job_id: str = JOB_ID) -> Job:
    return Job(
        job_id=job_id,
        status=JobStatus.AWAITING_UPLOAD,
        created_at=NOW,
        updated_at=NOW,
        expires_at=NOW + 30 * 86400,
        declared_size=6412,
    )


def processing(store: JobStore, tasks: tuple[str, ...] = ("variants",)) -> Job:
    store.create(new_job())
    store.start_validation(JOB_ID, SOURCE)
    return store.accept(JOB_ID, IMAGE, {task: Task() for task in tasks})


# --- creation -----------------------------------------------------------------------------------------------


def test_given_a_new_job_when_created_twice_then_the_second_time_is_refused_and_nothing_changes(
    store: JobStore,
) -> None:
    assert store.create(new_job()) is True
    first = store.require(JOB_ID)

    assert store.create(new_job().model_copy(update={"filename": "other.jpg"})) is False

    assert store.require(JOB_ID) == first
    assert first.version == 1


def test_given_no_job_when_read_then_none(store: JobStore) -> None:
    assert store.get(JOB_ID) is None


# --- transitions --------------------------------------------------------------------------------------------


def test_given_a_job_when_it_goes_through_its_whole_life_then_each_change_adds_exactly_one_to_its_version(
    store: JobStore,
) -> None:
    store.create(new_job())
    steps = [
        lambda: store.start_validation(JOB_ID, SOURCE),
        lambda: store.accept(JOB_ID, IMAGE, {"variants": Task()}),
        lambda: store.start_task(JOB_ID, "variants", "decoding", 5),
        lambda: store.progress_task(JOB_ID, "variants", "placeholder", 10, placeholder=PLACEHOLDER),
        lambda: store.progress_task(JOB_ID, "variants", "encoded thumb.webp", 50, variant=VARIANT),
        lambda: store.finish_task(JOB_ID, "variants"),
        lambda: store.settle(store.require(JOB_ID), JobStatus.SUCCEEDED),
    ]
    versions = [store.require(JOB_ID).version]

    for step in steps:
        returned = step()
        assert returned == store.require(JOB_ID)  # the job as stored afterwards
        versions.append(returned.version)

    assert versions == list(range(1, len(steps) + 2))
    job = store.require(JOB_ID)
    assert job.status is JobStatus.SUCCEEDED
    assert job.source == SOURCE
    assert job.image == IMAGE
    assert job.placeholder == PLACEHOLDER
    assert job.variants == {"thumb_webp": VARIANT}
    assert job.tasks["variants"] == Task(status=TaskStatus.SUCCEEDED, stage="done", progress=100, attempts=1)


def test_given_a_running_task_when_started_again_then_its_attempts_count_up(store: JobStore) -> None:
    processing(store)
    store.start_task(JOB_ID, "variants", "decoding", 5)

    job = store.start_task(JOB_ID, "variants", "decoding", 5)

    assert job.tasks["variants"].attempts == 2
    assert job.tasks["variants"].status is TaskStatus.RUNNING


def test_given_a_processing_job_when_rejected_then_the_transition_is_refused(store: JobStore) -> None:
    before = processing(store)

    with pytest.raises(TransitionRejectedError) as refused:
        store.reject(JOB_ID, BROKEN)

    assert (refused.value.job_id, refused.value.action) == (JOB_ID, "reject")
    assert store.require(JOB_ID) == before


def test_given_a_validating_job_when_validation_starts_again_then_it_resumes(store: JobStore) -> None:
    store.create(new_job())
    store.start_validation(JOB_ID, SOURCE)

    job = store.start_validation(JOB_ID, SOURCE)

    assert (job.status, job.version) == (JobStatus.VALIDATING, 3)


def test_given_a_job_that_is_not_processing_when_accepted_twice_then_the_second_is_refused(store: JobStore) -> None:
    processing(store)

    with pytest.raises(TransitionRejectedError):
        store.accept(JOB_ID, IMAGE, {"variants": Task()})


def test_given_a_job_past_its_upload_when_expired_then_only_an_awaiting_job_expires(store: JobStore) -> None:
    store.create(new_job())
    assert store.expire(JOB_ID).status is JobStatus.EXPIRED

    processing_id = "f" * 32
    store.create(new_job(processing_id))
    store.start_validation(processing_id, SOURCE)
    with pytest.raises(TransitionRejectedError):
        store.expire(processing_id)


def test_given_no_job_when_a_transition_is_asked_then_it_is_refused_and_nothing_is_created(
    aws: EmulatedAws, store: JobStore
) -> None:
    with pytest.raises(TransitionRejectedError):
        store.start_validation(JOB_ID, SOURCE)

    assert aws.table().scan()["Items"] == []


# --- terminal jobs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.start_task(JOB_ID, "variants", "decoding", 5), id="start_task"),
        pytest.param(lambda s: s.progress_task(JOB_ID, "variants", "encoding", 50), id="progress_task"),
        pytest.param(lambda s: s.finish_task(JOB_ID, "variants"), id="finish_task"),
        pytest.param(lambda s: s.fail(JOB_ID, BROKEN), id="fail"),
        pytest.param(lambda s: s.reject(JOB_ID, BROKEN), id="reject"),
        pytest.param(lambda s: s.expire(JOB_ID), id="expire"),
        pytest.param(lambda s: s.settle(s.require(JOB_ID), JobStatus.FAILED, BROKEN), id="settle"),
        pytest.param(lambda s: s.start_validation(JOB_ID, SOURCE), id="start_validation"),
        pytest.param(lambda s: s.accept(JOB_ID, IMAGE, {"variants": Task()}), id="accept"),
    ],
)
@pytest.mark.parametrize("terminal", [JobStatus.SUCCEEDED, JobStatus.FAILED])
def test_given_a_settled_job_when_anything_would_change_it_then_it_is_refused(
    store: JobStore, terminal: JobStatus, change: object
) -> None:
    # Two tasks, one of them still pending: only the job's own state can protect it.
    processing(store, tasks=("variants", "edit-1"))
    store.finish_task(JOB_ID, "edit-1")
    settled = store.settle(store.require(JOB_ID), terminal, BROKEN if terminal is JobStatus.FAILED else None)

    with pytest.raises(TransitionRejectedError):
        change(store)  # type: ignore[operator]

    assert store.require(JOB_ID) == settled


@pytest.mark.parametrize("status", [JobStatus.REJECTED, JobStatus.EXPIRED])
def test_given_a_job_ended_before_processing_when_failed_or_validated_then_it_is_refused(
    store: JobStore, status: JobStatus
) -> None:
    store.create(new_job())
    ended = store.reject(JOB_ID, BROKEN) if status is JobStatus.REJECTED else store.expire(JOB_ID)

    for change in (lambda: store.fail(JOB_ID, BROKEN), lambda: store.start_validation(JOB_ID, SOURCE)):
        with pytest.raises(TransitionRejectedError):
            change()

    assert store.require(JOB_ID) == ended


# --- tasks ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [None, BROKEN], ids=["succeeded", "failed"])
def test_given_a_finished_task_when_finished_or_touched_again_then_it_is_refused(
    store: JobStore, error: JobError | None
) -> None:
    processing(store, tasks=("variants", "edit-1"))  # the job stays processing: the other task is open
    finished = store.finish_task(JOB_ID, "variants", error)

    for change in (
        lambda: store.finish_task(JOB_ID, "variants"),
        lambda: store.finish_task(JOB_ID, "variants", BROKEN),
        lambda: store.start_task(JOB_ID, "variants", "decoding", 5),
        lambda: store.progress_task(JOB_ID, "variants", "encoding", 50, variant=VARIANT),
    ):
        with pytest.raises(TransitionRejectedError):
            change()

    assert store.require(JOB_ID) == finished
    assert finished.status is JobStatus.PROCESSING


def test_given_a_failed_task_when_finished_then_it_keeps_its_error_and_progress(store: JobStore) -> None:
    processing(store)
    store.start_task(JOB_ID, "variants", "decoding", 5)

    job = store.finish_task(JOB_ID, "variants", BROKEN)

    assert job.tasks["variants"] == Task(status=TaskStatus.FAILED, stage="failed", progress=5, attempts=1, error=BROKEN)


def test_given_no_such_task_when_it_is_started_then_it_is_refused(store: JobStore) -> None:
    processing(store)

    with pytest.raises(TransitionRejectedError):
        store.start_task(JOB_ID, "edit-9", "queued", 0)


# --- object sequencers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "second_claims"),
    [
        pytest.param("0055AED6DCD90281E5", "0055AED6DCD90281E6", True, id="newer"),
        pytest.param("0055AED6DCD90281E6", "0055AED6DCD90281E5", False, id="older"),
        pytest.param("0055AED6DCD90281E5", "0055AED6DCD90281E5", True, id="equal: a redelivery"),
        pytest.param("0055AED6DCD90281E5", "0055AED6DCD90281E500", True, id="equal after padding (longer second)"),
        pytest.param("0055AED6DCD90281E500", "0055AED6DCD90281E5", True, id="equal after padding (shorter second)"),
        pytest.param("0055AED6DCD90281E6", "0055AED6DCD90281E6AA", True, id="newer and longer"),
        pytest.param("0055AED6DCD90281E6AA", "0055AED6DCD90281E6", False, id="older and shorter"),
        pytest.param("0055AED6DCD90281E6", "0055AED6DCD90281E50F", False, id="older and longer"),
        pytest.param("0055AED6DCD90281E50F", "0055AED6DCD90281E6", True, id="newer and shorter"),
        pytest.param("0055aed6dcd90281e5", "0055AED6DCD90281E6", True, id="case does not matter"),
    ],
)
def test_given_a_claimed_object_when_another_write_is_claimed_then_only_a_newer_or_equal_one_wins(
    store: JobStore, first: str, second: str, second_claims: bool
) -> None:
    assert store.claim_object("uploads", "uploads/a.jpg", first, "job-1") is True

    assert store.claim_object("uploads", "uploads/a.jpg", second, "job-2") is second_claims


def test_given_a_claimed_object_when_a_stale_write_is_claimed_then_the_newest_stays_recorded(
    aws: EmulatedAws, store: JobStore
) -> None:
    store.claim_object("uploads", "uploads/a.jpg", "0055AED6DCD90281E6AA", "job-new")

    assert store.claim_object("uploads", "uploads/a.jpg", "0055AED6DCD90281E6", "job-old") is False

    item = aws.table().get_item(Key={"pk": "object#uploads/uploads/a.jpg"})["Item"]
    assert item["job_id"] == "job-new"
    assert item["sequencer"].rstrip("0") == "0055AED6DCD90281E6AA"


def test_given_two_keys_when_claimed_then_their_sequencers_do_not_interfere(store: JobStore) -> None:
    assert store.claim_object("uploads", "uploads/a.jpg", "0055AED6DCD90281F0", "job-a") is True

    assert store.claim_object("uploads", "uploads/b.jpg", "0055AED6DCD90281E0", "job-b") is True
    assert store.claim_object("other-bucket", "uploads/a.jpg", "0055AED6DCD90281E0", "job-c") is True
