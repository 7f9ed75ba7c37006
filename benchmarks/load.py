"""`make load`: the local runtime's measured limits, driven over HTTP as clients drive it.

0. One at a time: the 12 MP photo uploaded S times in a row by one client (warm containers, no load of
   our own): upload -> succeeded as one user sees it.
1. Uploads: N uploads (default 200) from C concurrent clients (default 8), each as the Python client does
   it (POST /uploads, the presigned POST to S3, long polls of GET /jobs/{id}); every job must end.
   Reports throughput and upload -> succeeded (from POST /uploads to the poll that sees `succeeded`).
2. Status: GET /jobs/{id} at a fixed rate (default 100/s), open loop: each request is due at its own time
   whether or not earlier ones have answered, and its latency counts from when it was due, so a slow
   server cannot hide behind a slow client. Reports p50/p99 and the rate achieved.
3. Requests: a few uploads more, one at a time, with the emulator recording every AWS request it serves
   (moto's recorder): the requests per upload by service and operation, for the cost model.

The runtime is `imgflow serve` in a process of its own; its step log gives each function invocation's
duration (and cold starts). Figures are for this machine (shared, 2 cores): the runtime, the emulator
and the functions share them with this driver. Writes benchmarks/load-results.json.

The photo mix (tests/fixtures/images/photos): half 12 MP JPEGs (what phones save), three in ten 6 MP
JPEGs (photos already resized by an app or a messenger), two in ten 8.7 MP PNGs (screenshots and
graphics: lossless, the costliest decode per byte).
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import platform
import queue
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from imgflow_client import Client

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "fixtures" / "images" / "photos"
# Ten uploads' worth of the mix, repeated: 5 x 12 MP JPEG, 3 x 6 MP JPEG, 2 x 8.7 MP PNG.
MIX = ["sunset_by_Aitzol_Berasategi.jpg"] * 5 + ["friends_by_Aitzol_Berasategi.jpg"] * 3 + ["goldfish.png"] * 2
ORDER = [0, 5, 1, 8, 2, 6, 3, 9, 4, 7]  # interleaved, so every stretch of the run sees the whole mix
_STEP = re.compile(r"^\d\d:\d\d:\d\d  (\w+)\s+(init\s+)?(\d+) ms  (.*)$")
_COLD = re.compile(r"cold start: new container, (\d+) ms")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(memory_kb / 2**20, 1),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "shared": "yes: other work runs beside this one; wall times swing 2-3x",
    }


@dataclass
class Runtime:
    """`imgflow serve` in a process of its own, its step log collected as it prints."""

    process: subprocess.Popen[str]
    api_url: str
    aws_url: str
    log: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, recording: Path, max_containers: int) -> Runtime:
        port, aws_port = free_port(), free_port()
        environment = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
        imgflow = str(Path(sys.executable).parent / "imgflow")
        ports = ("--port", str(port), "--aws-port", str(aws_port))
        process = subprocess.Popen(
            [imgflow, "serve", *ports, "--max-containers", str(max_containers)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        runtime = cls(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{aws_port}")
        threading.Thread(target=runtime._collect, daemon=True).start()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("imgflow serve exited:\n" + "\n".join(runtime.log[-30:]))
            try:
                # The first answer waits for the api function's init, which a busy machine makes slow.
                if requests.get(f"{runtime.api_url}/health", timeout=60).status_code == 200:
                    return runtime
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise SystemExit("imgflow serve did not answer /health within 180 s")

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def invocations(self, since: int) -> dict[str, dict[str, Any]]:
        """Each function's invocations in the step log since line `since`: count, durations, cold starts."""
        durations: dict[str, list[float]] = collections.defaultdict(list)
        inits: dict[str, list[float]] = collections.defaultdict(list)
        cold: dict[str, int] = collections.Counter()
        for line in self.log[since:]:
            match = _STEP.match(line)
            if not match:
                continue
            function, init, ms, outcome = match.groups()
            if init:
                inits[function].append(float(ms))
                continue
            # A cold invocation's duration includes the container's start (a fork here, not Lambda's init).
            started = _COLD.search(outcome)
            durations[function].append(float(ms) - (float(started.group(1)) if started else 0))
            cold[function] += bool(started)
        return {
            function: {
                "invocations": len(values),
                "cold_starts": cold[function],
                "duration_ms_mean": statistics.fmean(values),
                "duration_ms_p50": percentile(values, 0.5),
                "duration_ms_p95": percentile(values, 0.95),
                "init_ms": inits[function],
            }
            for function, values in sorted(durations.items())
        }


