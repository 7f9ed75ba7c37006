"""`imgflow soak`: many uploads through the local runtime with faults injected, then a check that nothing
was lost, nothing was written twice and every ending was announced.

It first processes each distinct input once on a runtime without faults (the reference: each input's
status and the objects its job leaves, with their content hashes, relative to the job's prefix), then
starts the runtime with the faults and uploads N inputs drawn from a seeded mix exactly as clients do
(`POST /uploads`, then the presigned POST), waits until every job has ended or nothing has moved for
`--patience` seconds, and compares: the table (every job ended?), the buckets (an object the reference
does not have, or with other content, is a duplicated output), the runtime's record of lifecycle events
(every ending, and every task's, has its event) and the dead-letter queues.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests

from imgflow_client import ApiError, Client, ImgflowError, UploadRefusedError, declared_type
from imgflow_local.runtime import REGION, LocalRuntime, RuntimeOptions

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "images"
TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})
OPEN_TASK = frozenset({"pending", "running"})
# The event that announces each ending.
JOB_EVENT = {
    "succeeded": "Job Succeeded",
    "failed": "Job Failed",
    "rejected": "Job Rejected",
    "expired": "Job Expired",
}
EDIT_EVENT = {"succeeded": "Edit Succeeded", "failed": "Edit Failed"}
# Uploads per owner: each owner stays within the template's per-owner quotas (100 uploads an hour).
UPLOADS_PER_OWNER = 50
# How long to wait for an ending's event once no new event has come: they trail the writes they
# announce (the table's stream, the publisher, EventBridge, then the runtime's own queue).
EVENT_GRACE_SECONDS = 30
# A request's wait for the API: cold starts on a busy laptop take far longer than on Lambda.
HTTP_TIMEOUT = 120
# While waiting, the attributes that say whether a job ended or moved; about this many jobs are read a
# second (every two seconds at most), however many are still open.
_PROGRESS = "pk, #status, version, tasks"
_POLLED_PER_SECOND = 100
_POISON_QUEUE, _POISON_DLQ = "IngestQueue", "IngestDeadLetterQueue"
_BATCH_GET = 100  # BatchGetItem's most keys a call


@dataclass(frozen=True)
class Sample:
    """One kind of input: a file and the edits asked with its upload."""

    path: Path
    edits: tuple[dict[str, Any], ...] = ()

    @property
    def name(self) -> str:
        return self.path.name + ("+recipe" if self.edits else "")


_RECIPE = ({"operations": [{"op": "grayscale"}]},)
# Photos, a PNG with alpha, a still and two animations (GIF, WebP with alpha), some with a recipe edit
# (the edit function and its variants), and a quarter of hostile files from the bad-input corpus.
MIX: tuple[tuple[Sample, int], ...] = (
    (Sample(FIXTURES / "soak" / "friends_640.jpg"), 16),
    (Sample(FIXTURES / "soak" / "friends_640.jpg", _RECIPE), 6),
    (Sample(FIXTURES / "soak" / "sunset_640.jpg"), 14),
    (Sample(FIXTURES / "soak" / "goldfish_alpha_480.png"), 10),
    (Sample(FIXTURES / "soak" / "goldfish_alpha_480.png", _RECIPE), 4),
    (Sample(FIXTURES / "soak" / "sunset_320.gif"), 7),
    (Sample(FIXTURES / "animations" / "crossing_24_frames.gif"), 8),
    (Sample(FIXTURES / "animations" / "crossing_12_frames_alpha.webp"), 5),
    (Sample(FIXTURES / "bad-inputs" / "broken.png"), 3),
    (Sample(FIXTURES / "bad-inputs" / "truncated_jpeg.jpg"), 3),
    (Sample(FIXTURES / "bad-inputs" / "decompression_bomb.gif"), 3),
    (Sample(FIXTURES / "bad-inputs" / "png_decompression_dos.png"), 3),
    (Sample(FIXTURES / "bad-inputs" / "libtiff_segfault.tif"), 3),
    (Sample(FIXTURES / "bad-inputs" / "psd-oob-write-overflow.psd"), 3),
    (Sample(FIXTURES / "bad-inputs" / "pngtest_bad.png.bin"), 3),
    (Sample(FIXTURES / "heic-avif" / "declares_100000x100000.avif"), 3),
    (Sample(FIXTURES / "heic-avif" / "truncated.heic"), 2),
)


def draw(uploads: int, seed: int) -> list[Sample]:
    """The inputs of a soak: the same seed draws the same ones in the same order."""
    samples, weights = zip(*MIX, strict=True)
    return random.Random(seed).choices(samples, weights=weights, k=uploads)


@dataclass
class Upload:
    sample: Sample
    owner: str
    job_id: str | None = None
    refused: str | None = None  # why no job started (the API's or S3's error code)


@dataclass
class Outcome:
    """What one job left: its status and error, its tasks, and its objects (relative key -> SHA-256)."""

    status: str
    error: str | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    uploads: int
    terminal: int = 0
    lost: int = 0
    duplicated_outputs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, int] = field(default_factory=dict)
    # Messages sent to the ingest queue that no step can read (as a broken integration would send): they,
    # and only they, must end in a dead-letter queue.
    poisoned: int = 0
    poison_missing: int = 0  # poisoned messages not in the ingest queue's DLQ
    dead_letters_unexpected: int = 0  # messages in a DLQ that are not poisoned ones: something gave up
    events_missing: int = 0
    seconds: float = 0.0
    differs_from_reference: int = 0
    faults: str = ""
    seed: int = 0
    faults_injected: dict[str, dict[str, int]] = field(default_factory=dict)
    reference_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        nothing_lost = self.lost == 0 and self.duplicated_outputs == 0 and self.events_missing == 0
        return nothing_lost and self.poison_missing == 0 and self.dead_letters_unexpected == 0

    def summary(self) -> str:
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(self.by_status.items()))
        dlq = ", ".join(f"{queue} {n}" for queue, n in sorted(self.dlq.items()) if n) or "empty"
        injected = "; ".join(
            f"{function}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
            for function, kinds in self.faults_injected.items()
        )
        return "\n".join(
            [
                f"{self.uploads} uploads in {self.seconds:.0f} s (reference run {self.reference_seconds:.0f} s): "
                f"{self.terminal} ended ({statuses})",
                f"lost {self.lost}, duplicated outputs {self.duplicated_outputs}, events missing "
                f"{self.events_missing}, other outcome than the clean run {self.differs_from_reference}",
                f"dead-letter queues: {dlq} ({self.poisoned} poisoned, {self.poison_missing} of them missing, "
                f"{self.dead_letters_unexpected} other)",
                f"faults injected (seed {self.seed}): {injected or 'none'}",
                *self.problems,
                "the soak holds" if self.holds else "the soak FAILS",
            ]
        )


class Soak:
    """The reference run and the soak itself, each on a runtime of its own."""

    def __init__(
        self,
        options: RuntimeOptions,
        *,
        uploads: int,
        concurrency: int,
        seed: int,
        patience: float,
        say: Callable[[str], None],
        poison: int = 0,
    ) -> None:
        self.options = options
        self.uploads = uploads
        self.poison = poison
        self.concurrency = concurrency
        self.seed = seed
        self.patience = patience
        self.say = say

    def run(self) -> Report:
        inputs = draw(self.uploads, self.seed)
        # Made first, so that a SPEC naming a function the template lacks is refused before the clean run.
        faulted = LocalRuntime(self.options)
        started = time.monotonic()
        distinct = list({sample.name: sample for sample in inputs}.values())
        self.say(f"soak: reference run of {len(distinct)} distinct inputs, without faults")
        with LocalRuntime(dataclasses.replace(self.options, faults=None)) as runtime:
            reference_uploads = self._upload(runtime, distinct, owners=lambda _: "soak-reference")
            reference_outcomes, _ = self._settle(runtime, reference_uploads)
        if failed := [u for u in reference_uploads if u.refused and u.refused.startswith("connection_error")]:
            raise SystemExit(f"imgflow soak: the reference run could not upload: {failed[0].refused}")
        reference = {
            upload.sample.name: reference_outcomes.get(upload.job_id or "", Outcome(f"refused: {upload.refused}"))
            for upload in reference_uploads
        }
        reference_seconds = time.monotonic() - started

        started = time.monotonic()
        spec = self.options.faults
        self.say(f"soak: {self.uploads} uploads, {self.concurrency} at a time, with faults (seed {self.seed})")
        with faulted as runtime:
            poison = poison_bodies(self.poison, self.seed)
            self._send_poison(runtime, poison)
            uploads = self._upload(runtime, inputs, owners=lambda i: f"soak-{i // UPLOADS_PER_OWNER}")
            outcomes, strays = self._settle(runtime, uploads)
            events = self._await_events(runtime, outcomes)
            report = self._check(uploads, outcomes, strays, reference, events)
            dead = self._await_poison(runtime, poison)
            report.dlq = self._dead_letters(runtime)
            report.poisoned = len(poison)
            report.poison_missing = sum(1 for body in poison if not dead[body])
            # A poisoned message the faults delivered twice may be there twice: still poison.
            others = sum(n for queue, n in report.dlq.items() if queue != _POISON_DLQ)
            report.dead_letters_unexpected = others + sum(n for body, n in dead.items() if body not in poison)
            if report.poison_missing:
                report.problems.append(f"{report.poison_missing} poisoned message(s) never reached {_POISON_DLQ}")
            if report.dead_letters_unexpected:
                report.problems.append(f"{report.dead_letters_unexpected} message(s) in a DLQ that are not poison")
            report.faults_injected = runtime.faults.injected()
        report.seconds = round(time.monotonic() - started, 1)
        report.reference_seconds = round(reference_seconds, 1)
        report.seed = self.seed
        report.faults = spec.text if spec else ""
        return report

    # --- uploading, as clients do -------------------------------------------------------------------

    def _send_poison(self, runtime: LocalRuntime, bodies: list[str]) -> None:
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        url = sqs.get_queue_url(QueueName=runtime.stack.queue_name(_POISON_QUEUE))["QueueUrl"]
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        if bodies:
            self.say(f"soak: {len(bodies)} poisoned message(s) sent to {_POISON_QUEUE}")

    def _upload(self, runtime: LocalRuntime, samples: list[Sample], owners: Callable[[int], str]) -> list[Upload]:
        clients: dict[str, Client] = {}
        uploads = [Upload(sample, owners(index)) for index, sample in enumerate(samples)]
        for upload in uploads:
            if upload.owner not in clients:
                clients[upload.owner] = Client(runtime.api_url, runtime.token(upload.owner), timeout=HTTP_TIMEOUT)
        # The API's first container, before the clients all wait for it at once.
        requests.get(f"{runtime.api_url}/health", timeout=HTTP_TIMEOUT)
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(lambda upload: _send(clients[upload.owner], upload), uploads))
        self.say(
            f"soak: {sum(1 for u in uploads if u.job_id)} uploads sent, {sum(1 for u in uploads if u.refused)} refused"
        )
        return uploads

    # --- waiting -------------------------------------------------------------------------------------

    def _settle(self, runtime: LocalRuntime, uploads: list[Upload]) -> tuple[dict[str, Outcome], list[str]]:
        """Wait until every job has ended (and every task with it), or nothing moved for `patience` s;
        then each job's outcome, and the objects that belong to none of them."""
        session = boto3.session.Session(region_name=REGION)
        dynamodb = session.resource("dynamodb")
        table_name = runtime.stack.physical_id("JobsTable")
        wanted = {u.job_id for u in uploads if u.job_id}
        # The soak shares its process and the emulator with the runtime it watches: it reads only the jobs
        # still open, and of them only what says whether they moved (a scan of the whole table every
        # round cost more CPU than the pipeline itself at a thousand jobs).
        open_jobs, last_change, versions = set(wanted), time.monotonic(), dict[str, int]()
        while open_jobs:
            items = _get_jobs(dynamodb, table_name, open_jobs, projection=_PROGRESS)
            moved = {job_id: int(item.get("version", 0)) for job_id, item in items.items()}
            if moved != versions:
                versions, last_change = moved, time.monotonic()
            open_jobs = {job_id for job_id in open_jobs if not _ended(items.get(job_id))}
            if open_jobs and time.monotonic() - last_change > self.patience:
                self.say(f"soak: {len(open_jobs)} job(s) still open after {self.patience:.0f} s without a change")
                break
            if open_jobs:
                time.sleep(max(2.0, len(open_jobs) / _POLLED_PER_SECOND))
        items = _get_jobs(dynamodb, table_name, wanted)
        objects, strays = _objects(session, runtime, items)
        outcomes = {}
        for job_id, item in items.items():
            error = item.get("error") or {}
            outcomes[job_id] = Outcome(
                status=str(item["status"]),
                error=error.get("code"),
                tasks={name: str(task.get("status")) for name, task in (item.get("tasks") or {}).items()},
                objects=objects.get(job_id, {}),
            )
        return outcomes, strays

    def _await_events(self, runtime: LocalRuntime, outcomes: dict[str, Outcome]) -> set[tuple[str, str, str]]:
        """The events seen, once every ending has its event or none has come for a while."""
        last_change, count = time.monotonic(), -1
        while True:
            if len(runtime.lifecycle_events) != count:
                last_change, count = time.monotonic(), len(runtime.lifecycle_events)
            seen = _event_index(runtime.lifecycle_events)
            missing = sum(len(_missing_events(job_id, outcome, seen)) for job_id, outcome in outcomes.items())
            if not missing:
                return seen
            if time.monotonic() - last_change > EVENT_GRACE_SECONDS:
                self.say(f"soak: {missing} event(s) still missing, none new for {EVENT_GRACE_SECONDS} s")
                return seen
            time.sleep(1)

    def _await_poison(self, runtime: LocalRuntime, poison: list[str]) -> Counter[str]:
        """The bodies in the ingest queue's DLQ, once every poisoned one is there (each takes maxReceiveCount
        failed deliveries) or `patience` seconds have passed."""
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        url = sqs.get_queue_url(QueueName=runtime.stack.queue_name(_POISON_DLQ))["QueueUrl"]
        deadline = time.monotonic() + self.patience
        while True:
            dead = _peek_bodies(sqs, url)
            if all(dead[body] for body in poison) or time.monotonic() > deadline:
                return dead
            time.sleep(1)

    # --- checking ------------------------------------------------------------------------------------

    def _check(
        self,
        uploads: list[Upload],
        outcomes: dict[str, Outcome],
        strays: list[str],
        reference: dict[str, Outcome],
        events: set[tuple[str, str, str]],
    ) -> Report:
        report = Report(uploads=len(uploads))
        statuses: Counter[str] = Counter()
        problems: list[str] = [f"an object of no job: {key}" for key in strays]
        report.duplicated_outputs = len(strays)
        for upload in uploads:
            if upload.job_id is None:
                statuses["refused"] += 1
                continue
            outcome = outcomes.get(upload.job_id) or Outcome("missing")
            expected = reference[upload.sample.name]
            statuses[outcome.status] += 1
            if _ended_outcome(outcome):
                report.terminal += 1
            else:
                report.lost += 1
                problems.append(
                    f"job {upload.job_id} ({upload.sample.name}) never ended: {outcome.status} {outcome.tasks}"
                )
            if (outcome.status, outcome.error) != (expected.status, expected.error):
                report.differs_from_reference += 1
                problems.append(
                    f"job {upload.job_id} ({upload.sample.name}) ended {outcome.status} {outcome.error or ''}, "
                    f"the clean run {expected.status} {expected.error or ''}"
                )
            for key, digest in sorted(outcome.objects.items()):
                if expected.objects.get(key) != digest:
                    report.duplicated_outputs += 1
                    why = (
                        "not in the clean run"
                        if key not in expected.objects
                        else f"{digest[:40]}, the clean run {expected.objects[key][:40]}"
                    )
                    problems.append(f"job {upload.job_id} ({upload.sample.name}): {key}, {why}")
            for missing in _missing_events(upload.job_id, outcome, events):
                report.events_missing += 1
                problems.append(f"job {upload.job_id} ({upload.sample.name}): no {missing} event")
        report.by_status = dict(sorted(statuses.items()))
        # The first few of each are enough to start from; the counts say how many there are.
        report.problems = problems[:40] + ([f"... and {len(problems) - 40} more"] if len(problems) > 40 else [])
        return report

    def _dead_letters(self, runtime: LocalRuntime) -> dict[str, int]:
        """Messages in each dead-letter queue of the template (visible or being read)."""
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        counts = {}
        for logical_id in _dead_letter_queues(runtime):
            url = sqs.get_queue_url(QueueName=runtime.stack.queue_name(logical_id))["QueueUrl"]
            attributes = sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            counts[logical_id] = sum(int(value) for value in attributes.values())
        return counts


