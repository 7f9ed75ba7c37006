"""When a job that stopped moving is overdue: each step's timeout, visibility and retry delays, times its
attempts; the slowest open step counts; nothing open, no deadline."""

from __future__ import annotations

import pytest

from imgflow.models import Job, JobStatus, Task, TaskStatus
from imgflow.overdue import MARGIN_SECONDS, UPLOAD_GRACE_SECONDS, Deadlines, Step, StepLimits, gave_up_message
from imgflow.settings import Settings

NOW = 1_795_780_800
DEADLINES = Deadlines(
    steps={
        Step.INGEST: StepLimits(timeout=60, visibility=360),
        Step.VARIANTS: StepLimits(timeout=120, visibility=720),
        Step.EDIT: StepLimits(timeout=900, visibility=1000, retry_delay=900),
    },
    attempts=3,
)


def job(status: JobStatus, **tasks: TaskStatus) -> Job:
    return Job(
        job_id="0" * 32,
        status=status,
        created_at=NOW - 100,
        updated_at=NOW,
        expires_at=NOW + 86400,
        tasks={name: Task(status=task_status, attempts=2) for name, task_status in tasks.items()},
    )


def test_given_a_step_then_each_attempt_holds_its_message_for_the_visibility_or_the_run_plus_its_delay() -> None:
    # Ingest: the visibility timeout (360 s) outlasts the run; 3 attempts and the margin.
    assert DEADLINES.budget(Step.INGEST) == 3 * 360 + MARGIN_SECONDS
    # Edit: a run of 900 s then a backoff of up to 900 s is longer than the visibility (1000 s).
    assert DEADLINES.budget(Step.EDIT) == 3 * (900 + 900) + MARGIN_SECONDS


def test_given_a_job_waiting_for_its_upload_then_it_is_overdue_when_its_form_expired() -> None:
    waiting = job(JobStatus.AWAITING_UPLOAD).model_copy(update={"upload_expires_at": NOW + 900})
    assert DEADLINES.overdue_at(waiting) == NOW + 900 + UPLOAD_GRACE_SECONDS


@pytest.mark.parametrize("status", [JobStatus.VALIDATING, JobStatus.AWAITING_UPLOAD])
def test_given_a_job_being_validated_then_it_is_overdue_when_ingest_gave_up(status: JobStatus) -> None:
    # A drop's job waits for no form: it is created as ingest starts on it.
    assert DEADLINES.overdue_at(job(status, **{"edit-1": TaskStatus.PENDING})) == NOW + DEADLINES.budget(Step.INGEST)


def test_given_open_tasks_then_the_slowest_open_step_counts_and_finished_ones_do_not() -> None:
    both = job(JobStatus.PROCESSING, variants=TaskStatus.RUNNING, **{"edit-1": TaskStatus.PENDING})
    variants_only = job(JobStatus.PROCESSING, variants=TaskStatus.RUNNING, **{"edit-1": TaskStatus.SUCCEEDED})

    assert DEADLINES.overdue_at(both) == NOW + DEADLINES.budget(Step.EDIT)
    assert DEADLINES.overdue_at(variants_only) == NOW + DEADLINES.budget(Step.VARIANTS)


def test_given_a_settled_job_then_only_an_edit_still_open_gives_it_a_deadline() -> None:
    assert DEADLINES.overdue_at(job(JobStatus.SUCCEEDED, variants=TaskStatus.SUCCEEDED)) is None
    settled_with_edit = job(JobStatus.SUCCEEDED, variants=TaskStatus.SUCCEEDED, **{"edit-1": TaskStatus.RUNNING})
    assert DEADLINES.overdue_at(settled_with_edit) == NOW + DEADLINES.budget(Step.EDIT)
    assert DEADLINES.overdue_at(job(JobStatus.REJECTED)) is None


def test_given_a_processing_job_whose_tasks_all_finished_then_it_is_overdue_to_settle_after_a_margin() -> None:
    done = job(JobStatus.PROCESSING, variants=TaskStatus.SUCCEEDED)
    assert DEADLINES.overdue_at(done) == NOW + MARGIN_SECONDS


def test_given_any_step_then_a_write_records_no_later_than_the_job_it_leaves_is_due() -> None:
    # A write to the variants task of a job with an open edit records the variants' deadline: earlier
    # than the job's (the sweep comes by, finds it not due and records the exact one), never later.
    both = job(JobStatus.PROCESSING, variants=TaskStatus.RUNNING, **{"edit-1": TaskStatus.PENDING})
    due = DEADLINES.overdue_at(both)
    assert due is not None
    assert DEADLINES.hint(Step.VARIANTS, NOW) <= due
    assert DEADLINES.hint(Step.EDIT, NOW) <= due


def test_given_the_template_defaults_then_the_deadlines_follow_the_settings() -> None:
    settings = Settings(jobs_table="t", uploads_bucket="u", media_bucket="m")
    deadlines = Deadlines.from_settings(settings)
    assert deadlines.attempts == settings.max_receive_count
    edit = deadlines.steps[Step.EDIT]
    assert (edit.timeout, edit.visibility, edit.retry_delay) == (900, 5400, 900)
    # 5 attempts of 12 minutes each, and the margin: an hour and 5 minutes.
    assert deadlines.budget(Step.VARIANTS) == 5 * 720 + MARGIN_SECONDS


@pytest.mark.parametrize(
    ("stuck", "message"),
    [
        (job(JobStatus.PROCESSING, variants=TaskStatus.RUNNING), "the variants step gave up after 2 attempts"),
        (
            job(JobStatus.PROCESSING, variants=TaskStatus.SUCCEEDED, **{"edit-0123456789ab": TaskStatus.RUNNING}),
            "the edit step (0123456789ab) gave up after 2 attempts",
        ),
        (job(JobStatus.VALIDATING), "the ingest step gave up: the upload was never validated"),
    ],
)
def test_given_a_stuck_job_then_its_message_says_which_step_gave_up(stuck: Job, message: str) -> None:
    assert gave_up_message(stuck) == message
