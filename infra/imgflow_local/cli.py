"""The `imgflow` command: `serve` runs the whole system locally; `process` pushes files through it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from imgflow_client import Client
from imgflow_local.auth import LocalIssuer
from imgflow_local.endpoints import AwsEndpoints, EndpointError
from imgflow_local.faults import SEED_VARIABLE, SPEC_VARIABLE, FaultSpec, FaultSpecError
from imgflow_local.iam import IamError
from imgflow_local.processing import WHAT_TO_PASS, expand_inputs, process_files
from imgflow_local.runtime import REGION, LocalRuntime, RuntimeOptions, issue_token
from imgflow_local.stack import LocalStack

# Whom `imgflow process` uploads as.
CLI_OWNER = "cli"


def _find_template() -> Path:
    for folder in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (folder / "template.yaml").is_file():
            return folder / "template.yaml"
    raise SystemExit("imgflow: no template.yaml here or above; run it from the project or pass --template")


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"imgflow: --parameter wants NAME=VALUE, got {pair!r}")
        parameters[name] = value
    return parameters


def _aws_endpoints(values: list[str]) -> AwsEndpoints:
    try:
        return AwsEndpoints.parse(values)
    except EndpointError as error:
        raise SystemExit(f"imgflow: {error}") from error


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", type=Path, help="the SAM template (default: ./template.yaml)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (repeatable)",
    )
    parser.add_argument(
        "--aws-endpoint",
        action="append",
        default=[],
        metavar="[SERVICE=]URL",
        help="use this running emulator (e.g. LocalStack) instead of the embedded one; SERVICE=URL for one "
        "service, SERVICE=embedded to keep it on the embedded emulator (repeatable: e.g. URL, then dynamodb=embedded)",
    )
    parser.add_argument(
        "--schedule-interval",
        type=int,
        metavar="SECONDS",
        help="run scheduled functions (e.g. the expiry sweep) this often instead of their template rate",
    )
    parser.add_argument(
        "--max-containers",
        type=int,
        default=10,
        metavar="N",
        help="containers per function when the template reserves no concurrency for it (default 10)",
    )
    parser.add_argument(
        "--retry-delay",
        type=int,
        metavar="SECONDS",
        help="bring failed messages back after this many seconds instead of the queue's visibility timeout",
    )
    parser.add_argument(
        "--no-iam",
        dest="iam",
        action="store_false",
        help="run every function with the runtime's own credentials instead of its role's, unchecked",
    )
    parser.add_argument(
        "--faults",
        default=os.environ.get(SPEC_VARIABLE, ""),
        metavar="SPEC",
        help="inject faults, e.g. 'crash_after=0.1,duplicate=0.2,throttle=0.05,VariantsFunction.timeout=0.01' "
        f"(default: ${SPEC_VARIABLE}; see the README)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get(SEED_VARIABLE) or 0),
        help=f"the seed injected faults derive from (default: ${SEED_VARIABLE} or 0)",
    )


def _options(args: argparse.Namespace, **overrides: object) -> RuntimeOptions:
    options = RuntimeOptions(
        template=args.template or _find_template(),
        aws_endpoints=_aws_endpoints(args.aws_endpoint),
        retry_delay=args.retry_delay,
        max_containers=args.max_containers,
        schedule_interval=args.schedule_interval,
        iam=args.iam,
        faults=FaultSpec.parse(args.faults),
        fault_seed=args.seed,
        # Handlers log JSON at WARNING and above locally; `--parameter LogLevel=INFO` shows everything.
        parameters={"LogLevel": "WARNING", **_parameters(args.parameter)},
    )
    for name, value in overrides.items():
        setattr(options, name, value)
    return options


def _refuse_busy_ports(host: str, ports: list[tuple[int, str, str]]) -> None:
    """Say which port is taken and which flag moves it, before werkzeug's bare "Address already in use"."""
    for port, flag, role in ports:
        if port == 0:
            continue
        with socket.socket() as probe:
            # As the servers bind: a port left in TIME_WAIT by a runtime just stopped is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                raise SystemExit(
                    f"imgflow: port {port} ({role}) on {host} is not free ({error.strerror}). Stop what holds it "
                    f"(`ss -ltnp 'sport = :{port}'` names it) or choose another: `imgflow serve {flag} {port + 1}`, "
                    f'or `make run ARGS="{flag} {port + 1}"`.'
                ) from error


