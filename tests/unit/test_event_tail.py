"""Unit tests of `imgflow events`: filtering, the order events are printed in, and the line a person reads."""

from __future__ import annotations

from typing import Any

from imgflow_local.event_tail import EventFilter, Reorderer, describe


def _event(job: str, version: int, detail_type: str = "Job Accepted", **detail: Any) -> dict[str, Any]:
    return {
        "detail-type": detail_type,
        "time": "2026-12-01T10:00:00Z",
        "detail": {"job_id": job, "version": version, **detail},
    }


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_given_events_out_of_order_then_each_job_is_released_in_version_order_after_settling() -> None:
    clock = _Clock()
    reorder = Reorderer(settle=1.0, clock=clock)
    reorder.add([_event("a", 3), _event("b", 1)])
    assert reorder.release() == []  # still settling

    clock.now = 0.5
    reorder.add([_event("a", 2)])  # a smaller version of a held job arrives late
    clock.now = 1.0
    released = reorder.release()

    assert [(e["detail"]["job_id"], e["detail"]["version"]) for e in released] == [("a", 2), ("a", 3), ("b", 1)]
    assert reorder.release(everything=True) == []


def test_given_a_filter_then_it_matches_job_and_types_and_makes_the_same_eventbridge_pattern() -> None:
    only = EventFilter(job_id="a", types=frozenset({"Job Succeeded"}))
    assert only.matches(_event("a", 4, "Job Succeeded"))
    assert not only.matches(_event("a", 4, "Job Accepted"))
    assert not only.matches(_event("b", 4, "Job Succeeded"))
    assert EventFilter().matches(_event("z", 1))
    assert only.pattern() == {"source": ["imgflow"], "detail-type": ["Job Succeeded"], "detail": {"job_id": ["a"]}}
    assert EventFilter().pattern() == {"source": ["imgflow"]}


def test_given_events_then_one_line_says_what_matters_of_each() -> None:
    rejected = describe(_event("a", 2, "Job Rejected", error={"code": "too_complex", "message": "a scan bomb"}))
    accepted = describe(_event("a", 2, image={"format": "JPEG", "width": 640, "height": 480}))
    assert "Job Rejected" in rejected
    assert rejected.endswith("too_complex: a scan bomb")
    assert "v2" in rejected
    assert accepted.endswith("JPEG 640x480")
