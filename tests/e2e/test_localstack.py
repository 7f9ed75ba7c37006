"""`imgflow serve --aws-endpoint` against LocalStack in host mode (no Docker): a photo through the HTTP flow
with S3, SQS and EventBridge on LocalStack and DynamoDB on the embedded emulator (LocalStack's DynamoDB
downloads a JDK at first use, which cannot work offline).

LocalStack runs from .venv-localstack (`make localstack-venv`: it needs Python >= 3.12); where it is not
installed or cannot start, the test skips and says why.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from imgflow_local.runtime import free_port

if TYPE_CHECKING:
    from e2e.conftest import OutputImage, Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.localstack]

ROOT = Path(__file__).resolve().parents[2]
LOCALSTACK_PYTHON = ROOT / ".venv-localstack" / "bin" / "python"
PHOTO = ROOT / "tests" / "fixtures" / "images" / "photos" / "friends_by_Aitzol_Berasategi.jpg"
PRESETS = {"thumb": 150, "small": 600, "large": 1200, "full": 4096}
SERVICES = ("s3", "sqs", "events", "sts")
STARTUP_SECONDS = 60
# LocalStack's own entry point, less one DNS look-up: at start it resolves `s3.<its host>` to choose between
# virtual-host and path-style URLs for its internal clients, a query off this machine (seen with strace)
# for a name nobody needs here. Everything else it sends stays on loopback with the settings below.
LAUNCH = """
from localstack.utils.aws import aws_stack
aws_stack.CACHE_S3_HOSTNAME_DNS_STATUS = False
from localstack.runtime.main import main
main()
"""
STOP_SECONDS = 20
# LocalStack's start, `imgflow serve`'s and one photo's job take about 30 s on a quiet machine.
TEST_SECONDS = 240


def _localstack_environment(port: int, root: Path) -> dict[str, str]:
    """LocalStack's settings, and nothing of this shell's: only loopback, nothing fetched from outside."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SERVICES": ",".join(SERVICES),
        # Start the services before saying ready, so readiness is one health check.
        "EAGER_SERVICE_LOADING": "1",
        # No analytics, no certificate download, no DNS server on port 53: nothing leaves the machine.
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DNS_ADDRESS": "0",
        # Host mode keeps its state under this root instead of /var/lib/localstack.
        "FILESYSTEM_ROOT": str(root / "filesystem"),
    }


def _ready(url: str) -> bool:
    try:
        health = requests.get(f"{url}/_localstack/health", timeout=2).json()["services"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    return all(health.get(service) == "running" for service in SERVICES)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def localstack_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A LocalStack of its own on a free loopback port, stopped at the end; skips where it cannot start."""
    if not LOCALSTACK_PYTHON.is_file():
        pytest.skip("LocalStack is not installed: `make localstack-venv` makes .venv-localstack (Python >= 3.12)")
    root = tmp_path_factory.mktemp("localstack")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "localstack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(LOCALSTACK_PYTHON), "-c", LAUNCH],
            cwd=root,
            env=_localstack_environment(port, root),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                what = f"exited with {process.returncode}" if process.poll() is not None else "was not ready"
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.skip(f"LocalStack {what} within {STARTUP_SECONDS} s; its log ends:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(process)


@pytest.mark.timeout(TEST_SECONDS)
def test_given_localstack_for_s3_sqs_and_eventbridge_when_a_photo_is_uploaded_then_it_succeeds_with_its_variants(
    localstack_url: str,
    serve_imgflow: Callable[..., AbstractContextManager[Pipeline]],
    open_image: Callable[[bytes], OutputImage],
) -> None:
    photo = PHOTO.read_bytes()

    with serve_imgflow("--aws-endpoint", localstack_url, "--aws-endpoint", "dynamodb=embedded") as pipeline:
        upload = pipeline.upload(PHOTO.name, photo, "image/jpeg")
        final = pipeline.wait_for_job(upload.job_id).final
        events = pipeline.wait_for_events(upload.job_id, {"Job Accepted", "Variants Ready", "Job Succeeded"})
        downloads = {variant["preset"]: pipeline.download(variant["url"]) for variant in final["variants"]}
        step_log = "\n".join(pipeline.log)

    # The browser's POST went to LocalStack's S3, S3's notification reached ingest through its SQS, and
    # the lifecycle events came back through its EventBridge; only DynamoDB stayed embedded.
    assert upload.created["upload"]["url"].startswith(localstack_url)
    assert final["status"] == "succeeded", final
    assert {event["account"] for event in events} == {"000000000000"}
    assert re.search(r"dynamodb at http://127\.0\.0\.1:\d+ \(the embedded emulator\)", step_log), step_log
    assert set(downloads) == set(PRESETS)
    for preset, response in downloads.items():
        assert response.url.startswith(localstack_url)
        image = open_image(response.content)
        assert image.format == "WEBP"
        assert max(image.size) <= PRESETS[preset]
