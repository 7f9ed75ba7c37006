"""`make bench-cold`: each function's cold start as Lambda runs it, in fresh processes: the CPU and wall
time of importing the handler module (Lambda's init phase), then of its first invocation.

What runs is what `make package` ships, built for this machine: the function's code and its layers with
their locked requirements (this machine's wheels of the same versions, since the arm64 ones cannot load
here), every module compiled to unchecked-hash bytecode by python3.13, and python3.13 running it, with
nothing written back (Lambda's code is read-only). The environment is the deployed one: LAMBDA_TASK_ROOT
set (the X-Ray SDK and Powertools' Tracer act as in Lambda, with tracing on, as `Tracing: Active` deploys
it), the layers and the function's folder on the path. The api's first invocation is GET /health, which
needs no AWS service; the import's modules are listed by cumulative time with `--modules`
(`python -X importtime`).

CPU seconds are the primary figure (the machine is shared); medians of --repeat fresh processes,
functions interleaved."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
sys.path.insert(0, str(ROOT / "scripts"))

import package  # noqa: E402  (scripts/package.py: how `make package` builds and compiles an artifact)
from imgflow_local.template import load_template  # noqa: E402

# Name -> the template's function, and the event of a first invocation that needs no AWS service.
FUNCTIONS = {
    "api": ("ApiFunction", "api_health.json"),
    "ingest": ("IngestFunction", None),
    "variants": ("VariantsFunction", None),
    "edit": ("EditFunction", None),
    "webhook-fanout": ("WebhookFanOutFunction", None),
    "webhook-delivery": ("WebhookDeliveryFunction", None),
}
# The platform tags of the lock's wheels, for this machine's architecture instead of Lambda's arm64.
HOST_PLATFORMS = tuple(tag.replace("aarch64", platform.machine()) for tag in package.PIP_PLATFORMS)


@dataclass(frozen=True)
class Built:
    """One function as Lambda extracts it: its folder (/var/task) and its layers' python/ folders (/opt/python)."""

    task_root: Path
    paths: list[Path]
    module: str


def build_function(tree: Path, logical_id: str, into: Path) -> Built:
    """The function's artifact and its layers' from tree's template, as `make package` builds them."""
    application = package.read_application(tree / "template.yaml")
    handler: str = load_template(tree / "template.yaml")["Resources"][logical_id]["Properties"]["Handler"]
    layers: list[Path] = []
    for layer in application.function_layers[logical_id]:
        root = into / layer
        package.install_into(application.layers[layer], root / "python", HOST_PLATFORMS)
        package.compile_bytecode(root, package.LAYER_MOUNT)
        layers.append(root / "python")
    task_root = into / logical_id
    package.install_into(application.functions[logical_id], task_root, HOST_PLATFORMS)
    package.compile_bytecode(task_root, package.FUNCTION_MOUNT)
    # Lambda's order: the function's own folder first, then the layers'.
    return Built(task_root, [task_root, *layers], handler.rsplit(".", 1)[0])


# Runs in the fresh process: time the import, then the first invocation, and report as JSON.
_CHILD = """
import json, sys, time
started_cpu, started = time.process_time(), time.perf_counter()
import {module} as handler_module
import_cpu, import_wall = time.process_time() - started_cpu, time.perf_counter() - started
loaded = {{"xray_sdk": "aws_xray_sdk" in sys.modules, "boto3": "boto3" in sys.modules}}
first_cpu = first_wall = clients_cpu = None
if {event!r}:
    from dataclasses import dataclass
    @dataclass
    class Context:
        function_name: str = "api"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:api"
        aws_request_id: str = "cold-start"
        def get_remaining_time_in_millis(self): return 30000
    event = json.load(open({event!r}))
    started_cpu, started = time.process_time(), time.perf_counter()
    answer = handler_module.lambda_handler(event, Context())
    first_cpu, first_wall = time.process_time() - started_cpu, time.perf_counter() - started
    assert answer["statusCode"] == 200, answer
    # What a first request that calls AWS adds before its first call: the SDK and the uploads' clients.
    from imgflow import services
    started_cpu = time.process_time()
    services.uploads_service()
    clients_cpu = time.process_time() - started_cpu
print(json.dumps({{"import_cpu_s": import_cpu, "import_wall_s": import_wall, "first_cpu_s": first_cpu,
    "first_wall_s": first_wall, "clients_cpu_s": clients_cpu, **loaded}}))
"""


