"""`imgflow dlq`: what each dead-letter queue of the pipeline holds, and `imgflow dlq redrive`, which moves
it back to the queue it came from.

The queues are found as the other commands find the system: the running local runtime's emulator (its
AWS endpoint and the template's names), or a deployed stack (`--stack`: its CloudFormation resources,
with your AWS credentials), or given outright (`--queue-url`). A source queue is one whose redrive policy
names a dead-letter queue.

Listing peeks: each message is received with a short visibility timeout and made visible again at once,
so nothing is consumed (each peek is one more receive in its ApproximateReceiveCount). Redrive uses SQS
`StartMessageMoveTask` on AWS; moto's server (5.2.5) does not implement it, so locally the same move is
made by hand: receive, send to the source queue with the same body and attributes, delete.

What a redriven message does: a step that gave up (its retries ran out: its last attempt or the sweep
failed it, `gave_up`, see imgflow.sweep) runs again and its job settles again (failed → succeeded when
it now succeeds); a job or task that ended otherwise (rejected, failed for a reason of its own, expired)
is left as it is and the message is acknowledged.

The publisher's dead-letter queue is of another kind: its stream mapping sends it not records but where
they are (a shard and a range of sequence numbers) when it gives up on them, and there is no queue to
move them back to. Redriving it announces them: the records are read again from the table's stream (it
keeps them 24 hours) and their events published as PublisherFunction would have, with the same ids;
consumers order a job's events by `version`, as these come after later ones. A message whose records
the stream no longer has is left where it is, and said so.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import boto3
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from imgflow.event_models import ItemChangeRecordModel, S3Notification, created_objects
from imgflow.ingest import job_id_of
from imgflow.lifecycle import EventPublisher
from imgflow.models import Job, edit_task_name
from imgflow.outbox import changed_job_events, job_of_item
from imgflow_local.runtime import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from imgflow_local.stack import LocalStack
from imgflow_local.stream_poller import lambda_record

# Long enough to read a queue through, short enough that a peek cut off (Ctrl-C) gives its messages back soon.
PEEK_VISIBILITY_SECONDS = 30
# Where `imgflow serve` answers AWS calls by default (its --aws-port).
LOCAL_AWS_ENDPOINT = "http://127.0.0.1:4566"
_MOVE_BATCH = 10
_RECORDS_GONE = frozenset({"ResourceNotFoundException", "TrimmedDataAccessException", "ExpiredIteratorException"})


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str  # the step it serves: the source queue's name, e.g. `ingest`, `variants`, `edit`
    url: str
    arn: str
    source_url: str
    source_arn: str


@dataclass(frozen=True)
class StreamDeadLetterQueue:
    """Where a stream mapping records the batches it gave up on: `name` is its function's step, e.g. `publisher`."""

    name: str
    url: str
    bus: str  # where the records' events are announced


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the dead-letter queue's own name
    step: str
    message_id: str
    job_id: str | None
    error: str | None  # what the job's record says: its status, and the step's (or the job's) error
    attempts: int
    age_seconds: int


@dataclass(frozen=True)
class Redriven:
    queue: str
    moved: int
    # The move task's handle on AWS (StartMessageMoveTask runs on its own); None when moved here.
    task_handle: str | None = None
    # A stream's dead letters: the events announced, and the messages left (their records are gone).
    announced: int | None = None
    left: int | None = None


class StreamBatchInfo(BaseModel):
    """Where a stream mapping's failed batch is in its stream (what its on-failure destination receives)."""

    shardId: str = Field(min_length=28, max_length=65)
    startSequenceNumber: Annotated[str, StringConstraints(pattern=r"^[0-9]{21,40}$")]
    endSequenceNumber: Annotated[str, StringConstraints(pattern=r"^[0-9]{21,40}$")]
    streamArn: str = Field(min_length=37, max_length=1024)


class FailureContext(BaseModel):
    condition: str = Field(max_length=200)
    approximateInvokeCount: int = Field(ge=0, le=2**31)


class StreamFailure(BaseModel):
    """The message a DynamoDB stream mapping sends its on-failure queue (events/publisher_dead_letter.json)."""

    requestContext: FailureContext
    DDBStreamBatchInfo: StreamBatchInfo


class RecordsGoneError(Exception):
    """The stream no longer has a dead letter's records: past its 24 hours, or its table's stream was replaced."""


