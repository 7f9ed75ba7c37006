"""Unit tests of the stats figures: what a set of jobs adds up to."""

from __future__ import annotations

from imgflow.models import (
    Edit,
    EditFeedback,
    EditSpec,
    Job,
    JobError,
    JobStatus,
    Task,
    TaskStatus,
    edit_task_name,
)
from imgflow.stats import job_figures, percentile


def _job(number: int, status: JobStatus, seconds: int, **changes: object) -> Job:
    return Job.model_validate(
        {
            "job_id": f"{number:032x}",
            "owner": "alice",
            "status": status,
            "created_at": 1000,
            "updated_at": 1000 + seconds,
            "expires_at": 9_999_999,
            **changes,
        }
    )


def _edit(edit_id: str, kind_spec: dict[str, object], calls: int, ms: int | None, rating: str | None = None) -> Edit:
    feedback = EditFeedback.model_validate({"rating": rating, "given_at": 1}) if rating else None
    return Edit(
        edit_id=edit_id,
        spec=EditSpec.model_validate(kind_spec),
        created_at=1,
        provider_calls=calls,
        duration_ms=ms,
        feedback=feedback,
    )


def test_given_values_then_the_nearest_rank_percentile_is_taken() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([5, 1, 3], 0.5) == 3


def test_given_jobs_then_the_figures_add_up_by_status_code_kind_and_rating() -> None:
    prompt = _edit("a" * 12, {"kind": "prompt", "prompt": "make it blue"}, calls=2, ms=4000, rating="down")
    recipe = _edit("b" * 12, {"kind": "recipe", "operations": [{"op": "grayscale"}]}, calls=0, ms=100, rating="up")
    failed_edit = JobError(code="provider_unavailable", message="no key")
    jobs = [
        _job(
            1,
            JobStatus.SUCCEEDED,
            2,
            edits={recipe.edit_id: recipe},
            tasks={edit_task_name(recipe.edit_id): Task(status=TaskStatus.SUCCEEDED)},
        ),
        _job(
            2,
            JobStatus.FAILED,
            10,
            error=failed_edit,
            edits={prompt.edit_id: prompt},
            tasks={edit_task_name(prompt.edit_id): Task(status=TaskStatus.FAILED, error=failed_edit)},
        ),
        _job(3, JobStatus.REJECTED, 1, error=JobError(code="too_complex", message="bomb")),
        _job(4, JobStatus.PROCESSING, 50),
    ]

    figures = job_figures(jobs, cost_per_call=0.04)

    assert figures.uploads == 4
    assert figures.jobs_by_status == {"succeeded": 1, "failed": 1, "rejected": 1, "processing": 1}
    assert figures.errors_by_code == {"provider_unavailable": 1, "too_complex": 1}  # the edit's error counts once
    assert figures.edits_by_kind == {"recipe": 1, "prompt": 1}
    assert figures.edits_by_status == {"succeeded": 1, "failed": 1}
    assert (figures.provider_calls, figures.spend_estimate_usd) == (2, 0.08)
    assert figures.feedback == {"up": 1, "down": 1}
    assert (figures.job_seconds_p50, figures.job_seconds_p95) == (2, 10)  # only ended jobs
    assert (figures.edit_ms_p50, figures.edit_ms_p95) == (100, 4000)


def test_given_no_jobs_then_the_figures_are_zero_and_no_percentiles() -> None:
    figures = job_figures([], cost_per_call=0.04)
    assert (figures.uploads, figures.provider_calls, figures.job_seconds_p50) == (0, 0, None)
    assert figures.feedback == {"up": 0, "down": 0}
