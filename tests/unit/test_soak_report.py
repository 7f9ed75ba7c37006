"""`imgflow soak`'s judgement: the inputs a seed draws, and what counts as lost, duplicated or unannounced
when a soak's outcomes are compared with the clean run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from imgflow.event_models import S3Notification
from imgflow_local.runtime import RuntimeOptions
from imgflow_local.soak import MIX, Outcome, Report, Sample, Soak, Upload, draw, poison_bodies

PHOTO = Sample(Path("photo.jpg"))
EDITED = Sample(Path("photo.jpg"), ({"operations": [{"op": "grayscale"}]},))
HOSTILE = Sample(Path("broken.png"))

REFERENCE = {
    PHOTO.name: Outcome(
        "succeeded", tasks={"variants": "succeeded"}, objects={"MediaBucket:jobs/variants/thumb.webp": "a"}
    ),
    EDITED.name: Outcome(
        "succeeded",
        tasks={"variants": "succeeded", "edit-e1": "succeeded"},
        objects={"MediaBucket:jobs/variants/thumb.webp": "a", "MediaBucket:jobs/edits/edit-1.webp": "b"},
    ),
    HOSTILE.name: Outcome("rejected", error="corrupt_image"),
}
ALL_EVENTS = {
    ("j1", "Job Succeeded", ""),
    ("j1", "Variants Ready", ""),
    ("j2", "Job Succeeded", ""),
    ("j2", "Variants Ready", ""),
    ("j2", "Edit Succeeded", "e1"),
    ("j3", "Job Rejected", ""),
}


def check(
    outcomes: dict[str, Outcome], events: set[tuple[str, str, str]] = ALL_EVENTS, strays: list[str] | None = None
) -> Report:
    uploads = [
        Upload(PHOTO, "o", "j1"),
        Upload(EDITED, "o", "j2"),
        Upload(HOSTILE, "o", "j3"),
        Upload(PHOTO, "o", refused="quota_exceeded"),
    ]
    soak = Soak(RuntimeOptions(template=Path("template.yaml")), uploads=4, concurrency=1, seed=1, patience=1, say=print)
    return soak._check(uploads, outcomes, strays or [], REFERENCE, events)


def clean() -> dict[str, Outcome]:
    return {"j1": REFERENCE[PHOTO.name], "j2": REFERENCE[EDITED.name], "j3": REFERENCE[HOSTILE.name]}


def test_given_a_seed_then_the_same_inputs_are_drawn_in_the_same_order_from_the_whole_mix() -> None:
    assert draw(300, seed=1) == draw(300, seed=1)
    assert draw(300, seed=1) != draw(300, seed=2)
    assert {sample.name for sample in draw(2000, seed=1)} == {sample.name for sample, _ in MIX}
    assert all(sample.path.is_file() for sample, _ in MIX)


def test_given_outcomes_like_the_clean_runs_then_the_soak_holds() -> None:
    report = check(clean())

    assert report.holds
    assert (report.uploads, report.terminal, report.lost, report.duplicated_outputs, report.events_missing) == (
        4,
        3,
        0,
        0,
        0,
    )
    assert report.by_status == {"refused": 1, "rejected": 1, "succeeded": 2}


def test_given_an_extra_object_or_other_content_then_each_counts_as_a_duplicated_output() -> None:
    outcomes = clean()
    outcomes["j1"] = Outcome(
        "succeeded",
        tasks={"variants": "succeeded"},
        objects={"MediaBucket:jobs/variants/thumb.webp": "other", "MediaBucket:jobs/variants/thumb-2.webp": "a"},
    )

    report = check(outcomes, strays=["media/jobs/x/unknown/original"])

    assert report.duplicated_outputs == 3
    assert not report.holds


def test_given_a_job_still_processing_or_with_an_open_task_then_it_is_lost() -> None:
    outcomes = clean()
    outcomes["j1"] = Outcome("processing", tasks={"variants": "running"})
    outcomes["j2"] = Outcome("succeeded", tasks={"variants": "succeeded", "edit-e1": "pending"})

    report = check(outcomes)

    assert (report.lost, report.terminal) == (2, 1)
    assert not report.holds


def test_given_an_ending_without_its_event_then_it_is_missing() -> None:
    report = check(clean(), events=ALL_EVENTS - {("j2", "Edit Succeeded", "e1"), ("j3", "Job Rejected", "")})

    assert report.events_missing == 2
    assert not report.holds


def test_given_a_job_that_failed_where_the_clean_run_succeeded_then_it_differs_but_the_soak_can_hold() -> None:
    outcomes = clean()
    outcomes["j1"] = Outcome("failed", error="internal_error", tasks={"variants": "failed"})

    report = check(outcomes, events=ALL_EVENTS | {("j1", "Job Failed", "")})

    assert report.differs_from_reference == 1
    assert report.holds


def test_given_poisoned_messages_then_each_is_told_apart_and_none_is_an_s3_notification() -> None:
    bodies = poison_bodies(4, seed=7)

    assert len(set(bodies)) == 4
    assert poison_bodies(4, seed=7) == bodies
    for body in bodies:
        with pytest.raises((ValidationError, json.JSONDecodeError)):
            S3Notification.model_validate(json.loads(body))


@pytest.mark.parametrize(("poison_missing", "unexpected"), [(1, 0), (0, 1)])
def test_given_a_dead_letter_queue_without_its_poison_or_with_more_then_the_soak_fails(
    poison_missing: int, unexpected: int
) -> None:
    report = check(clean())
    assert report.holds

    report.poisoned, report.poison_missing, report.dead_letters_unexpected = 1, poison_missing, unexpected

    assert not report.holds