class Pipeline:
    """The dead-letter queues of one deployment, its JobsTable (for the jobs' errors) and how to reach them."""

    def __init__(
        self,
        sqs: Any,
        queues: list[DeadLetterQueue],
        table: Any | None,
        stream_queues: list[StreamDeadLetterQueue] | None = None,
        streams: Any | None = None,
        events: Any | None = None,
    ) -> None:
        self._sqs = sqs
        self._table = table
        self.queues = queues
        self.stream_queues = stream_queues or []
        self._streams = streams
        self._events = events

    # --- finding the queues --------------------------------------------------------------------------

    @classmethod
    def local(cls, endpoint: str, template: Path) -> Pipeline:
        """The running local runtime's queues, named as `imgflow serve` names the template's resources."""
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
        )
        return cls.of_stack(
            session.client("sqs", endpoint_url=endpoint),
            session.resource("dynamodb", endpoint_url=endpoint),
            LocalStack(template, REGION),
            session.client("dynamodbstreams", endpoint_url=endpoint),
            session.client("events", endpoint_url=endpoint),
        )

    @classmethod
    def of_stack(
        cls, sqs: Any, dynamodb: Any, stack: LocalStack, streams: Any | None = None, events: Any | None = None
    ) -> Pipeline:
        """The queues and table of a template's stack as the local runtime names them, through these clients."""
        urls = {
            logical_id: sqs.get_queue_url(QueueName=stack.queue_name(logical_id))["QueueUrl"]
            for logical_id in stack.of_type("AWS::SQS::Queue")
        }
        [bus] = [stack.physical_id(logical_id) for logical_id in stack.of_type("AWS::Events::EventBus")]
        stream_queues = [
            StreamDeadLetterQueue(
                _step(spec.logical_id.removesuffix("Function")), urls[stack.queue_logical_id(source.on_failure)], bus
            )
            for spec in stack.functions()
            for source in spec.stream_sources
            if source.on_failure is not None
        ]
        table = dynamodb.Table(stack.physical_id("JobsTable"))
        return cls(sqs, _dead_letter_queues(sqs, urls), table, stream_queues, streams, events)

    @classmethod
    def deployed(cls, session: boto3.session.Session, stack_name: str) -> Pipeline:
        """A deployed stack's queues and table, from its CloudFormation resources."""
        resources: dict[str, tuple[str, str]] = {}
        pages = session.client("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for page in pages:
            for resource in page["StackResourceSummaries"]:
                resources[resource["LogicalResourceId"]] = (resource["ResourceType"], resource["PhysicalResourceId"])
        # A queue's physical id is its URL.
        urls = {logical: physical for logical, (kind, physical) in resources.items() if kind == "AWS::SQS::Queue"}
        sqs = session.client("sqs")
        table = session.resource("dynamodb").Table(resources["JobsTable"][1]) if "JobsTable" in resources else None
        mappings = [physical for kind, physical in resources.values() if kind == "AWS::Lambda::EventSourceMapping"]
        stream_queues = _stream_dead_letter_queues(session.client("lambda"), sqs, mappings)
        return cls(
            sqs,
            _dead_letter_queues(sqs, urls),
            table,
            stream_queues,
            session.client("dynamodbstreams"),
            session.client("events"),
        )

    @classmethod
    def given(
        cls, session: boto3.session.Session, dead_letter_urls: list[str], table: str | None, endpoint: str | None = None
    ) -> Pipeline:
        """Dead-letter queues named by URL; each one's source is what SQS says sends to it."""
        sqs: Any = session.client("sqs", endpoint_url=endpoint)
        queues = []
        for url in dead_letter_urls:
            sources = sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", [])
            if len(sources) != 1:
                raise ValueError(f"{url}: {len(sources)} source queues send to it; redrive needs exactly one")
            queues.append(_queue(sqs, _name_of(sources[0]), url, sources[0]))
        return cls(sqs, queues, session.resource("dynamodb", endpoint_url=endpoint).Table(table) if table else None)

    def queue(self, name: str) -> DeadLetterQueue | StreamDeadLetterQueue:
        for queue in self.all_queues():
            if name in {queue.name, queue.url}:
                return queue
        known = ", ".join(queue.name for queue in self.all_queues())
        raise ValueError(f"no dead-letter queue {name!r}; there are: {known}")

    def all_queues(self) -> list[DeadLetterQueue | StreamDeadLetterQueue]:
        queues: list[DeadLetterQueue | StreamDeadLetterQueue] = [*self.queues, *self.stream_queues]
        return queues

    # --- listing -------------------------------------------------------------------------------------

    def peek(self, queue: DeadLetterQueue | StreamDeadLetterQueue, limit: int = 100) -> list[DeadLetter]:
        """What `queue` holds (at most `limit`), without consuming it."""
        letters, handles = [], []
        try:
            for message in self._receive_all(queue.url, limit, PEEK_VISIBILITY_SECONDS):
                handles.append(message["ReceiptHandle"])
                letters.append(self._letter(queue, message))
        finally:
            for handle in handles:
                self._sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=handle, VisibilityTimeout=0)
        return letters

    def _letter(self, queue: DeadLetterQueue | StreamDeadLetterQueue, message: dict[str, Any]) -> DeadLetter:
        if isinstance(queue, StreamDeadLetterQueue):
            return self._stream_letter(queue, message)
        attributes = message.get("Attributes", {})
        job_id, task = _about(message["Body"], queue.name)
        job = self._job(job_id) if job_id else None
        sent = int(attributes.get("SentTimestamp", 0)) / 1000
        return DeadLetter(
            queue=_name_of(queue.url),
            step=queue.name,
            message_id=message["MessageId"],
            job_id=job_id,
            error=_error_of(job, task),
            # This peek is one receive more than the deliveries the message had.
            attempts=max(int(attributes.get("ApproximateReceiveCount", 1)) - 1, 0),
            age_seconds=max(int(time.time() - sent), 0) if sent else 0,
        )

    def _stream_letter(self, queue: StreamDeadLetterQueue, message: dict[str, Any]) -> DeadLetter:
        """A batch given up on: the job of its first record (read again from the stream) and what was lost."""
        record = _stream_failure(message["Body"])
        sent = int(message.get("Attributes", {}).get("SentTimestamp", 0)) / 1000
        job_id: str | None = None
        if record is None:
            error = "not a stream mapping's record of a failed batch: nothing to announce"
        else:
            batch = record.DDBStreamBatchInfo
            where = f"shard {batch.shardId}, {batch.startSequenceNumber} to {batch.endSequenceNumber}"
            try:
                changes = self._changes(batch)
                jobs = (job_of_item(change.dynamodb.NewImage or change.dynamodb.OldImage) for change in changes)
                job_id = next((job.job_id for job in jobs if job is not None), None)
                error = f"{len(changes)} change(s) not announced ({record.requestContext.condition}; {where})"
            except RecordsGoneError as gone:
                error = f"the stream no longer has these records ({where}): {gone}"
        return DeadLetter(
            queue=_name_of(queue.url),
            step=queue.name,
            message_id=message["MessageId"],
            job_id=job_id,
            error=error,
            attempts=record.requestContext.approximateInvokeCount if record else 0,
            age_seconds=max(int(time.time() - sent), 0) if sent else 0,
        )

    def _changes(self, batch: StreamBatchInfo) -> list[ItemChangeRecordModel]:
        """The stream records a dead letter names, from its first sequence number to its last."""
        if self._streams is None:
            raise RecordsGoneError("no stream client")
        stream_arn, first, last = batch.streamArn, batch.startSequenceNumber, batch.endSequenceNumber
        try:
            iterator = self._streams.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=batch.shardId,
                ShardIteratorType="AT_SEQUENCE_NUMBER",
                SequenceNumber=first,
            )["ShardIterator"]
            changes: list[ItemChangeRecordModel] = []
            while iterator:
                response = self._streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in response["Records"]:
                    if int(record["dynamodb"]["SequenceNumber"]) > int(last):
                        return changes
                    changes.append(ItemChangeRecordModel.model_validate(lambda_record(record, stream_arn)))
                if not response["Records"]:
                    break  # an open shard with nothing after these: the range ended at its tip
                iterator = response.get("NextShardIterator")
        except self._streams.exceptions.ClientError as error:
            # What the stream says of records it no longer has; any other error (throttling) is no answer.
            if error.response.get("Error", {}).get("Code") not in _RECORDS_GONE:
                raise
            raise RecordsGoneError(str(error)) from error
        if not changes or changes[0].dynamodb.SequenceNumber != first:
            raise RecordsGoneError(f"the shard no longer starts at or before {first}")
        return changes

    def _job(self, job_id: str) -> Job | None:
        if self._table is None:
            return None
        item = self._table.get_item(Key={"pk": job_id}).get("Item")
        return Job.model_validate(item) if item else None

    # --- redrive -------------------------------------------------------------------------------------

    def redrive(self, queue: DeadLetterQueue | StreamDeadLetterQueue, *, move_task: bool) -> Redriven:
        """Move everything `queue` holds back to its source queue: SQS's own move task on AWS, or by hand.
        A stream's dead letters have no queue to go back to: their records are announced (`announce`)."""
        if isinstance(queue, StreamDeadLetterQueue):
            return self.announce(queue)
        if move_task:
            handle = self._sqs.start_message_move_task(SourceArn=queue.arn, DestinationArn=queue.source_arn)
            return Redriven(queue.name, _waiting(self._sqs, queue.url), handle["TaskHandle"])
        moved = 0
        # Each message is sent before it is deleted: a crash in between leaves a copy (at least once), and
        # every step is idempotent, which a redelivery must be anyway.
        while messages := self._sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=_MOVE_BATCH,
            VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            for message in messages:
                self._sqs.send_message(
                    QueueUrl=queue.source_url,
                    MessageBody=message["Body"],
                    **_attributes(message),
                )
                self._sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        return Redriven(queue.name, moved)

    def announce(self, queue: StreamDeadLetterQueue) -> Redriven:
        """Publish the events of every batch `queue` holds, read again from the stream, then delete its
        message; a message whose records are gone stays."""
        if self._events is None:
            raise ValueError("announcing a stream's dead letters needs an EventBridge client")
        publisher = EventPublisher(self._events, queue.bus)
        announced = handled = 0
        left: list[str] = []  # receipt handles of the messages that stay
        try:
            while messages := self._sqs.receive_message(
                QueueUrl=queue.url, MaxNumberOfMessages=_MOVE_BATCH, VisibilityTimeout=PEEK_VISIBILITY_SECONDS
            ).get("Messages", []):
                for message in messages:
                    record = _stream_failure(message["Body"])
                    try:
                        if record is None:
                            raise RecordsGoneError("not a stream mapping's record of a failed batch")
                        changes = self._changes(record.DDBStreamBatchInfo)
                    except RecordsGoneError:
                        left.append(message["ReceiptHandle"])
                        continue
                    for change in changes:
                        details = changed_job_events(
                            change.dynamodb.OldImage, change.dynamodb.NewImage, removed_by_ttl=change.removed_by_ttl
                        )
                        for detail in details:
                            publisher.publish(detail)
                        announced += len(details)
                    # Deleted once its events are out: a failure before leaves it for the next run (at least once).
                    self._sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
                    handled += 1
        finally:
            # Hidden while this run went through the queue (so it read each once), shown again for the next look.
            for handle in left:
                self._sqs.change_message_visibility(QueueUrl=queue.url, ReceiptHandle=handle, VisibilityTimeout=0)
        return Redriven(queue.name, handled, announced=announced, left=len(left))

    def _receive_all(self, url: str, limit: int, visibility: int) -> Iterator[dict[str, Any]]:
        seen = 0
        while seen < limit:
            messages = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=min(10, limit - seen),
                VisibilityTimeout=visibility,
                AttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return
            seen += len(messages)
            yield from messages