def environment(built: Built, pycache: str | None = None) -> dict[str, str]:
    # An empty PYTHONPYCACHEPREFIX: every module is compiled from source on import, as from an artifact
    # without .pyc files (Lambda's /opt and /var/task are read-only, so it cannot keep what it compiles).
    cache = {"PYTHONPYCACHEPREFIX": pycache} if pycache else {}
    return {
        **cache,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(path) for path in built.paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(built.task_root),
        "JOBS_TABLE": "jobs",
        "UPLOADS_BUCKET": "uploads",
        "MEDIA_BUCKET": "media",
        "AWS_LAMBDA_FUNCTION_NAME": built.task_root.name,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "cold-start",
        "AWS_SECRET_ACCESS_KEY": "cold-start",
        "POWERTOOLS_SERVICE_NAME": "imgflow",
        "POWERTOOLS_METRICS_NAMESPACE": "imgflow",
        # The first invocation would otherwise print its metrics blob (no CloudWatch here to read it).
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


def cold_start(built: Built, name: str, bytecode: bool = True) -> dict[str, object]:
    event = FUNCTIONS[name][1]
    code = _CHILD.format(module=built.module, event=str(EVENTS / event) if event else "")
    with tempfile.TemporaryDirectory(prefix="cold-start-") as empty:
        done = subprocess.run(
            [package.lambda_python(), "-c", code],
            env=environment(built, None if bytecode else empty),
            cwd=built.task_root,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"cold start of {name} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def modules(built: Built, name: str, top: int) -> None:
    """The modules whose import costs most, cumulative (self included), from `python -X importtime`."""
    done = subprocess.run(
        [package.lambda_python(), "-X", "importtime", "-c", f"import {built.module}"],
        env=environment(built),
        cwd=built.task_root,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[int, int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, label = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative), int(own), label.rstrip()))
    print(f"  {name}: the {top} costliest imports (cumulative ms, self ms; wall, one process)")
    for total_us, own_us, label in sorted(rows, reverse=True)[:top]:
        print(f"    {total_us / 1000:7.1f} {own_us / 1000:7.1f} {label}")


def _median(runs: list[dict[str, object]], key: str) -> float | None:
    values = [float(run[key]) for run in runs if run[key] is not None]  # type: ignore[arg-type]
    return statistics.median(values) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("functions", nargs="*", default=["api"], metavar="FUNCTION", help=", ".join(FUNCTIONS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="TREE",
        help="another checkout to measure in the same run, interleaved (e.g. `git archive HEAD~3 | tar -x -C /tmp/b`)",
    )
    parser.add_argument(
        "--source-only",
        action="store_true",
        help="compile every module from source, as an artifact without .pyc files makes Lambda do",
    )
    parser.add_argument("--modules", type=int, default=0, metavar="N", help="list the N costliest imports too")
    parser.add_argument("--json", type=Path, help="write the medians here")
    args = parser.parse_args(argv)
    unknown = set(args.functions) - set(FUNCTIONS)
    if unknown:
        parser.error(f"unknown function(s) {', '.join(sorted(unknown))}; choose from {', '.join(FUNCTIONS)}")
    trees = {"this tree": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory(prefix="cold-start-build-") as scratch:
        built = {
            (tree, name): build_function(path, FUNCTIONS[name][0], Path(scratch) / f"{index}-{name}")
            for name in args.functions
            for index, (tree, path) in enumerate(trees.items())
        }
        report(args, built)
    return 0


def report(args: argparse.Namespace, built: dict[tuple[str, str], Built]) -> None:
    samples: dict[tuple[str, str], list[dict[str, object]]] = {key: [] for key in built}
    for _ in range(args.repeat):
        for key, function in built.items():
            samples[key].append(cold_start(function, key[1], bytecode=not args.source_only))
    print(f"cold start, medians of {args.repeat} fresh processes, interleaved (CPU is the primary figure; ms)")
    header = f"{'import CPU':>10} {'wall':>6} {'1st call CPU':>12} {'+ clients CPU':>13}"
    print(f"  {'function':<16} {'tree':<10} {header}  loaded")
    medians: dict[str, dict[str, object]] = {}
    for (tree, name), runs in samples.items():
        row: dict[str, object] = {
            key: _median(runs, key) for key in ("import_cpu_s", "import_wall_s", "first_cpu_s", "clients_cpu_s")
        }
        loaded = [label for label, key in (("X-Ray SDK", "xray_sdk"), ("boto3", "boto3")) if runs[0][key]]
        row["loaded_by_import"] = loaded
        medians[f"{name} ({tree})"] = row
        print(
            f"  {name:<16} {tree:<10} {_ms(row['import_cpu_s']):>10} {_ms(row['import_wall_s']):>6} "  # type: ignore[arg-type]
            f"{_ms(row['first_cpu_s']):>12} {_ms(row['clients_cpu_s']):>13}  {', '.join(loaded) or '-'}"  # type: ignore[arg-type]
        )
    print("  (1st call: GET /health; clients: what a first request that calls AWS adds, the SDK and its clients)")
    for name in args.functions if args.modules else []:
        modules(built["this tree", name], name, args.modules)
    if args.json:
        args.json.write_text(json.dumps(medians, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
