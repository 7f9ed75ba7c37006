"""End-to-end fixtures: `imgflow serve` started as users start it, in its own process, and what a test
needs to drive it as a web app does (the HTTP API, presigned POSTs to S3, long polls) and to look behind
it (the emulator's buckets, JobsTable and queues, and the runtime's record of lifecycle events).

One server serves the whole session (it takes seconds to start); tests stay independent by working only
on the jobs, keys and messages they create themselves.
"""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import pytest
import requests
from botocore.config import Config
from PIL import Image

from imgflow_local.auth import LocalIssuer
from imgflow_local.runtime import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, issue_token
from imgflow_local.stack import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient

ROOT = Path(__file__).resolve().parents[2]

TERMINAL = frozenset({"succeeded", "failed", "rejected", "expired"})
# The stack name `imgflow serve` gives its resources (LocalStack's default).
STACK_NAME = "imgflow-local"
STARTUP_SECONDS = 90
STOP_SECONDS = 20
HTTP_TIMEOUT = 30
# Long polls ask for at most this many seconds; API Gateway allows 30 s per request.
LONG_POLL_SECONDS = 20
JOB_SECONDS = 120

T = TypeVar("T")
# Whom the tests' requests speak for unless a test names another owner.
DEFAULT_OWNER = "e2e"
APP_ORIGIN = "https://app.example.com"
# The local issuer's key for this test session only: `imgflow serve` and the tests share it.
os.environ.setdefault("IMGFLOW_HOME", tempfile.mkdtemp(prefix="imgflow-home-"))


def imgflow_command() -> list[str]:
    """The `imgflow` console script of this environment, or the module behind it."""
    script = Path(sys.executable).with_name("imgflow")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "imgflow_local.cli"]