def describe(letter: DeadLetter) -> str:
    """One line a person reads."""
    age = f"{letter.age_seconds // 3600}h{letter.age_seconds % 3600 // 60:02d}m"
    return (
        f"{letter.step:<16} {letter.job_id or '-':<32}  attempts {letter.attempts:<3} age {age:>7}  "
        f"{letter.error or '-'}"
    )


def as_json(letter: DeadLetter) -> str:
    return json.dumps(asdict(letter))


def _dead_letter_queues(sqs: Any, urls: dict[str, str]) -> list[DeadLetterQueue]:
    """The queues among `urls` (by logical id) that have a dead-letter queue, with it."""
    by_arn = {_arn(sqs, url): url for url in urls.values()}
    queues = []
    for logical_id, url in sorted(urls.items()):
        policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"]).get("Attributes", {})
        if "RedrivePolicy" not in policy:
            continue
        dead_letter_url = by_arn[json.loads(policy["RedrivePolicy"])["deadLetterTargetArn"]]
        queues.append(_queue(sqs, _step(logical_id), dead_letter_url, url))
    return queues


def _stream_failure(body: str) -> StreamFailure | None:
    """A stream mapping's record of a failed batch, or None for anything else sent to its queue."""
    try:
        return StreamFailure.model_validate_json(body)
    except ValidationError:
        return None


