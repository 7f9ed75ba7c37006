"""All access to JobsTable. Every change of a job is one conditional UpdateItem on the states that allow
it, bumps `version`, and returns the job as stored afterwards.

The table holds two kinds of item, told apart by `pk`: a job (`pk` = its id) and, per uploaded object
key, the newest S3 `sequencer` seen for it (`pk` = `object#<bucket>/<key>`), which orders overwrites.

A job with something still open (its upload, its validation, a task) carries `overdue_shard` and
`overdue_at`, which put it in the sparse `overdue-index` that the sweep reads (imgflow.sweep). A write
that leaves something open records when the job is overdue if nothing moves after it, never later than
`Deadlines.overdue_at` says (the sweep sets that exactly when it comes by early); a write that ends
everything removes both.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from imgflow.errors import JobNotFoundError, TransitionRejectedError
from imgflow.models import (
    TERMINAL_STATUSES,
    Edit,
    EditFeedback,
    ImageInfo,
    Job,
    JobError,
    JobStatus,
    Placeholder,
    SourceObject,
    Task,
    TaskStatus,
    Variant,
    edit_task_name,
    open_tasks,
)
from imgflow.overdue import MARGIN_SECONDS, Deadlines, Step, step_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

NON_TERMINAL = frozenset(JobStatus) - TERMINAL_STATUSES
PROCESSING_ONLY = frozenset({JobStatus.PROCESSING})
# Edits may be added to, and run on, a job that has settled: its status stays, its version grows.
EDIT_RUNNABLE = frozenset({JobStatus.PROCESSING, JobStatus.SUCCEEDED, JobStatus.FAILED})
EDITABLE = EDIT_RUNNABLE | {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}
OVERDUE_INDEX = "overdue-index"
OWNER_INDEX = "owner-index"
_OVERDUE_SHARD = "overdue_shard"
_OVERDUE_AT = "overdue_at"
_NOTHING_OPEN = (_OVERDUE_SHARD, _OVERDUE_AT)
# Ending a job reads it, then writes on the condition that it is still the version read; a write between
# (an edit added) makes it read again. Writes to one job are few: a handful of rounds settles it.
_END_ROUNDS = 5
# S3 sequencers are hex strings of varying length: right-padded they compare as the S3 docs prescribe.
_SEQUENCER_WIDTH = 64


def _tombstone(job_id: str) -> str:
    return f"deleted#{job_id}"


def sequencer_order_key(sequencer: str) -> str:
    return sequencer.upper().ljust(_SEQUENCER_WIDTH, "0")


class JobStore:
    def __init__(self, table: Table, deadlines: Deadlines, clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._deadlines = deadlines
        self._clock = clock

    def now(self) -> int:
        return int(self._clock())

    # --- reads -------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        item = self._table.get_item(Key={"pk": job_id}, ConsistentRead=True).get("Item")
        return Job.model_validate(item) if item else None

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def list_for_owner(
        self, owner: str, limit: int, after: Mapping[str, Any] | None = None, status: JobStatus | None = None
    ) -> tuple[list[Job], dict[str, Any] | None]:
        """One page of the owner's jobs, newest first, and the key to continue after (None at the end).

        A status filter applies after the page is read, as DynamoDB filters do: a page may hold fewer than
        `limit` jobs (even none) while more follow."""
        arguments: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": owner},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if after:
            arguments["ExclusiveStartKey"] = dict(after)
        if status is not None:
            arguments["FilterExpression"] = "#status = :status"
            arguments["ExpressionAttributeNames"]["#status"] = "status"
            arguments["ExpressionAttributeValues"][":status"] = status.value
        response = self._table.query(**arguments)
        jobs = [Job.model_validate(item) for item in response.get("Items", [])]
        return jobs, response.get("LastEvaluatedKey")

    def created_since(self, since: int, owner: str | None, limit: int) -> tuple[list[Job], bool]:
        """Jobs created at or after `since` (the owner's, or everyone's), at most `limit`; and whether more
        were left out. The owner's come from the owner index; everyone's from a scan, for operators."""
        jobs: list[Job] = []
        arguments: dict[str, Any] = {"ExpressionAttributeValues": {":since": since}}
        if owner is not None:
            arguments |= {
                "IndexName": OWNER_INDEX,
                "KeyConditionExpression": "#owner = :owner AND created_at >= :since",
                "ExpressionAttributeNames": {"#owner": "owner"},
            }
            arguments["ExpressionAttributeValues"][":owner"] = owner
        else:
            # Quota counters and tombstones share the table: a job is what has a job_id.
            arguments["FilterExpression"] = "created_at >= :since AND attribute_exists(job_id)"
        while True:
            response: Any = self._table.query(**arguments) if owner is not None else self._table.scan(**arguments)
            jobs += [Job.model_validate(item) for item in response.get("Items", [])]
            if len(jobs) > limit:
                return jobs[:limit], True
            if "LastEvaluatedKey" not in response:
                return jobs, False
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete(self, job_id: str, owner: str, remember_until: int) -> Job | None:
        """Remove the job's item; the job as it was, or None when it is not there (or not the owner's).

        A tombstone (`pk` = `deleted#<job id>`) stays until `remember_until`: the job's presigned form may
        still be used, and ingest must then remove the upload rather than take it for a drop of its own. It
        keeps the owner (not as `owner`, which would list it in the owner index), whose prefix holds the keys
        a task still running may write to."""
        try:
            response = self._table.delete_item(
                Key={"pk": job_id},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": owner},
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        item = response.get("Attributes")
        if not item:
            return None
        self._table.put_item(Item={"pk": _tombstone(job_id), "expires_at": remember_until, "deleted_owner": owner})
        return Job.model_validate(item)

    def deleted_owner(self, job_id: str) -> str | None:
        """The owner of a job deleted lately (see `delete`), or None when no such job was deleted."""
        item = self._table.get_item(Key={"pk": _tombstone(job_id)}, ConsistentRead=True).get("Item")
        return str(item["deleted_owner"]) if item else None

    # --- creation ----------------------------------------------------------------------------------

    def create(self, job: Job) -> bool:
        """Store a new job; False when a job with that id exists already (a redelivered drop)."""
        item = {"pk": job.job_id, **_to_item_value(job)}
        overdue_at = self._deadlines.overdue_at(job)
        if overdue_at is not None:
            item |= {_OVERDUE_SHARD: "0", _OVERDUE_AT: overdue_at}
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def overdue(self, now: int, limit: int = 100) -> list[str]:
        """Ids of jobs whose recorded `overdue_at` has passed, the most overdue first."""
        response = self._table.query(
            IndexName=OVERDUE_INDEX,
            KeyConditionExpression="#shard = :shard AND #overdue < :now",
            ExpressionAttributeNames={"#shard": _OVERDUE_SHARD, "#overdue": _OVERDUE_AT},
            ExpressionAttributeValues={":shard": "0", ":now": now},
            Limit=limit,
        )
        return [str(item["pk"]) for item in response.get("Items", [])]

    def reschedule(self, job: Job, overdue_at: int | None) -> bool:
        """Record when `job` (as read) is overdue, or that nothing of it is open; False when it has moved
        since. Not a change of the job: its version stays."""
        names = {"#version": "version", "#shard": _OVERDUE_SHARD, "#overdue": _OVERDUE_AT}
        values: dict[str, Any] = {":version": job.version}
        if overdue_at is None:
            expression = "REMOVE #shard, #overdue"
        else:
            expression = "SET #shard = :shard, #overdue = :overdue"
            values |= {":shard": "0", ":overdue": overdue_at}
        try:
            self._table.update_item(
                Key={"pk": job.job_id},
                UpdateExpression=expression,
                ConditionExpression="#version = :version",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def claim_object(self, bucket: str, key: str, sequencer: str, job_id: str) -> bool:
        """Record `sequencer` as the newest write of the key; False when a newer write was seen already.

        An equal sequencer is the same write delivered again: it may proceed (its processing is idempotent).
        """
        order_key = sequencer_order_key(sequencer)
        try:
            self._table.update_item(
                Key={"pk": f"object#{bucket}/{key}"},
                UpdateExpression="SET #seq = :seq, #job = :job, #exp = :exp",
                ConditionExpression="attribute_not_exists(#seq) OR #seq <= :seq",
                ExpressionAttributeNames={"#seq": "sequencer", "#job": "job_id", "#exp": "expires_at"},
                ExpressionAttributeValues={":seq": order_key, ":job": job_id, ":exp": self.now() + 7 * 86400},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # --- job transitions ---------------------------------------------------------------------------

    def start_validation(self, job_id: str, source: SourceObject) -> Job:
        return self._update(
            job_id,
            "start_validation",
            {"status": JobStatus.VALIDATING, "source": source},
            # validating again is how a retry after a crash resumes; duplicates never get here.
            allowed={JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING},
            overdue_at=self._deadlines.hint(Step.INGEST, self.now()),
        )

    def accept(self, job_id: str, image: ImageInfo, tasks: Mapping[str, Task]) -> Job:
        return self._update(
            job_id,
            "accept",
            # Per task, so that the tasks of edits asked for with the upload stay.
            {"status": JobStatus.PROCESSING, "image": image, **{f"tasks.{name}": task for name, task in tasks.items()}},
            allowed={JobStatus.VALIDATING},
            overdue_at=min(self._deadlines.hint(step_of(name), self.now()) for name in tasks),
        )

    def reject(self, job_id: str, error: JobError) -> Job:
        """End a job whose upload is not an acceptable image; its open tasks (edits asked with the upload,
        including one added meanwhile) end with it, as they will never run."""
        not_run = JobError(code="edit_failed", message=f"not run: the upload was rejected ({error.code})")
        return self._end(
            job_id, "reject", JobStatus.REJECTED, {JobStatus.AWAITING_UPLOAD, JobStatus.VALIDATING}, not_run, error
        )

    def expire(self, job_id: str) -> Job:
        not_run = JobError(code="edit_failed", message="not run: no upload arrived before the form expired")
        return self._end(job_id, "expire", JobStatus.EXPIRED, {JobStatus.AWAITING_UPLOAD}, not_run)

    def fail(self, job_id: str, error: JobError, *, gave_up: bool = False) -> Job:
        """End a job that cannot go on, from any state that is not terminal yet, and every task still open;
        `gave_up`: because its step's retries ran out (a redrive may take it up again, see `reopen`)."""
        not_run = JobError(code="internal_error", message=f"not run: the job failed ({error.message})")
        return self._end(job_id, "fail", JobStatus.FAILED, NON_TERMINAL, not_run, error, gave_up=gave_up)

    def settle(self, job: Job, status: JobStatus, error: JobError | None = None) -> Job:
        """Settle a processing job as read, whose tasks have all finished; TransitionRejectedError when it
        changed since (settled elsewhere, or an edit was added, which the job now waits for)."""
        changes: dict[str, Any] = {"status": status}
        if error is not None:
            changes["error"] = error
        return self._update(
            job.job_id,
            f"settle as {status}",
            changes,
            allowed={JobStatus.PROCESSING},
            conditions=[("version", "=", job.version)],
            removes=_NOTHING_OPEN,
        )

    def give_up(self, job: Job, error: JobError | None, task_errors: Mapping[str, JobError]) -> Job:
        """What the sweep writes once a job's step gave up: the open tasks failed with their errors (marked
        `gave_up`), and the job failed with `error` unless it had settled before; on the condition that the
        job is still the version the sweep read, so that it is written once and a late finish wins."""
        changes: dict[str, Any] = {}
        for task, task_error in task_errors.items():
            changes |= {
                f"tasks.{task}.status": TaskStatus.FAILED,
                f"tasks.{task}.stage": "gave up",
                f"tasks.{task}.error": task_error,
                f"tasks.{task}.gave_up": True,
            }
        if error is not None:
            changes |= {"status": JobStatus.FAILED, "error": error, "gave_up": True}
        return self._update(
            job.job_id,
            "give up",
            changes,
            allowed={job.status},
            conditions=[("version", "=", job.version)],
            removes=_NOTHING_OPEN,
        )

    def reopen(self, job: Job, task: str | None = None) -> Job:
        """Open again what failed because its step gave up, for the step's message has come back (redriven
        from the dead-letter queue, or late): `task`, and a failed job goes back to processing with it (it
        settles again once its tasks have finished); or (no `task`) the ingest step, whose job goes back to
        validating with the edits it closed. Permanent failures never reopen: only what is marked `gave_up`
        does, and only as the job was read."""
        tasks = [task] if task else [name for name, open_task in job.tasks.items() if open_task.gave_up]
        changes: dict[str, Any] = {}
        removes: tuple[str, ...] = ()
        for name in tasks:
            changes |= {
                f"tasks.{name}.status": TaskStatus.PENDING,
                f"tasks.{name}.stage": "redriven",
                f"tasks.{name}.gave_up": False,
            }
            removes += (f"tasks.{name}.error",)
        if job.status is JobStatus.FAILED and (task is not None or job.gave_up):
            changes |= {"status": JobStatus.PROCESSING if task else JobStatus.VALIDATING, "gave_up": False}
            removes += ("error",)
        return self._update(
            job.job_id,
            f"reopen {task or 'validation'}",
            changes,
            allowed={job.status},
            conditions=[("version", "=", job.version)],
            removes=removes,
            overdue_at=self._deadlines.hint(step_of(task) if task else Step.INGEST, self.now()),
        )

    def _end(
        self,
        job_id: str,
        action: str,
        status: JobStatus,
        allowed: frozenset[JobStatus] | set[JobStatus],
        task_error: JobError,
        error: JobError | None = None,
        *,
        gave_up: bool = False,
    ) -> Job:
        """End a job and close every task open in it, in one write on the condition that the job is the
        version read: a task added meanwhile makes it read again and close that one too."""
        for _ in range(_END_ROUNDS):
            job = self.get(job_id)
            if job is None or job.status not in allowed:
                raise TransitionRejectedError(job_id, action)
            changes: dict[str, Any] = {"status": status, **_closed(open_tasks(job), task_error, gave_up=gave_up)}
            if error is not None:
                changes["error"] = error
            if gave_up:
                changes["gave_up"] = True
            try:
                return self._update(
                    job_id,
                    action,
                    changes,
                    allowed=allowed,
                    conditions=[("version", "=", job.version)],
                    removes=_NOTHING_OPEN,
                )
            except TransitionRejectedError:
                continue
        raise TransitionRejectedError(job_id, action)

    def add_edits(
        self, job_id: str, edits: Sequence[Edit], *, parent_task: str | None = None, max_edits: int | None = None
    ) -> Job:
        """Record new edits and their tasks on a job that can still take them: fewer than `max_edits` edits
        so far, and the task they build on (`parent_task`) not failed, both checked in the same write."""
        changes: dict[str, Any] = {}
        for edit in edits:
            changes[f"edits.{edit.edit_id}"] = edit
            changes[f"tasks.{edit_task_name(edit.edit_id)}"] = Task()
        conditions: list[tuple[str, str, Any]] = []
        if parent_task is not None:
            conditions.append((f"tasks.{parent_task}.status", "<>", TaskStatus.FAILED.value))
        if max_edits is not None:
            conditions.append(("size(edits)", "<=", max_edits - len(edits)))
        return self._update(
            job_id,
            "add edits",
            changes,
            allowed=EDITABLE,
            conditions=conditions,
            # A job that has something open keeps its deadline (an upload's expiry, above all); a settled
            # one gets the edit's.
            overdue_at=self._deadlines.hint(Step.EDIT, self.now()),
            overdue_if_unset=True,
        )

    def give_feedback(self, job_id: str, owner: str, edit_id: str, feedback: EditFeedback) -> Job:
        """Record (or replace) the owner's feedback on an edit whose task has finished, in whatever state
        the job is; TransitionRejectedError when the job is not the owner's or the edit is still open."""
        task = f"tasks.{edit_task_name(edit_id)}.status"
        return self._update(
            job_id,
            f"feedback on edit {edit_id}",
            {f"edits.{edit_id}.feedback": feedback},
            allowed=set(JobStatus),
            conditions=[
                ("owner", "=", owner),
                (task, "<>", TaskStatus.PENDING.value),
                (task, "<>", TaskStatus.RUNNING.value),
            ],
        )

    # --- task progress -----------------------------------------------------------------------------

    def start_task(
        self, job_id: str, task: str, stage: str, progress: int, *, allowed: Iterable[JobStatus] = PROCESSING_ONLY
    ) -> Job:
        return self._update(
            job_id,
            f"start task {task}",
            {
                f"tasks.{task}.status": TaskStatus.RUNNING,
                f"tasks.{task}.stage": stage,
                f"tasks.{task}.progress": progress,
            },
            allowed=allowed,
            increments={f"tasks.{task}.attempts": 1},
            task_open=task,
            overdue_at=self._deadlines.hint(step_of(task), self.now()),
        )

    def progress_task(
        self,
        job_id: str,
        task: str,
        stage: str,
        progress: int,
        *,
        variant: Variant | None = None,
        placeholder: Placeholder | None = None,
        allowed: Iterable[JobStatus] = PROCESSING_ONLY,
    ) -> Job:
        changes: dict[str, Any] = {f"tasks.{task}.stage": stage, f"tasks.{task}.progress": progress}
        changes |= _recorded(variant)
        if placeholder is not None:
            changes["placeholder"] = placeholder
        return self._update(
            job_id,
            f"progress task {task}",
            changes,
            allowed=allowed,
            task_open=task,
            overdue_at=self._deadlines.hint(step_of(task), self.now()),
        )

    def finish_task(
        self,
        job_id: str,
        task: str,
        error: JobError | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        variant: Variant | None = None,
        allowed: Iterable[JobStatus] = PROCESSING_ONLY,
        gave_up: bool = False,
    ) -> Job:
        """Close a task, with what else changes with it (e.g. an edit's result, the task's last `variant`) in
        the same write; `gave_up`: failed because its step's retries ran out (a redrive runs it again, see
        `reopen`)."""
        changes: dict[str, Any] = {
            **(extra or {}),
            **_recorded(variant),
            f"tasks.{task}.status": TaskStatus.FAILED if error else TaskStatus.SUCCEEDED,
            f"tasks.{task}.stage": "failed" if error else "done",
        }
        if error is None:
            changes[f"tasks.{task}.progress"] = 100
        else:
            changes[f"tasks.{task}.error"] = error
        if gave_up:
            changes[f"tasks.{task}.gave_up"] = True
        return self._update(
            job_id,
            f"finish task {task}",
            changes,
            allowed=allowed,
            task_open=task,
            # The job settles next, or waits for its other tasks: the sweep sees which, and when.
            overdue_at=self.now() + MARGIN_SECONDS,
        )

    # --- the one write path ------------------------------------------------------------------------

    def _update(
        self,
        job_id: str,
        action: str,
        changes: Mapping[str, Any],
        *,
        allowed: Iterable[JobStatus],
        increments: Mapping[str, int] | None = None,
        task_open: str | None = None,
        removes: tuple[str, ...] = (),
        conditions: Sequence[tuple[str, str, Any]] = (),
        overdue_at: int | None = None,
        overdue_if_unset: bool = False,
    ) -> Job:
        names: dict[str, str] = {"#status": "status", "#version": "version", "#updated": "updated_at"}
        values: dict[str, Any] = {":one": 1, ":now": self.now()}
        sets = ["#version = #version + :one", "#updated = :now"]
        if overdue_at is not None:
            names |= {"#overdue_shard": _OVERDUE_SHARD, "#overdue_at": _OVERDUE_AT}
            values |= {":overdue_shard": "0", ":overdue_at": overdue_at}
            at = "if_not_exists(#overdue_at, :overdue_at)" if overdue_if_unset else ":overdue_at"
            sets += ["#overdue_shard = :overdue_shard", f"#overdue_at = {at}"]
        for index, (path, value) in enumerate(changes.items()):
            sets.append(f"{_path(path, names)} = :v{index}")
            values[f":v{index}"] = _to_item_value(value)
        for index, (path, amount) in enumerate((increments or {}).items()):
            placeholder = _path(path, names)
            sets.append(f"{placeholder} = if_not_exists({placeholder}, :zero) + :i{index}")
            values[f":i{index}"] = amount
            values[":zero"] = 0
        allowed_placeholders = []
        for index, status in enumerate(sorted(allowed)):
            values[f":s{index}"] = str(status)
            allowed_placeholders.append(f":s{index}")
        condition = f"attribute_exists(pk) AND #status IN ({', '.join(allowed_placeholders)})"
        if task_open is not None:
            # A task that has finished never changes again, like a terminal job.
            task_status = _path(f"tasks.{task_open}.status", names)
            values[":task_pending"], values[":task_running"] = (
                TaskStatus.PENDING.value,
                TaskStatus.RUNNING.value,
            )
            condition += f" AND {task_status} IN (:task_pending, :task_running)"
        for index, (path, operator, operand) in enumerate(conditions):
            # `size(path)` is DynamoDB's function on an attribute path; other paths are compared as they are.
            function, _, inner = path.partition("(") if path.startswith("size(") else ("", "", path)
            placeholder = _path(inner.rstrip(")"), names)
            left = f"size({placeholder})" if function else placeholder
            values[f":c{index}"] = operand
            condition += f" AND {left} {operator} :c{index}"
        try:
            response = self._table.update_item(
                Key={"pk": job_id},
                UpdateExpression="SET "
                + ", ".join(sets)
                + (" REMOVE " + ", ".join(_path(path, names) for path in removes) if removes else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                raise TransitionRejectedError(job_id, action) from error
            raise
        return Job.model_validate(response["Attributes"])


def _recorded(variant: Variant | None) -> dict[str, Any]:
    """The change that records a variant on its job (none for None)."""
    return {f"variants.{variant.slot}": variant} if variant is not None else {}


def _closed(tasks: Iterable[str], error: JobError, *, gave_up: bool = False) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for task in tasks:
        changes[f"tasks.{task}.status"] = TaskStatus.FAILED
        changes[f"tasks.{task}.stage"] = "not run"
        changes[f"tasks.{task}.error"] = error
        if gave_up:
            changes[f"tasks.{task}.gave_up"] = True
    return changes


def _path(dotted: str, names: dict[str, str]) -> str:
    parts = []
    for part in dotted.split("."):
        placeholder = f"#p{len(names)}"
        for existing, name in names.items():
            if name == part:
                placeholder = existing
                break
        else:
            names[placeholder] = part
        parts.append(placeholder)
    return ".".join(parts)


def _to_item_value(value: Any) -> Any:
    """A model or value as DynamoDB stores it: JSON types, with numbers that are not integers as Decimal."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: _to_item_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_item_value(v) for v in value]
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):  # StrEnum members become plain strings
        return str(value)
    return value


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