def poison_bodies(count: int, seed: int) -> list[str]:
    """`count` messages the ingest step cannot read, each told apart by its number: JSON that is no S3
    notification, and JSON cut short (tests/fixtures/s3-events/sqs_batch_with_poison_messages.json)."""
    shapes = ('{{"not": "an s3 event", "soak": "{seed}-{n}"}}', "{{truncated json {seed}-{n}")
    return [shapes[n % 2].format(seed=seed, n=n) for n in range(count)]


def _peek_bodies(sqs: Any, url: str) -> Counter[str]:
    """Every message body a queue holds, received and at once made visible again (nothing consumed)."""
    bodies: Counter[str] = Counter()
    handles = []
    try:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
            "Messages", []
        ):
            for message in messages:
                bodies[message["Body"]] += 1
                handles.append(message["ReceiptHandle"])
    finally:
        for handle in handles:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return bodies


def _send(client: Client, upload: Upload) -> None:
    try:
        _post(client, upload)
    except requests.RequestException as error:
        upload.refused, upload.job_id = f"connection_error: {error}", None


def _post(client: Client, upload: Upload) -> None:
    """`POST /uploads`, then the presigned POST, as a web app does (retrying the API's 429 as it should)."""
    data = upload.sample.path.read_bytes()
    name = upload.sample.path.name
    for attempt in range(8):
        try:
            created = client.create_upload(
                name, len(data), content_type=declared_type(data[:16], name), edits=list(upload.sample.edits) or None
            )
            break
        except ApiError as error:
            if error.status != 429 or attempt == 7:
                upload.refused = error.code
                return
            time.sleep(0.5 * 2**attempt)
    form = created["upload"]
    posted = client.http.post(form["url"], data=form["fields"], files={"file": (name, data)}, timeout=HTTP_TIMEOUT)
    upload.job_id = created["job_id"]
    if posted.status_code >= 300:
        refused: ImgflowError = UploadRefusedError.from_s3(posted.status_code, posted.text, created["job_id"])
        upload.refused, upload.job_id = refused.code, None