def _stream_dead_letter_queues(lambda_client: Any, sqs: Any, mappings: list[str]) -> list[StreamDeadLetterQueue]:
    """The on-failure queues of a deployed stack's DynamoDB stream mappings (by UUID), named by their
    functions, announcing on the bus each function publishes to (its EVENT_BUS_NAME)."""
    queues = []
    for uuid in mappings:
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
        if ":dynamodb:" not in mapping.get("EventSourceArn", "") or ":sqs:" not in destination:
            continue
        function = lambda_client.get_function_configuration(FunctionName=mapping["FunctionArn"])
        bus = function.get("Environment", {}).get("Variables", {}).get("EVENT_BUS_NAME", "default")
        url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
        queues.append(StreamDeadLetterQueue(_function_step(function["FunctionName"]), url, bus))
    return queues


def _function_step(function_name: str) -> str:
    """`mystack-PublisherFunction-AbC123` → `publisher`: the logical id CloudFormation put in the name."""
    parts = function_name.split("-")
    logical_id = next((part for part in parts if part.endswith("Function")), function_name)
    return _step(logical_id.removesuffix("Function"))


def _queue(sqs: Any, name: str, url: str, source_url: str) -> DeadLetterQueue:
    return DeadLetterQueue(name, url, _arn(sqs, url), source_url, _arn(sqs, source_url))