def function_cpu(runtime_pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds so far of the runtime's function processes, by pid: the loaders and the containers
    they fork, the work itself, which the step log's wall times on a shared machine are not. A loader is
    forked by the runtime's zygote (`python -m imgflow_local.execution FD --zygote`) and named after its
    function in /proc/PID/comm (15 characters; its containers inherit the name), or, without a zygote,
    is `python -m imgflow_local.execution ... SPEC`. The zygote's own imports are no function's."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes, parents, forked = {}, {}, set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().split(b"\0")
            if b"imgflow_local.execution" not in command:
                continue
            zygote_made = b"--zygote" in command
            name = (proc / "comm").read_text().strip() if zygote_made else _spec_name(command)
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, KeyError, IndexError):
            continue  # gone, or not one of ours
        processes[int(proc.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
        parents[int(proc.name)] = int(fields[1])
        if zygote_made:
            forked.add(int(proc.name))
    zygotes = {pid for pid in forked if parents[pid] == runtime_pid}
    loaders = {pid for pid, parent in parents.items() if parent == runtime_pid or parent in zygotes} - zygotes
    names = _function_names()
    return {
        pid: (next((full for full in names if full[:15] == name), name), used)
        for pid, (name, used) in processes.items()
        if pid in loaders or parents[pid] in loaders
    }


def _spec_name(command: list[bytes]) -> str:
    name: str = json.loads(command[-2] or command[-1])["function_name"]
    return name


def _function_names() -> list[str]:
    from imgflow_local.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"]
    return [name for name, resource in resources.items() if resource["Type"] == "AWS::Serverless::Function"]


def cpu_by_function(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each function used between two samples (a container forked between them from zero)."""
    used: dict[str, float] = collections.defaultdict(float)
    for pid, (function, seconds) in after.items():
        used[function] += seconds - before.get(pid, (function, 0.0))[1]
    return dict(sorted(used.items()))


def tokens(owners: list[str]) -> list[str]:
    """Bearer tokens of the local issuer, one per simulated client (each is an owner with its own quota)."""
    from imgflow_local.auth import LocalIssuer
    from imgflow_local.runtime import REGION, issue_token
    from imgflow_local.stack import LocalStack

    stack = LocalStack(ROOT / "template.yaml", REGION)
    issuer = LocalIssuer.load()
    return [issue_token(stack, issuer, owner, None, 3600) for owner in owners]


@dataclass
class Upload:
    photo: str
    owner: str
    seconds: float
    status: str
    job_id: str
    variant_bytes: int
    error: str | None = None


def upload(client: Client, photo: str, owner: str) -> Upload:
    started = time.perf_counter()
    try:
        job = client.upload(PHOTOS / photo, timeout=900)
    except Exception as error:  # a driver error is a result to report, not a reason to stop the run
        return Upload(
            photo, owner, time.perf_counter() - started, "driver-error", "", 0, f"{type(error).__name__}: {error}"
        )
    size = sum(variant["bytes"] for variant in job.get("variants", []))
    reason = job.get("error")
    seconds = time.perf_counter() - started
    return Upload(photo, owner, seconds, job["status"], job["job_id"], size, str(reason) if reason else None)


def upload_phase(runtime: Runtime, owners: list[str], count: int) -> tuple[list[Upload], float]:
    clients = [Client(runtime.api_url, token) for token in tokens(owners)]
    photos = [MIX[ORDER[i % len(MIX)]] for i in range(count)]
    lanes = [photos[lane :: len(clients)] for lane in range(len(clients))]

    def run_lane(lane: int) -> list[Upload]:
        return [upload(clients[lane], photo, owners[lane]) for photo in lanes[lane]]

    started = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = [done for lane in pool.map(run_lane, range(len(clients))) for done in lane]
    return results, time.perf_counter() - started


def status_phase(runtime: Runtime, token: str, job_ids: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """Open loop: request i is due at start + i/rate; workers take requests as they fall due."""
    due: queue.Queue[tuple[float, str] | None] = queue.Queue()
    latencies: list[float] = []
    services: list[float] = []
    failures: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    workers = 64

    def work() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {token}"}
        while (item := due.get()) is not None:
            due_at, job_id = item
            sent = time.perf_counter()
            try:
                answer = session.get(f"{runtime.api_url}/jobs/{job_id}", headers=headers, timeout=30)
                outcome = None if answer.status_code == 200 else f"HTTP {answer.status_code}"
            except requests.RequestException as error:
                outcome = type(error).__name__
            done = time.perf_counter()
            with lock:
                if outcome:
                    failures[outcome] += 1
                latencies.append(done - due_at)
                services.append(done - sent)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        due_at = started + i / rate
        delay = due_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due.put((due_at, job_ids[i % len(job_ids)]))
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "target_rate": rate,
        "requests": total,
        "achieved_rate": total / elapsed,
        "failures": dict(failures),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "service_p50_ms": percentile(services, 0.5) * 1000,
        "service_p99_ms": percentile(services, 0.99) * 1000,
        "client_workers": workers,
    }


def _operation(entry: dict[str, Any]) -> tuple[str, str] | None:
    """(service, operation) of one recorded request, from its signature's scope and its target or path."""
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    target = headers.get("x-amz-target", "")
    scope = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", headers.get("authorization", ""))
    if target:
        service = {
            "DynamoDB": "dynamodb",
            "DynamoDBStreams": "dynamodbstreams",
            "AWSEvents": "events",
            "AmazonSQS": "sqs",
        }.get(target.split("_")[0].split(".")[0], target)
        return service, target.rsplit(".", 1)[-1]
    url = urlparse(entry["url"])
    if scope and scope.group(1) != "s3":
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        action = re.search(r"Action=(\w+)", f"{url.query}&{body}")
        return scope.group(1), action.group(1) if action else entry["method"]
    # S3: presigned POSTs carry no Authorization header; tell operations apart by method and query.
    query = url.query
    if entry["method"] == "POST" and not query:
        return "s3", "PostObject"
    if entry["method"] == "PUT":
        return "s3", "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
    if entry["method"] == "GET":
        return "s3", "ListObjects" if "list-type" in query or url.path.count("/") <= 1 else "GetObject"
    if entry["method"] == "HEAD":
        return "s3", "HeadObject"
    if entry["method"] == "DELETE":
        return "s3", "DeleteObject"
    if entry["method"] == "POST" and "delete" in query:
        return "s3", "DeleteObjects"
    return "s3", f"{entry['method']} ?{query}"


def request_phase(runtime: Runtime, recording: Path, token: str, count: int) -> dict[str, Any]:
    """AWS requests per upload, as the emulator served them, with the runtime idle otherwise."""
    client = Client(runtime.api_url, token)
    idle_seconds = 5.0
    recorder = f"{runtime.aws_url}/moto-api/recorder"
    # What the runtime asks of AWS when nothing happens (its pollers' long polls): measured, then subtracted.
    requests.post(f"{recorder}/reset-recording", timeout=10).raise_for_status()
    requests.post(f"{recorder}/start-recording", timeout=10).raise_for_status()
    time.sleep(idle_seconds)
    requests.post(f"{recorder}/stop-recording", timeout=10).raise_for_status()
    idle = _count(recording)
    requests.post(f"{recorder}/reset-recording", timeout=10).raise_for_status()
    requests.post(f"{recorder}/start-recording", timeout=10).raise_for_status()
    started = time.perf_counter()
    photos = [MIX[ORDER[i % len(MIX)]] for i in range(count)]
    jobs = [upload(client, photo, "load-sample") for photo in photos]
    # The last steps' writes (events after `succeeded`, deletes of consumed messages) land just after.
    time.sleep(2)
    requests.post(f"{recorder}/stop-recording", timeout=10).raise_for_status()
    elapsed = time.perf_counter() - started
    busy = _count(recording)
    per_upload: dict[str, float] = {}
    for key, number in busy.items():
        # Pollers (SQS long polls, the stream's GetRecords) run all the time: what uploads add is what
        # exceeds the idle rate over the same time.
        added = max(0.0, number - idle.get(key, 0) * elapsed / idle_seconds)
        per_upload[f"{key[0]}:{key[1]}"] = round(added / count, 2)
    return {
        "uploads": count,
        "statuses": collections.Counter(job.status for job in jobs),
        "job_item": job_items(runtime, [job.job_id for job in jobs if job.job_id]),
        "upload_bytes_mean": statistics.fmean((PHOTOS / photo).stat().st_size for photo in photos),
        "variant_bytes_mean": statistics.fmean(job.variant_bytes for job in jobs),
        "per_upload": dict(sorted(per_upload.items())),
        "idle_per_minute": {f"{s}:{o}": round(n * 60 / idle_seconds, 1) for (s, o), n in sorted(idle.items())},
    }


def _count(recording: Path) -> collections.Counter[tuple[str, str]]:
    """Requests by (service, operation); EventBridge's billed events (PutEvents entries) as events:Entries."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if not recording.exists():
        return counts
    for entry in _entries(recording.read_text()):
        body = base64.b64decode(entry["body"] or "") if entry.get("body_encoded") else (entry["body"] or "")
        if "local-lifecycle" in str(body) + entry["url"]:
            continue  # the runtime's own step log reads the bus through a queue that AWS would not have
        operation = _operation(entry)
        if operation:
            counts[operation] += 1
        if operation == ("events", "PutEvents"):
            counts["events", "Entries"] += len(json.loads(body).get("Entries", []))
    return counts


def _entries(text: str) -> list[dict[str, Any]]:
    """The recorded requests. moto's server threads append to the file without a lock, so two entries can
    share a line: read object after object rather than line by line."""
    decoder, entries, at = json.JSONDecoder(), [], 0
    while (at := text.find("{", at)) != -1:
        try:
            entry, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            at += 1  # a torn write: skip to the next object
            continue
        if isinstance(entry, dict) and "method" in entry and "url" in entry:
            entries.append(entry)  # not an object nested in a torn one
    return entries


def job_items(runtime: Runtime, job_ids: list[str]) -> dict[str, float]:
    """Size of the sample jobs' items as stored (JSON of the attribute values: close to DynamoDB's own
    count of names and values), which sets the read and write units each request costs."""
    import boto3

    from imgflow_local.runtime import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=runtime.aws_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    table = next(name for name in dynamodb.list_tables()["TableNames"] if name.endswith("JobsTable"))
    sizes = []
    for job_id in job_ids:
        item = dynamodb.get_item(TableName=table, Key={"pk": {"S": job_id}}).get("Item")
        if item:
            sizes.append(sum(len(name) + len(json.dumps(value)) for name, value in item.items()))
    return {"jobs": len(sizes), "item_bytes_median": statistics.median(sizes) if sizes else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=10, help="12 MP uploads one at a time first")
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, default=100, help="status requests per second")
    parser.add_argument("--seconds", type=float, default=30, help="how long the status phase runs")
    parser.add_argument("--sample", type=int, default=5, help="uploads whose AWS requests are counted")
    parser.add_argument("--max-containers", type=int, default=10, help="imgflow serve --max-containers")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "load-results.json")
    args = parser.parse_args(argv)

    recording = Path(f"/tmp/imgflow-load-recording-{os.getpid()}.jsonl")
    results: dict[str, Any] = {"machine": machine(), "mix": collections.Counter(MIX)}
    runtime = Runtime.start(recording, args.max_containers)
    try:
        owners = [f"load-{lane}" for lane in range(args.clients)]
        if args.single:
            print(f"one at a time: {args.single} uploads of the 12 MP photo ...", flush=True)
            single = Client(runtime.api_url, tokens(["load-single"])[0])
            # The first warms every function's container; it is not counted.
            warm, *timed = [upload(single, MIX[0], "load-single") for _ in range(args.single + 1)]
            seconds = [u.seconds for u in timed if u.status == "succeeded"]
            results["single"] = {
                "photo": MIX[0],
                "uploads": len(timed),
                "succeeded": len(seconds),
                "first_upload_s": warm.seconds,
                "upload_to_succeeded_p50_s": percentile(seconds, 0.5) if seconds else None,
                "upload_to_succeeded_p95_s": percentile(seconds, 0.95) if seconds else None,
                "all_s": [round(value, 3) for value in seconds],
            }
            print(json.dumps(results["single"], indent=2), flush=True)
        if args.uploads:
            run_load(runtime, args, owners, results)
        if args.sample:
            print(f"requests: {args.sample} uploads with the emulator recording ...", flush=True)
            results["requests"] = request_phase(runtime, recording, tokens(["load-sample"])[0], args.sample)
            print(json.dumps(results["requests"], indent=2, default=str), flush=True)
    finally:
        runtime.stop()
        recording.unlink(missing_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")
    return 0 if not args.uploads or results["uploads"]["terminal"] == args.uploads else 1


def run_load(runtime: Runtime, args: argparse.Namespace, owners: list[str], results: dict[str, Any]) -> None:
    print(f"uploads: {args.uploads} from {args.clients} clients ...", flush=True)
    mark, cpu_before = len(runtime.log), function_cpu(runtime.process.pid)
    uploads, elapsed = upload_phase(runtime, owners, args.uploads)
    cpu = cpu_by_function(cpu_before, function_cpu(runtime.process.pid))
    succeeded = [u for u in uploads if u.status == "succeeded"]
    terminal = [u for u in uploads if u.status in ("succeeded", "failed", "rejected", "expired")]
    seconds = [u.seconds for u in succeeded]
    by_photo = {
        photo: {
            "count": len(times := [u.seconds for u in succeeded if u.photo == photo]),
            "p50_s": percentile(times, 0.5) if times else None,
            "variant_bytes": statistics.median([u.variant_bytes for u in succeeded if u.photo == photo])
            if times
            else None,
        }
        for photo in sorted(set(MIX))
    }
    results["uploads"] = {
        "uploads": len(uploads),
        "clients": args.clients,
        "terminal": len(terminal),
        "statuses": collections.Counter(u.status for u in uploads),
        "errors": sorted({u.error for u in uploads if u.error})[:10],
        "seconds": elapsed,
        "uploads_per_second": len(uploads) / elapsed,
        "upload_to_succeeded_p50_s": percentile(seconds, 0.5) if seconds else None,
        "upload_to_succeeded_p95_s": percentile(seconds, 0.95) if seconds else None,
        "by_photo": by_photo,
        "invocations": runtime.invocations(mark),
        "function_cpu_s": cpu,
        "function_cpu_s_per_upload": {function: used / len(uploads) for function, used in cpu.items()},
    }
    print(json.dumps(results["uploads"], indent=2, default=str), flush=True)

    print(f"status: GET /jobs/{{id}} at {args.rate:g}/s for {args.seconds:g} s, open loop ...", flush=True)
    # One owner's jobs, read with that owner's token, as its client would poll them.
    job_ids = [u.job_id for u in uploads if u.job_id and u.owner == owners[0]]
    results["status"] = status_phase(runtime, tokens(owners[:1])[0], job_ids, args.rate, args.seconds)
    print(json.dumps(results["status"], indent=2), flush=True)


if __name__ == "__main__":
    sys.exit(main())
