"""`make bench-cold`: each function's cold start as Lambda runs it, in fresh processes: the CPU and wall
time of importing the handler module (Lambda's init phase), then of its first invocation.

The environment is the deployed one: LAMBDA_TASK_ROOT set (the X-Ray SDK and Powertools' Tracer act as
in Lambda, with tracing on, as `Tracing: Active` deploys it), the layer and the function's folder on the
path. The api's first invocation is GET /health, which needs no AWS service; the import's modules are
listed by cumulative time with `--modules` (`python -X importtime`).

CPU seconds are the primary figure (the machine is shared); medians of --repeat fresh processes,
functions interleaved."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Function folder -> handler module, and the event of a first invocation that needs no AWS service.
FUNCTIONS = {
    "api": ("functions/api", "api_handler", "api_health.json"),
    "ingest": ("functions/ingest", "ingest_handler", None),
    "variants": ("functions/variants", "variants_handler", None),
    "edit": ("functions/edit", "edit_handler", None),
    "webhook-fanout": ("functions/webhooks", "fanout_handler", None),
    "webhook-delivery": ("functions/webhooks", "delivery_handler", None),
}

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


def environment(tree: Path, folder: str, pycache: str | None = None) -> dict[str, str]:
    # An empty PYTHONPYCACHEPREFIX: every module is compiled from source on import, as from an artifact
    # without .pyc files (Lambda's /opt and /var/task are read-only, so it cannot keep what it compiles).
    cache = {"PYTHONPYCACHEPREFIX": pycache} if pycache else {}
    return {
        **cache,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(tree / "layers" / "imgflow"), str(tree / folder)]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(tree / folder),
        "JOBS_TABLE": "jobs",
        "UPLOADS_BUCKET": "uploads",
        "MEDIA_BUCKET": "media",
        "AWS_LAMBDA_FUNCTION_NAME": Path(folder).name,
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


def cold_start(tree: Path, name: str, bytecode: bool = True) -> dict[str, object]:
    folder, module, event = FUNCTIONS[name]
    code = _CHILD.format(module=module, event=str(EVENTS / event) if event else "")
    with tempfile.TemporaryDirectory(prefix="cold-start-") as empty:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=environment(tree, folder, None if bytecode else empty),
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"cold start of {name} failed:\n{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def modules(name: str, top: int) -> None:
    """The modules whose import costs most, cumulative (self included), from `python -X importtime`."""
    folder, module, _ = FUNCTIONS[name]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=environment(ROOT, folder),
        cwd=ROOT,
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
    samples: dict[tuple[str, str], list[dict[str, object]]] = {
        (tree, name): [] for name in args.functions for tree in trees
    }
    for _ in range(args.repeat):
        for name in args.functions:
            for tree, path in trees.items():
                samples[tree, name].append(cold_start(path, name, bytecode=not args.source_only))
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
        modules(name, args.modules)
    if args.json:
        args.json.write_text(json.dumps(medians, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