def eventually(probe: Callable[[], T | None], timeout: float, describe: Callable[[], str], interval: float = 0.2) -> T:
    """The first truthy answer of `probe` within `timeout` seconds; fails with `describe()` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer:
            return answer
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout:.0f} s: {describe()}")
        time.sleep(interval)


@dataclass(frozen=True)
class OutputImage:
    """A result file as a client sees it: what it decodes to and which metadata it still carries."""

    format: str | None
    size: tuple[int, int]
    metadata: frozenset[str]
    pixels: Image.Image


# Metadata chunks of the WebP container (RIFF); Pillow reports some of them only through `info`.
_WEBP_METADATA_CHUNKS = {b"EXIF": "EXIF", b"ICCP": "ICC", b"XMP ": "XMP"}


def open_output(data: bytes) -> OutputImage:
    """Decode a result and list the metadata left in it: EXIF (GPS lives there), ICC, XMP."""
    found: set[str] = set()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.info.get("exif") or image.getexif():
            found.add("EXIF")
        if image.info.get("icc_profile"):
            found.add("ICC")
        if image.info.get("xmp") or image.info.get("XML:com.adobe.xmp"):
            found.add("XMP")
        pixels = image.convert("RGB")
        fmt, size = image.format, image.size
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        offset = 12
        while offset + 8 <= len(data):
            chunk, length = data[offset : offset + 4], int.from_bytes(data[offset + 4 : offset + 8], "little")
            if chunk in _WEBP_METADATA_CHUNKS:
                found.add(_WEBP_METADATA_CHUNKS[chunk])
            offset += 8 + length + (length & 1)
    return OutputImage(fmt, size, frozenset(found), pixels)


@dataclass
class JobWatch:
    """Every view of one job that a client saw while long-polling it to its end."""

    views: list[dict[str, Any]]

    @property
    def final(self) -> dict[str, Any]:
        return self.views[-1]

    @property
    def versions(self) -> list[int]:
        return [view["version"] for view in self.views]


@dataclass
class Upload:
    """A job created through `POST /uploads` and the answer S3 gave to the browser-style upload."""

    job_id: str
    created: dict[str, Any]
    response: requests.Response

    @property
    def key(self) -> str:
        key: str = self.created["upload"]["fields"]["key"]
        return key


@dataclass
class Pipeline:
    """One running `imgflow serve`: its URLs, its step log, and clients of its emulator."""

    api_url: str
    aws_url: str
    process: subprocess.Popen[str]
    log: list[str]
    stack: LocalStack = field(init=False)
    s3: S3Client = field(init=False)
    sqs: SQSClient = field(init=False)
    jobs_table: Table = field(init=False)
    _tokens: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Names come from template.yaml, read the way the runtime reads it: nothing is written twice.
        self.stack = LocalStack(ROOT / "template.yaml", REGION, stack_name=STACK_NAME)
        session = boto3.session.Session(
            aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY, region_name=REGION
        )
        config = Config(s3={"addressing_style": "path"}, retries={"mode": "standard", "max_attempts": 3})
        self.s3 = session.client("s3", endpoint_url=self.aws_url, config=config)
        self.sqs = session.client("sqs", endpoint_url=self.aws_url, config=config)
        dynamodb = session.resource("dynamodb", endpoint_url=self.aws_url, config=config)
        self.jobs_table = dynamodb.Table(self.stack.physical_id("JobsTable"))

    @staticmethod
    def eventually(probe: Callable[[], T | None], timeout: float, describe: Callable[[], str]) -> T:
        return eventually(probe, timeout, describe)

    # --- names ---------------------------------------------------------------------------------------

    @property
    def uploads_bucket(self) -> str:
        return self.stack.physical_id("UploadsBucket")

    @property
    def media_bucket(self) -> str:
        return self.stack.physical_id("MediaBucket")

    def queue_url(self, logical_id: str) -> str:
        url: str = self.sqs.get_queue_url(QueueName=self.stack.queue_name(logical_id))["QueueUrl"]
        return url

    # --- the HTTP API, as a web app uses it ----------------------------------------------------------

    def token(self, sub: str = DEFAULT_OWNER, scopes: list[str] | None = None, ttl: int = 3600) -> str:
        """A bearer token of the runtime's local issuer, as `imgflow token` prints one."""
        return issue_token(self.stack, LocalIssuer.load(), sub, scopes, ttl)

    def api(self, method: str, path: str, *, owner: str | None = DEFAULT_OWNER, **kwargs: Any) -> requests.Response:
        """A request to the API as `owner` (a token of theirs with every scope), or with no token (None)."""
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        headers = dict(kwargs.pop("headers", None) or {})
        if owner is not None:
            headers.setdefault("Authorization", f"Bearer {self._tokens.setdefault(owner, self.token(owner))}")
        return requests.request(method, f"{self.api_url}{path}", headers=headers, **kwargs)

    def create_upload(
        self, filename: str, content_type: str, size: int, owner: str | None = DEFAULT_OWNER, **extra: Any
    ) -> requests.Response:
        body = {"filename": filename, "content_type": content_type, "size": size, **extra}
        return self.api("POST", "/uploads", json=body, owner=owner)

    def post_form(
        self,
        created: dict[str, Any],
        data: bytes,
        filename: str,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """The browser's multipart POST straight to S3, with the presigned form (or `fields` instead)."""
        upload = created["upload"]
        form = upload["fields"] if fields is None else fields
        # requests puts the file after the fields, as S3 requires.
        return requests.post(
            upload["url"], data=form, files={"file": (filename, data)}, headers=headers, timeout=HTTP_TIMEOUT * 2
        )

    def upload(self, filename: str, data: bytes, content_type: str, owner: str = DEFAULT_OWNER, **extra: Any) -> Upload:
        """Ask for an upload and send the file with the presigned POST; both must be accepted."""
        response = self.create_upload(filename, content_type, len(data), owner=owner, **extra)
        assert response.status_code == 201, f"POST /uploads for {filename}: {response.status_code} {response.text}"
        created: dict[str, Any] = response.json()
        posted = self.post_form(created, data, filename)
        assert posted.status_code == 204, f"S3 refused the upload of {filename}: {posted.status_code} {posted.text}"
        return Upload(created["job_id"], created, posted)

    def job(self, job_id: str, owner: str | None = DEFAULT_OWNER, **params: Any) -> requests.Response:
        wait = float(params.get("wait", 0))
        return self.api("GET", f"/jobs/{job_id}", params=params, timeout=wait + HTTP_TIMEOUT, owner=owner)

    def view(self, job_id: str, owner: str = DEFAULT_OWNER) -> dict[str, Any]:
        response = self.job(job_id, owner)
        assert response.status_code == 200, f"GET /jobs/{job_id}: {response.status_code} {response.text}"
        view: dict[str, Any] = response.json()
        return view

    def wait_for_job(self, job_id: str, timeout: float = JOB_SECONDS, owner: str = DEFAULT_OWNER) -> JobWatch:
        """Long-poll the job as a client does (`?wait=&since=`) until it ends; every view seen is kept."""
        deadline = time.monotonic() + timeout
        views = [self.view(job_id, owner)]
        while views[-1]["status"] not in TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"job {job_id} did not end within {timeout:.0f} s; last view: {views[-1]}")
            wait = max(1, min(LONG_POLL_SECONDS, int(remaining)))
            response = self.job(job_id, owner, wait=wait, since=views[-1]["version"])
            assert response.status_code == 200, f"GET /jobs/{job_id}: {response.status_code} {response.text}"
            views.append(response.json())
        return JobWatch(views)

    # --- what only the runtime and the emulator show -------------------------------------------------

    def events(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The lifecycle events the runtime received from the event bus (of one job, or all)."""
        params = {"job_id": job_id} if job_id else {}
        response = self.api("GET", "/_local/events", params=params)
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()
        return events

    def wait_for_events(self, job_id: str, detail_types: set[str], timeout: float = 20) -> list[dict[str, Any]]:
        """The job's events once every one of `detail_types` has arrived."""

        def arrived() -> list[dict[str, Any]] | None:
            events = self.events(job_id)
            return events if detail_types <= {event["detail-type"] for event in events} else None

        return eventually(
            arrived,
            timeout,
            lambda: (
                f"events of {job_id}: wanted {sorted(detail_types)}, got "
                f"{[event['detail-type'] for event in self.events(job_id)]}"
            ),
        )

    def jobs(self) -> list[dict[str, Any]]:
        """Every job item in JobsTable (the table also holds other kinds of item)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            page = self.jobs_table.scan(**kwargs)
            items.extend(item for item in page.get("Items", []) if "job_id" in item and "status" in item)
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def jobs_for_key(self, key: str) -> list[dict[str, Any]]:
        return [job for job in self.jobs() if job.get("source", {}).get("key") == key]

    def wait_for_drop_job(self, key: str, timeout: float = 30) -> dict[str, Any]:
        """The job that ingest made for an object dropped at `key` (found by its source key)."""
        found = eventually(lambda: self.jobs_for_key(key), timeout, lambda: f"no job has source.key {key!r}")
        assert len(found) == 1, f"{len(found)} jobs for {key!r}: {[job['job_id'] for job in found]}"
        return found[0]

    def download(self, url: str) -> requests.Response:
        response = requests.get(url, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200, f"GET {url}: {response.status_code} {response.text[:300]}"
        return response

    def drop(self, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
        """Put an object into the uploads bucket directly, as a backend does (no API call)."""
        self.s3.put_object(Bucket=self.uploads_bucket, Key=key, Body=data, ContentType=content_type)

    def wait_until_idle(self, logical_id: str, timeout: float = 30) -> None:
        """Until the queue holds no message, neither waiting nor in flight (twice in a row)."""
        url = self.queue_url(logical_id)

        def empty() -> bool:
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            return all(count == "0" for count in attributes.values())

        def settled() -> bool:
            if not empty():
                return False
            time.sleep(0.3)
            return empty()

        eventually(settled, timeout, lambda: f"{logical_id} still has messages waiting or in flight")

    def log_since(self, offset: int, limit: int = 300) -> str:
        lines = self.log[offset:]
        return "\n".join(lines[-limit:])


@contextmanager
def run_imgflow_server(*extra_args: str) -> Iterator[Pipeline]:
    """`imgflow serve` on free ports, in its own process, stopped with SIGTERM (then killed) at the end."""
    command = [
        *imgflow_command(),
        *("serve", "--port", "0", "--aws-port", "0", "--retry-delay", "1"),
        # The web app the CORS tests play; the runtime adds its own demo page's origin.
        *("--parameter", f"AllowedOrigin={APP_ORIGIN}"),
        *extra_args,
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        # Read to the end: a full pipe would block the runtime's step log, and the runtime with it.
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line.rstrip("\n"))
            lines.put(log[-1])
        lines.put(None)

    reader = threading.Thread(target=drain, name="imgflow-serve-output", daemon=True)
    reader.start()
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + STARTUP_SECONDS
        while len(urls) < 2:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"imgflow serve printed no URLs within {STARTUP_SECONDS} s:\n" + "\n".join(log))
            if line is None:
                pytest.fail(f"imgflow serve exited with {process.wait()} before it was ready:\n" + "\n".join(log))
            if match := re.match(r"\s*(API|AWS \(emulator\)):\s+(http://\S+)", line):
                urls[match[1]] = match[2].rstrip("/")
        yield Pipeline(urls["API"], urls["AWS (emulator)"], process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        reader.join(timeout=5)


@pytest.fixture(scope="session")
def imgflow_cli() -> list[str]:
    """The command that runs `imgflow` in this environment."""
    return imgflow_command()


@pytest.fixture(scope="session")
def open_image() -> Callable[[bytes], OutputImage]:
    """Decodes a downloaded result (see `open_output`)."""
    return open_output


@pytest.fixture(scope="session")
def serve_imgflow() -> Callable[..., AbstractContextManager[Pipeline]]:
    """Starts another `imgflow serve` (e.g. with `--parameter NAME=VALUE`) for a module that needs one."""
    return run_imgflow_server


@pytest.fixture(scope="session")
def pipeline(serve_imgflow: Callable[..., AbstractContextManager[Pipeline]]) -> Iterator[Pipeline]:
    """The session's `imgflow serve`, with the template's defaults."""
    with serve_imgflow() as served:
        yield served


# --- the step log of the servers a failed test used, attached to its report -------------------------

_LOG_OFFSETS = pytest.StashKey[dict[int, int]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    servers = [value for value in getattr(item, "funcargs", {}).values() if isinstance(value, Pipeline)]
    if call.when == "setup" and report.passed:
        item.stash[_LOG_OFFSETS] = {id(server): len(server.log) for server in servers}
    elif report.failed and servers:
        # A failed setup has no offsets yet: the end of the whole log then.
        offsets = item.stash.get(_LOG_OFFSETS, {})
        for server in servers:
            text = server.log_since(offsets.get(id(server), 0))
            report.sections.append((f"imgflow serve step log ({server.api_url})", text or "(nothing logged)"))
    return report
