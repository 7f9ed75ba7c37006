"""The local runtime: an embedded AWS emulator, the template's resources in it, the functions wired to
their event sources and the HTTP API on localhost; or the same against an emulator already running
(LocalStack)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from imgflow_local import atomic_dynamodb, moto_speedups
from imgflow_local.auth import JwtAuthorizer, LocalIssuer
from imgflow_local.demo import DEMO_OWNER, DemoPages, ai_edits_configured
from imgflow_local.endpoints import AwsEndpoints
from imgflow_local.faults import FaultSpec, FunctionFaults, RuntimeFaults
from imgflow_local.front_door import FrontDoorServer, embedded_emulator, make_front_door
from imgflow_local.functions import Invocation, LocalFunction, Zygote
from imgflow_local.http_api import HttpApiApp, bind
from imgflow_local.iam import Enforcement, IamError, SessionCredentials, assume_function_roles, refused_deliveries
from imgflow_local.scheduler import ScheduledInvoker, rate_seconds
from imgflow_local.sqs_poller import SqsPoller
from imgflow_local.stack import LOCAL_PARAMETERS, FunctionSpec, HttpApiSpec, LocalStack
from imgflow_local.stream_poller import StreamPoller

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

REGION = "us-east-1"
# The emulator's credentials: the front door verifies presigned POSTs with this secret, as S3 would with yours.
ACCESS_KEY_ID = "imgflow-local"
SECRET_ACCESS_KEY = "imgflow-local-secret"
# Whom tokenless requests speak for with `imgflow serve --open`.
OPEN_OWNER = "local"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _all_at_once(*stops: Callable[[], object]) -> None:
    if stops:
        with ThreadPoolExecutor(len(stops), thread_name_prefix="stop") as stopping:
            list(stopping.map(lambda stop: stop(), stops))


def issue_token(stack: LocalStack, issuer: LocalIssuer, sub: str, scopes: list[str] | None, ttl: int) -> str:
    """A bearer token of the local issuer for the stack's API; by default with the scope AI edits need."""
    audience = next(iter(stack.http_api().authorizers.values())).audiences[0]
    if scopes is None:
        scopes = [stack.resolver.ref("EditScope")]
    return LocalIssuer(issuer.private_key, audience=audience).token(sub, scopes=scopes, ttl=ttl)


@dataclass
class RuntimeOptions:
    template: Path
    api_port: int = 3000
    aws_port: int = 4566
    host: str = "127.0.0.1"
    # Emulators already running (LocalStack), for every service or some: the embedded emulator and its
    # front door start only when a service is left to them.
    aws_endpoints: AwsEndpoints = field(default_factory=AwsEndpoints)
    retry_delay: int | None = None
    # Run every `rate(...)` schedule this often instead (seconds); None keeps the template's rate.
    schedule_interval: int | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Serve tokenless requests as the owner "local" instead of answering 401 (tokens are still checked).
    open_access: bool = False
    # Containers per function when the template reserves no concurrency for it (Lambda would scale
    # to the account's limit; a laptop cannot): beyond it, invocations wait for a free container.
    max_containers: int = 10
    # Each function runs as its template role and the embedded emulator enforces IAM (iam.py).
    iam: bool = True
    log: Callable[[str], None] = print
    # Faults to inject on purpose (faults.py), and the seed their decisions derive from.
    faults: FaultSpec | None = None
    fault_seed: int = 0
    # The functions whose handler is imported as the runtime starts, beside the rest of its start; the
    # others import theirs at their first invocation, as on Lambda. None: every function.
    preload: frozenset[str] | None = None