def _arn(sqs: Any, url: str) -> str:
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def _waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _step(logical_id: str) -> str:
    """`IngestQueue` → `ingest`, `WebhookDeliveryQueue` → `webhook-delivery`."""
    base = logical_id.removesuffix("Queue")
    return "".join(f"-{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(base))


def _name_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    attributes = message.get("MessageAttributes")
    return {"MessageAttributes": attributes} if attributes else {}


def _about(body: str, step: str) -> tuple[str | None, str | None]:
    """The job a pipeline message is about, and its task: `job_id` (and `edit_id`) in a step's message or
    an event's detail, or the job of the uploaded object an S3 notification names."""
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    for holder in (parsed, parsed.get("detail") or {}):
        if isinstance(holder, dict) and isinstance(holder.get("job_id"), str):
            edit_id = holder.get("edit_id")
            return holder["job_id"], edit_task_name(edit_id) if isinstance(edit_id, str) else step
    try:
        sources = created_objects(S3Notification.model_validate(parsed))
    except ValidationError:
        return None, None
    return (job_id_of(sources[0]) if sources else None), None


def _error_of(job: Job | None, task: str | None) -> str | None:
    """What the job's record says: its status, and the task's error (else the job's)."""
    if job is None:
        return None
    found = job.tasks.get(task) if task else None
    error = (found.error if found else None) or job.error
    return f"{job.status}: {error.code}: {error.message}" if error else str(job.status)


def command(args: Any, template: Path) -> int:
    """`imgflow dlq [redrive]`, with the options cli.py declares."""
    try:
        pipeline = _pipeline(args, template)
        queues = [pipeline.queue(args.queue)] if args.queue else pipeline.all_queues()
    except Exception as error:
        where = f"the stack {args.stack}" if args.stack else f"the local runtime at {args.aws_endpoint}"
        print(f"imgflow dlq: cannot read {where} (is `imgflow serve` running?): {error}", file=sys.stderr)
        return 1
    if args.action == "redrive":
        for queue in queues:
            # The local runtime's emulator has no move task (moto); a deployed stack's SQS has.
            redriven = pipeline.redrive(queue, move_task=_deployed(args))
            if args.json:
                print(json.dumps(asdict(redriven)), flush=True)
            else:
                print(f"{queue.name:<16} {_said(queue, redriven)}")
        return 0
    for queue in queues:
        letters = pipeline.peek(queue, args.limit)
        for letter in letters:
            print(as_json(letter) if args.json else describe(letter), flush=True)
        if not args.json:
            print(f"{queue.name:<16} {len(letters)} message(s) in {_name_of(queue.url)}", file=sys.stderr)
    return 0


def _said(queue: DeadLetterQueue | StreamDeadLetterQueue, redriven: Redriven) -> str:
    if isinstance(queue, StreamDeadLetterQueue):
        gone = f"; {redriven.left} left: the stream no longer has their records" if redriven.left else ""
        return f"{redriven.moved} batch(es) announced again ({redriven.announced} event(s)){gone}"
    how = f"move task {redriven.task_handle}" if redriven.task_handle else "moved"
    return f"{redriven.moved} message(s) back to {_name_of(queue.source_url)} ({how})"


def _deployed(args: Any) -> bool:
    """A deployed stack, with your AWS credentials, rather than the local runtime's emulator."""
    return args.stack is not None or (bool(args.queue_url) and args.aws_endpoint is None)


def _pipeline(args: Any, template: Path) -> Pipeline:
    if _deployed(args):
        session = boto3.session.Session()
        if args.stack:
            return Pipeline.deployed(session, args.stack)
        return Pipeline.given(session, args.queue_url, args.table)
    endpoint = args.aws_endpoint or LOCAL_AWS_ENDPOINT
    if args.queue_url:
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
        )
        return Pipeline.given(session, args.queue_url, args.table, endpoint=endpoint)
    return Pipeline.local(endpoint, template)