def _get_jobs(
    dynamodb: Any, table_name: str, job_ids: Iterable[str], projection: str | None = None
) -> dict[str, dict[str, Any]]:
    """The items of these jobs that exist (all of each, or the projection's attributes), read consistently."""
    items: dict[str, dict[str, Any]] = {}
    ids = sorted(job_ids)
    for start in range(0, len(ids), _BATCH_GET):
        request: dict[str, Any] = {"Keys": [{"pk": job_id} for job_id in ids[start : start + _BATCH_GET]]}
        request["ConsistentRead"] = True
        if projection:
            request |= {"ProjectionExpression": projection, "ExpressionAttributeNames": {"#status": "status"}}
        pending = {table_name: request}
        while pending:
            response = dynamodb.batch_get_item(RequestItems=pending)
            items |= {str(item["pk"]): item for item in response["Responses"].get(table_name, [])}
            pending = response.get("UnprocessedKeys") or {}
    return items


def _ended(item: dict[str, Any] | None) -> bool:
    if item is None or item.get("status") not in TERMINAL:
        return False
    return not any(task.get("status") in OPEN_TASK for task in (item.get("tasks") or {}).values())


def _ended_outcome(outcome: Outcome) -> bool:
    return outcome.status in TERMINAL and not OPEN_TASK & set(outcome.tasks.values())