class LocalRuntime:
    def __init__(self, options: RuntimeOptions) -> None:
        self.options = options
        self.stack = LocalStack(options.template, REGION, parameter_overrides=options.parameters)
        self.issuer = LocalIssuer.load()
        self.functions: dict[str, LocalFunction] = {}
        self.lifecycle_events: list[dict[str, Any]] = []
        self.faults = RuntimeFaults(options.faults or FaultSpec(), options.fault_seed)
        self.faults.spec.check_functions({spec.logical_id for spec in self.stack.functions()})
        if unknown := (options.preload or frozenset()) - {spec.logical_id for spec in self.stack.functions()}:
            raise ValueError(f"preload names functions the template does not have: {', '.join(sorted(unknown))}")
        self.api_url = ""
        self.aws_url = ""
        self._emulator: WSGIApplication | None = None
        # Access keys the front door verifies S3 POST forms with: the runtime's, then each function role's.
        self._secrets = {ACCESS_KEY_ID: SECRET_ACCESS_KEY}
        self._roles: dict[str, SessionCredentials] = {}
        self._iam: Enforcement | None = None
        self._front_door: FrontDoorServer | None = None
        self._api_server: BaseWSGIServer | None = None
        self._api_app: HttpApiApp | None = None
        self._pollers: list[SqsPoller | StreamPoller] = []
        self._schedules: list[ScheduledInvoker] = []
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._zygote: Zygote | None = None
        self._log_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        # The step log says what happened; per-request access lines from the servers would drown it.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._bind_api()
        # The libraries every function shares are imported (once, see Zygote) while the rest starts.
        self._zygote = Zygote(os.environ)
        self._start_aws()
        session = boto3.session.Session(region_name=REGION)
        # Resources are named in the emulator's own account (LocalStack's is not moto's): S3 and
        # EventBridge refuse to deliver to a queue ARN of another account.
        account_id = session.client("sts").get_caller_identity()["Account"]
        self.stack = dataclasses.replace(self.stack, account_id=account_id)
        # The roles and the functions' environments need the template's names, not its resources: the
        # handlers' imports run while the resources are made (a function is only invoked once its event
        # sources start, below, and no handler calls AWS at import).
        self._enforce_iam(session)
        self.functions = {
            spec.logical_id: LocalFunction(
                spec,
                REGION,
                environment={**self._environment(spec), **self._faults_of(spec).environment()},
                max_containers=self.options.max_containers,
                on_invoke=self._log_invocation,
                say=self.say,
                account_id=account_id,
                faults=self._faults_of(spec),
                zygote=self._zygote,
            )
            for spec in self.stack.functions()
        }
        for function in self.functions.values():
            if self.options.preload is None or function.name in self.options.preload:
                function.start()
        self.stack.create(session)
        if faults := self.faults.describe():
            self.say(f"injecting faults (seed {self.faults.seed}): {faults}")
        self._start_pollers(session)
        self._start_schedules()
        self._start_lifecycle_log(session)
        self._start_stream_pollers(session)
        self._start_api()
        return self

    def stop(self, *, exiting: bool = False) -> None:
        """Stop every part. `exiting`: this process ends next (`imgflow process`), so only its containers
        and loaders are stopped, as other processes would finish a running invocation first; the pollers'
        long polls, the servers' loops and the emulator's state end with the process (waiting for them is
        about 1.5 s)."""
        self._stopped.set()
        if exiting:
            _all_at_once(*(function.stop for function in self.functions.values()))
            self._stop_zygote()
            return
        # Every part at once, a thread each: the pollers finish their long polls (a second at most) while
        # each function kills its containers and loader, as Lambda ends environments. An invocation still
        # running ends with its container, and its messages come back as after any failed invocation,
        # rather than the stop waiting it out (seconds off every `imgflow process`).
        _all_at_once(
            self._stop_api,
            *(part.stop for part in [*self._pollers, *self._schedules, *self.functions.values()]),
            *(lambda thread=thread: thread.join(timeout=5) for thread in self._threads),
        )
        self._stop_zygote()  # after the functions, which ask it for their loaders' pids
        # Then the emulator's front door, once nothing calls it (it waits out its serving loop's poll).
        if self._front_door:
            self._front_door.stop()
        if self._emulator:
            # moto keeps its state in this process's memory: a runtime started after this one starts empty.
            from moto.moto_api._internal.models import moto_api_backend

            moto_api_backend.reset()
        if self._iam:
            self._iam.stop()

    def _stop_zygote(self) -> None:
        if self._zygote is not None:
            self._zygote.stop()
            self._zygote = None

    def _stop_api(self) -> None:
        if self._api_server:
            if self._api_app is not None:
                self._api_server.shutdown()
            self._api_server.server_close()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- the parts ---------------------------------------------------------------------------------

    def _start_aws(self) -> None:
        os.environ.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
            AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        os.environ.pop("AWS_SESSION_TOKEN", None)
        os.environ.pop("AWS_PROFILE", None)
        endpoints = self.options.aws_endpoints
        if endpoints.needs_embedded:
            moto_speedups.install()
            self._emulator = embedded_emulator()
            app = make_front_door(self._emulator, self._secrets, REGION, own_key=ACCESS_KEY_ID)
            self._front_door = FrontDoorServer(app, host=self.options.host, port=self.options.aws_port)
            self._front_door.start()
        embedded_url = self._front_door.url if self._front_door else None
        endpoints.apply(os.environ, embedded_url)
        self.aws_url, services = endpoints.urls(embedded_url)
        for service, url in sorted(services.items()):
            self.say(f"{service} at {url}" + (" (the embedded emulator)" if url == embedded_url else ""))

    def _enforce_iam(self, session: boto3.session.Session) -> None:
        """Give each function its role's credentials and have the embedded emulator enforce IAM. Not with
        another emulator for some service: its credentials are the runtime's own (LocalStack checks no IAM
        unless told to, and would take a role's key for another account)."""
        if not self.options.iam or self._front_door is None:
            return
        default, services = self.options.aws_endpoints.urls(self._front_door.url)
        if {default, *services.values()} != {self._front_door.url}:
            return
        # The emulator delivers S3 notifications and EventBridge events whatever the queue's policy says.
        if refused := refused_deliveries(self.stack):
            raise IamError("; ".join(refused) + " (on AWS the stack would not deploy, or nothing would arrive)")
        self._roles = assume_function_roles(self.stack)
        self._secrets.update({role.access_key_id: role.secret_access_key for role in self._roles.values()})
        self._iam = Enforcement(session, self.stack.account_id, ACCESS_KEY_ID, SECRET_ACCESS_KEY)
        self._iam.start()
        self.say("IAM enforced: each function runs as its role from template.yaml (--no-iam turns it off)")

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        """A function's environment: this process's (the emulator's endpoint and credentials, keys such
        as GEMINI_API_KEYS), then the template's variables for that function, and its role's credentials."""
        return {
            **os.environ,
            **spec.environment,
            **(self._roles[spec.logical_id].environment() if spec.logical_id in self._roles else {}),
            # No X-Ray daemon and no CloudWatch here: traces off, metrics off (they would only print).
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            # As Lambda sets it. The X-Ray SDK reads it at import: without it, it builds a sampling client
            # (~220 ms of CPU per function) that nothing here uses.
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
        }

    def _faults_of(self, spec: FunctionSpec) -> FunctionFaults:
        triggered = bool(spec.sqs_sources or spec.stream_sources)
        return self.faults.for_function(spec.logical_id, queue_triggered=triggered)

    def _start_pollers(self, session: boto3.session.Session) -> None:
        sqs = session.client("sqs")
        for function in self.functions.values():
            for source in function.spec.sqs_sources:
                # The stack names its queues' URLs as the functions' environments do: no call to look one up.
                queue_url = self.stack.queue_url(self.stack.queue_logical_id(source.queue_arn))
                poller = SqsPoller(
                    sqs,
                    queue_url,
                    source,
                    function,
                    REGION,
                    retry_delay=self.options.retry_delay,
                    faults=self._faults_of(function.spec),
                )
                poller.start()
                self._pollers.append(poller)

    def _start_stream_pollers(self, session: boto3.session.Session) -> None:
        """Every DynamoDB stream event source: after the lifecycle log, which must see the first events."""
        if self._emulator is not None:
            atomic_dynamodb.install()  # the stream's order is then the order of the writes
        dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
        # The stream is read where its table is (an `--aws-endpoint dynamodb=...` moves both).
        streams = session.client("dynamodbstreams", endpoint_url=dynamodb.meta.endpoint_url)
        for function in self.functions.values():
            arn = f"arn:aws:lambda:{REGION}:{self.stack.account_id}:function:{function.name}"
            for source in function.spec.stream_sources:
                poller = StreamPoller(dynamodb, streams, sqs, source, function, arn)
                poller.start()
                self._pollers.append(poller)

    def _start_schedules(self) -> None:
        for function in self.functions.values():
            for source in function.spec.schedules:
                rate = rate_seconds(source.expression)
                if rate is None:
                    self.say(f"{function.name}: schedule {source.expression} is not emulated (only rate(...) is)")
                    continue
                invoker = ScheduledInvoker(
                    source, function, REGION, self.stack.account_id, self.options.schedule_interval or rate
                )
                invoker.start()
                self._schedules.append(invoker)

    def _start_lifecycle_log(self, session: boto3.session.Session) -> None:
        """Subscribe a local queue to every bus of the template, to print each job's steps and keep them."""
        sqs, events = session.client("sqs"), session.client("events")
        queue_url = sqs.create_queue(QueueName=f"{self.stack.stack_name}-local-lifecycle")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for logical_id in self.stack.of_type("AWS::Events::EventBus"):
            bus = self.stack.physical_id(logical_id)
            events.put_rule(
                Name="local-lifecycle-log", EventBusName=bus, EventPattern=json.dumps({"source": ["imgflow"]})
            )
            events.put_targets(Rule="local-lifecycle-log", EventBusName=bus, Targets=[{"Id": "log", "Arn": queue_arn}])

        def consume() -> None:
            while not self._stopped.is_set():
                try:
                    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                except Exception:
                    if self._stopped.wait(0.5):
                        return
                    continue
                for message in messages.get("Messages", []):
                    self._record_lifecycle(json.loads(message["Body"]))
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

        thread = threading.Thread(target=consume, name="lifecycle-log", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _bind_api(self) -> None:
        """Take the API's port first: the demo page's origin must be among the template's allowed origins."""
        self._api_server = make_server(self.options.host, self.options.api_port, self._serve_api, threaded=True)
        port = self._api_server.server_port
        self.api_url = f"http://{self.options.host}:{port}"
        declared = self.options.parameters.get("AllowedOrigin") or LOCAL_PARAMETERS["AllowedOrigin"]
        own = {self.api_url, f"http://localhost:{port}"} if self.options.host == "127.0.0.1" else {self.api_url}
        origins = [origin for origin in declared.split(",") if origin] + sorted(own - set(declared.split(",")))
        self.stack = LocalStack(
            self.options.template,
            REGION,
            parameter_overrides={**self.options.parameters, "AllowedOrigin": ",".join(origins)},
        )

    def _serve_api(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._api_app is None:
            return Response("starting", status=503)(environ, start_response)
        return self._api_app(environ, start_response)

    def _authorizers(self, api: HttpApiSpec) -> dict[str, JwtAuthorizer]:
        authorizers = {}
        for name, spec in api.authorizers.items():
            if spec.issuer != self.issuer.issuer:
                raise ValueError(
                    f"authorizer {name}: the local runtime verifies tokens of its own issuer ({self.issuer.issuer}), "
                    f"not of {spec.issuer}; leave JwtIssuer unset locally and use `imgflow token`"
                )
            authorizers[name] = JwtAuthorizer.for_local_issuer(self.issuer, spec.audiences)
        return authorizers

    def _start_api(self) -> None:
        assert self._api_server is not None
        routes = [bind(route, function) for function in self.functions.values() for route in function.spec.routes]
        api = self.stack.http_api()
        self._api_app = HttpApiApp(
            routes,
            api,
            self._authorizers(api),
            extra={
                **DemoPages(
                    lambda: self.token(DEMO_OWNER, ttl=12 * 3600),
                    ai_edits_configured(self._environment(function.spec) for function in self.functions.values()),
                ).routes(),
                "/_local/events": self._events_page,
                "/.well-known/jwks.json": self._jwks,
            },
            # Open, a request without a token speaks for OPEN_OWNER with every scope the API knows.
            open_claims={"sub": OPEN_OWNER, "scope": self.stack.resolver.ref("EditScope")}
            if self.options.open_access
            else None,
            account_id=self.stack.account_id,
        )
        # A short poll: stopping waits for the serving loop's next look at its flag.
        server = self._api_server
        thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.1), name="http-api", daemon=True)
        thread.start()
        self._threads.append(thread)

    # --- local-only pages --------------------------------------------------------------------------

    def token(self, sub: str, scopes: list[str] | None = None, ttl: int = 3600) -> str:
        return issue_token(self.stack, self.issuer, sub, scopes, ttl)

    def _jwks(self, _: Request) -> Response:
        return Response(json.dumps(self.issuer.jwks()), content_type="application/json")

    def _events_page(self, request: Request) -> Response:
        job_id = request.args.get("job_id")
        # `after`: how many events the reader has seen already (`imgflow events --follow` reads on from there).
        after = request.args.get("after", "0")
        recorded = list(self.lifecycle_events)[int(after) if after.isdigit() else 0 :]
        events = [e for e in recorded if job_id is None or e["detail"].get("job_id") == job_id]
        return Response(json.dumps(events), content_type="application/json")

    # --- the step log ------------------------------------------------------------------------------

    def say(self, line: str) -> None:
        with self._log_lock:
            self.options.log(f"{time.strftime('%H:%M:%S')}  {line}")

    def _record_lifecycle(self, event: dict[str, Any]) -> None:
        self.lifecycle_events.append(event)
        detail = event.get("detail", {})
        summary = ""
        if detail.get("error"):
            summary = f"{detail['error']['code']}: {detail['error']['message']}"
        elif "image" in detail:
            image = detail["image"]
            summary = f"{image['format']} {image['width']}x{image['height']}"
        elif "variants" in detail:
            summary = ", ".join(f"{v['preset']}.{v['format']} {v['width']}x{v['height']}" for v in detail["variants"])
        self.say(f"job {detail.get('job_id', '?')}  v{detail.get('version')}  {event.get('detail-type')}  {summary}")

    def _log_invocation(self, invocation: Invocation) -> None:
        outcome = "ok"
        if invocation.error is not None:
            outcome = f"error: {type(invocation.error).__name__}: {invocation.error}"
        elif isinstance(invocation.result, dict) and invocation.result.get("batchItemFailures"):
            outcome = f"{len(invocation.result['batchItemFailures'])} record(s) failed, left for retry"
        elif isinstance(invocation.result, dict) and "statusCode" in invocation.result:
            outcome = f"HTTP {invocation.result['statusCode']}"
        if invocation.cold_start is not None:
            outcome += f"  (cold start: new container, {invocation.cold_start * 1000:.0f} ms)"
        self.say(f"{invocation.function:<16} {invocation.duration * 1000:7.0f} ms  {outcome}")