def serve(args: argparse.Namespace) -> int:
    busy_checks = [(args.port, "--port", "the HTTP API and demo page")]
    if _aws_endpoints(args.aws_endpoint).needs_embedded:
        busy_checks.append((args.aws_port, "--aws-port", "the AWS endpoint"))
    _refuse_busy_ports(args.host, busy_checks)
    runtime = LocalRuntime(
        _options(
            args,
            api_port=args.port,
            aws_port=args.aws_port,
            host=args.host,
            open_access=args.open,
            log=lambda line: print(line, flush=True),
        )
    )
    runtime.start()
    print(
        f"imgflow is running\n  API:       {runtime.api_url}\n  demo page: {runtime.api_url}/\n"
        f"  AWS (emulator): {runtime.aws_url}\nPress Ctrl+C to stop.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        # Awake now and then: Python runs a signal's handler in the main thread, between bytecodes, and
        # a SIGTERM the kernel hands another thread would never interrupt a wait without a timeout.
        while not stop.wait(timeout=0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()
    return 0


def _edits(args: argparse.Namespace) -> list[dict[str, Any]]:
    edits: list[dict[str, Any]] = []
    for raw in args.edit:
        try:
            edits.append(json.loads(raw))
        except json.JSONDecodeError as error:
            example = '{"operations": [{"op": "grayscale"}]}'
            raise SystemExit(f"imgflow: --edit wants JSON such as '{example}': {error}") from error
    edits += [{"prompt": prompt} for prompt in args.prompt]
    edits += [{"translate_to": language} for language in args.translate_to]
    return edits


def token(args: argparse.Namespace) -> int:
    """Print a bearer token of the local issuer, and nothing else: `TOKEN=$(imgflow token --sub alice)`."""
    stack = LocalStack(args.template or _find_template(), REGION, parameter_overrides=_parameters(args.parameter))
    scopes = None if args.scope is None else [scope for scope in args.scope if scope]
    print(issue_token(stack, LocalIssuer.load(), args.sub, scopes, args.ttl))
    return 0


# The functions every upload runs on its way to its result: `imgflow process` imports their handlers while
# the runtime starts. The others (the sweep, webhooks, and edits unless asked for) import theirs at their
# first invocation, if any: each import is ~0.4 s of CPU that one image need not wait behind.
UPLOAD_FUNCTIONS = frozenset({"ApiFunction", "IngestFunction", "VariantsFunction", "PublisherFunction"})


def process(args: argparse.Namespace) -> int:
    inputs = expand_inputs(args.files)
    if inputs.problems or not inputs.files:
        problems = "; ".join(inputs.problems) or "nothing to process"
        print(f"imgflow: {problems} ({WHAT_TO_PASS})", file=sys.stderr)
        return 2

    # stdout carries only results (one JSON line per file with --json); everything else goes to stderr.
    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # The runtime's step log only with --verbose: its start is announced here instead.
    started = time.monotonic()
    say("imgflow: starting the local runtime (AWS emulator, the template's resources, the functions)...")
    log = say if args.verbose else lambda _line: None
    edits = _edits(args)
    preload = UPLOAD_FUNCTIONS | ({"EditFunction"} if edits else set())
    runtime = LocalRuntime(_options(args, api_port=0, aws_port=0, log=log, preload=preload)).start()
    try:
        say(f"imgflow: ready after {time.monotonic() - started:.1f} s; processing {len(inputs.files)} file(s)")
        ok = process_files(
            Client(runtime.api_url, runtime.token(CLI_OWNER)),
            inputs.files,
            args.out,
            as_json=args.json,
            formats=args.format,
            edits=edits,
        )
    finally:
        runtime.stop(exiting=True)
    _end_process(0 if ok else 1)


def _end_process(code: int) -> NoReturn:
    """End here, without the interpreter's teardown: it would join the emulator's request threads, which
    wait out the pollers' long polls (half a second), and daemon threads cut off in the middle of a call
    would print their tracebacks. Nothing is left to clean up: the containers and loaders are stopped and
    the runtime writes no files."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def soak(args: argparse.Namespace) -> int:
    from imgflow_local.soak import soak as run_soak

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # Failed messages back within seconds, not the queues' minutes; schedules (sweeps) every few seconds.
    options = _options(
        args,
        api_port=0,
        aws_port=0,
        log=say if args.verbose else lambda _line: None,
        retry_delay=2 if args.retry_delay is None else args.retry_delay,
        schedule_interval=args.schedule_interval or 10,
    )
    return run_soak(
        options,
        uploads=args.uploads,
        concurrency=args.concurrency,
        patience=args.patience,
        as_json=args.json,
        poison=args.uploads // 100 if args.poison is None else args.poison,
    )


def dlq(args: argparse.Namespace) -> int:
    from imgflow_local.dlq import command

    return command(args, args.template or _find_template())


def events(args: argparse.Namespace) -> int:
    from imgflow_local.event_tail import BusSource, EventFilter, LocalSource, describe, tail

    event_filter = EventFilter(job_id=args.job, types=frozenset(args.type))
    source: LocalSource | BusSource
    try:
        if args.bus:
            import boto3

            source = BusSource(boto3.session.Session(), args.bus, event_filter)
        else:
            # Following everything starts from now; a job's history, or a one-off read, from the start.
            source = LocalSource(args.api, from_start=bool(args.job) or not args.follow)
    except Exception as error:
        where = f"the bus {args.bus}" if args.bus else f"the local runtime at {args.api} (is `imgflow serve` running?)"
        print(f"imgflow events: cannot read {where}: {error}", file=sys.stderr)
        return 1
    if args.follow:
        # On stderr, so that a script knows when what happens next will be printed (stdout stays events only).
        print(f"imgflow events: following {args.bus or args.api}; Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        for event in tail(source, event_filter, follow=args.follow):
            print(json.dumps(event) if args.json else describe(event), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgflow", description="imgflow's local runtime and tools")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the whole system on this machine")
    _add_runtime_options(serve_parser)
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=3000, help="HTTP API port (default 3000)")
    serve_parser.add_argument("--aws-port", type=int, default=4566, help="AWS endpoint port (default 4566)")
    serve_parser.add_argument(
        "--open", action="store_true", help="serve requests without a token as the owner 'local' (no 401)"
    )
    serve_parser.set_defaults(run=serve)

    token_parser = commands.add_parser("token", help="print a bearer token for the local runtime's API")
    token_parser.add_argument("--sub", required=True, help="the owner the token speaks for")
    token_parser.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help="a scope to grant (repeatable; default: the EditScope, imgflow/edit); --scope '' grants none",
    )
    token_parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token_parser.add_argument("--template", type=Path, help="the SAM template (default: ./template.yaml)")
    token_parser.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE")
    token_parser.set_defaults(run=token)

    process_parser = commands.add_parser("process", help="upload files through the local system and save the results")
    _add_runtime_options(process_parser)
    process_parser.add_argument(
        "files", nargs="+", metavar="PATH", help="image files, directories (their images) or quoted globs ('a/*.jpg')"
    )
    process_parser.add_argument(
        "--out", type=Path, default=Path("imgflow-out"), help="where results go (./imgflow-out)"
    )
    process_parser.add_argument(
        "--json",
        action="store_true",
        help="print each job view as one JSON line, with the local `path` of every saved result",
    )
    process_parser.add_argument(
        "--format", action="append", choices=["webp", "avif", "jpeg"], help="output format (repeatable; default webp)"
    )
    process_parser.add_argument(
        "--edit",
        action="append",
        default=[],
        metavar="JSON",
        help='an edit as JSON: {"prompt": ...}, {"translate_to": ...} or {"operations": [...]} (repeatable)',
    )
    process_parser.add_argument(
        "--prompt", action="append", default=[], metavar="TEXT", help="a Gemini edit (repeatable; GEMINI_API_KEYS)"
    )
    process_parser.add_argument(
        "--translate-to", action="append", default=[], metavar="LANG", help="translate the text in the image (Gemini)"
    )
    process_parser.add_argument("--verbose", action="store_true", help="print the runtime's step log on stderr")
    process_parser.set_defaults(run=process)

    soak_parser = commands.add_parser(
        "soak", help="upload many images with faults injected, then check that nothing was lost or duplicated"
    )
    _add_runtime_options(soak_parser)
    soak_parser.add_argument("--uploads", type=int, required=True, metavar="N", help="how many uploads")
    soak_parser.add_argument("--concurrency", type=int, default=8, metavar="C", help="uploads at once (default 8)")
    soak_parser.add_argument(
        "--patience",
        type=float,
        default=300,
        metavar="SECONDS",
        help="stop waiting when no job has changed for this long (default 300)",
    )
    soak_parser.add_argument(
        "--poison",
        type=int,
        metavar="P",
        help="messages no step can read, sent to the ingest queue: they, and only they, must end in a "
        "dead-letter queue (default: one per 100 uploads)",
    )
    soak_parser.add_argument("--json", action="store_true", help="end with the report as one JSON line")
    soak_parser.add_argument("--verbose", action="store_true", help="print the runtime's step log on stderr")
    soak_parser.set_defaults(run=soak)

    events_parser = commands.add_parser(
        "events", help="print lifecycle events: the local runtime's, or a deployed stack's with --bus"
    )
    events_parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events until Ctrl-C")
    events_parser.add_argument("--job", metavar="ID", help="only this job's events (all of them, then new ones)")
    events_parser.add_argument(
        "--type", action="append", default=[], metavar="DETAIL_TYPE", help="only this detail-type (repeatable)"
    )
    events_parser.add_argument("--json", action="store_true", help="one EventBridge event as JSON per line")
    events_parser.add_argument(
        "--api", default="http://127.0.0.1:3000", help="the running local runtime (default http://127.0.0.1:3000)"
    )
    events_parser.add_argument(
        "--bus",
        metavar="NAME",
        help="a deployed stack's event bus (its Output EventBusName), with your AWS credentials: a temporary "
        "rule and queue carry its events here and are removed on exit",
    )
    events_parser.set_defaults(run=events)

    dlq_parser = commands.add_parser(
        "dlq", help="list what the dead-letter queues hold (peeking), or move it back with `dlq redrive`"
    )
    dlq_parser.add_argument("action", nargs="?", choices=["list", "redrive"], default="list")
    dlq_parser.add_argument(
        "--queue", metavar="NAME", help="only this step's queue (ingest, variants, edit, publisher, ...)"
    )
    dlq_parser.add_argument("--json", action="store_true", help="one JSON object per message (or per queue moved)")
    dlq_parser.add_argument("--limit", type=int, default=100, metavar="N", help="messages listed per queue (100)")
    dlq_parser.add_argument("--stack", metavar="NAME", help="a deployed stack, with your AWS credentials")
    dlq_parser.add_argument(
        "--queue-url", action="append", default=[], metavar="URL", help="a dead-letter queue by URL (repeatable)"
    )
    dlq_parser.add_argument("--table", metavar="NAME", help="with --queue-url: the JobsTable to read errors from")
    dlq_parser.add_argument(
        "--aws-endpoint", metavar="URL", help="the local runtime's AWS endpoint (default http://127.0.0.1:4566)"
    )
    dlq_parser.add_argument("--template", type=Path, help="the SAM template (default: ./template.yaml)")
    dlq_parser.set_defaults(run=dlq)

    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except FaultSpecError as error:
        raise SystemExit(f"imgflow: --faults: {error}") from error
    except IamError as error:
        raise SystemExit(f"imgflow: {error}") from error
    return code


if __name__ == "__main__":
    sys.exit(main())