def _objects(
    session: boto3.session.Session, runtime: LocalRuntime, items: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Every object of both buckets by job (`uploads/<digest>/<job>/...`, `jobs/<digest>/<job>/...`), keyed
    relative to the job with its edits' ids replaced by their order (`edits/edit-1.webp`); and the keys of
    objects that belong to none of the jobs."""
    s3 = session.client("s3")
    by_job: dict[str, dict[str, str]] = {}
    strays = []
    for logical_id in ("UploadsBucket", "MediaBucket"):
        bucket = runtime.stack.physical_id(logical_id)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                key = entry["Key"]
                parts = key.split("/", 3)
                item = items.get(parts[2]) if len(parts) == 4 else None
                if item is None:
                    strays.append(f"{bucket}/{key}")
                    continue
                relative = f"{logical_id}:{parts[0]}/{_edits_by_order(parts[3], item)}"
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                # Its size beside its hash, so that a problem says how far apart two contents are.
                by_job.setdefault(parts[2], {})[relative] = (
                    f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()}"
                )
    return by_job, strays


def _edits_by_order(relative: str, item: dict[str, Any]) -> str:
    edits = sorted((item.get("edits") or {}).items(), key=lambda pair: int(pair[1].get("seq", 0)))
    for number, (edit_id, _) in enumerate(edits, start=1):
        relative = relative.replace(edit_id, f"edit-{number}")
    return relative


def _event_index(events: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    seen: set[tuple[str, str, str]] = set()
    for event in list(events):
        detail = event.get("detail", {})
        edit = detail.get("edit") or {}
        seen.add((str(detail.get("job_id")), str(event.get("detail-type")), str(edit.get("edit_id", ""))))
    return seen


def _missing_events(job_id: str, outcome: Outcome, seen: set[tuple[str, str, str]]) -> list[str]:
    """The events this outcome should have been announced by and was not: the job's ending, its variants'
    (`Variants Ready`) and each edit's."""
    expected = []
    if outcome.status in JOB_EVENT:
        expected.append((job_id, JOB_EVENT[outcome.status], ""))
    for task, status in outcome.tasks.items():
        if task == "variants" and status == "succeeded":
            expected.append((job_id, "Variants Ready", ""))
        elif task.startswith("edit-") and status in EDIT_EVENT:
            expected.append((job_id, EDIT_EVENT[status], task.removeprefix("edit-")))
    return [
        f"{detail_type}{' ' + edit_id if edit_id else ''}"
        for _, detail_type, edit_id in expected
        if (job_id, detail_type, edit_id) not in seen
    ]


def _dead_letter_queues(runtime: LocalRuntime) -> list[str]:
    """Every queue a redrive policy or a stream event source's `OnFailure` sends what was given up on."""
    targets = set()
    for logical_id in runtime.stack.of_type("AWS::SQS::Queue"):
        policy = runtime.stack.properties(logical_id).get("RedrivePolicy")
        if policy:
            arn = runtime.stack.resolver.resolve(policy["deadLetterTargetArn"])
            targets.add(runtime.stack.queue_logical_id(str(arn)))
    for function in runtime.functions.values():
        targets |= {runtime.stack.queue_logical_id(s.on_failure) for s in function.spec.stream_sources if s.on_failure}
    return sorted(targets)


def soak(
    options: RuntimeOptions, *, uploads: int, concurrency: int, patience: float, as_json: bool, poison: int = 0
) -> int:
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = Soak(
        options,
        uploads=uploads,
        concurrency=concurrency,
        seed=options.fault_seed,
        patience=patience,
        say=say,
        poison=poison,
    ).run()
    print(json.dumps(dataclasses.asdict(report)) if as_json else report.summary(), flush=True)
    return 0 if report.holds else 1
