"""Faults the local runtime injects on purpose (`IMGFLOW_FAULTS`, `imgflow serve --faults SPEC`), to show
that the pipeline survives what AWS does to it now and then: a container that dies before or after its
handler ran, an invocation that outlives its timeout, throttled AWS calls, and duplicate deliveries.

SPEC is a comma-separated list of `[Function.]kind=probability`, for example
`crash_after=0.1,duplicate=0.2,throttle=0.05,timeout=0.01,EditFunction.timeout=0`. An entry without a
function applies to every function a queue or a stream triggers (the pipeline); one with a function's logical id
overrides it for that function, and is the only way to fault the others (`ApiFunction.throttle=0.05`).

Each decision is a hash of (seed, function, kind, key) against the probability, never a draw from a
shared generator: the key is what the fault is about (a message's id and receive count, an invocation's
request id and the number of the AWS call within it, a per-function count for invocations without
messages), so which thread asks first changes nothing, and the same seed and keys give the same faults.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# What users set (or pass as `--faults` and `--seed`).
SPEC_VARIABLE = "IMGFLOW_FAULTS"
SEED_VARIABLE = "IMGFLOW_FAULTS_SEED"
# Where the runtime hands a container the probability of throttling its AWS calls, and the seed.
THROTTLE_VARIABLE = "IMGFLOW_LOCAL_THROTTLE"
CONTAINER_SEED_VARIABLE = "IMGFLOW_LOCAL_FAULT_SEED"

KINDS = ("crash_before", "crash_after", "timeout", "throttle", "duplicate")
# What the runtime asks a container to do with one invocation.
INVOCATION_FAULTS = ("crash_before", "crash_after", "timeout")


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class FaultSpec:
    """Probabilities by kind: `pipeline` for every queue-triggered function, `functions` per logical id."""

    pipeline: Mapping[str, float] = field(default_factory=dict)
    functions: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        pipeline: dict[str, float] = {}
        functions: dict[str, dict[str, float]] = {}
        for entry in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = entry.partition("=")
            function, _, kind = name.strip().rpartition(".")
            if not sep or kind not in KINDS:
                raise FaultSpecError(f"{entry!r}: want [Function.]KIND=PROBABILITY, KIND one of {', '.join(KINDS)}")
            try:
                probability = float(value)
            except ValueError:
                probability = -1.0
            if not 0.0 <= probability <= 1.0:
                raise FaultSpecError(f"{entry!r}: the probability must be a number from 0 to 1")
            (functions.setdefault(function, {}) if function else pipeline)[kind] = probability
        return cls(pipeline, functions, text.strip())

    def for_function(self, function: str, queue_triggered: bool) -> dict[str, float]:
        """This function's probabilities: the pipeline's if a queue triggers it, then its own entries."""
        inherited = dict(self.pipeline) if queue_triggered else {}
        return {kind: p for kind, p in {**inherited, **self.functions.get(function, {})}.items() if p > 0}

    def check_functions(self, known: set[str]) -> None:
        if unknown := sorted(set(self.functions) - known):
            raise FaultSpecError(
                f"no function {', '.join(unknown)} in the template (functions: {', '.join(sorted(known))})"
            )


def decide(seed: int, function: str, kind: str, key: str, probability: float) -> bool:
    """Whether this fault happens: the same arguments always give the same answer."""
    if probability <= 0:
        return False
    digest = hashlib.sha256(f"{seed}\0{function}\0{kind}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < probability


class FunctionFaults:
    """One function's faults, as the runtime decides them; counts what it injected."""

    def __init__(self, function: str, probabilities: Mapping[str, float], seed: int) -> None:
        self.function = function
        self.probabilities = dict(probabilities)
        self.seed = seed
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._invocations = itertools.count(1)

    def happens(self, kind: str, key: str) -> bool:
        hit = decide(self.seed, self.function, kind, key, self.probabilities.get(kind, 0.0))
        if hit:
            self.count(kind)
        return hit

    def count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self.injected[kind] += n

    def invocation_fault(self, key: str | None) -> str | None:
        """What happens to this invocation (crash_before, crash_after, timeout), if anything. `key`: what
        the invocation is about (its messages); without one, its number among the function's invocations."""
        key = key if key is not None else f"#{next(self._invocations)}"
        return next((kind for kind in INVOCATION_FAULTS if self.happens(kind, key)), None)

    def environment(self) -> dict[str, str]:
        """What a container of this function needs to throttle its own AWS calls."""
        throttle = self.probabilities.get("throttle", 0.0)
        if not throttle:
            return {}
        return {THROTTLE_VARIABLE: str(throttle), CONTAINER_SEED_VARIABLE: str(self.seed)}


class RuntimeFaults:
    """Every function's faults for one runtime."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._functions: dict[str, FunctionFaults] = {}

    def for_function(self, function: str, queue_triggered: bool) -> FunctionFaults:
        if function not in self._functions:
            probabilities = self.spec.for_function(function, queue_triggered)
            self._functions[function] = FunctionFaults(function, probabilities, self.seed)
        return self._functions[function]

    def describe(self) -> str:
        """One line per faulted function, for the runtime's step log."""
        return "; ".join(
            f"{name}: " + ", ".join(f"{kind} {p:g}" for kind, p in sorted(faults.probabilities.items()))
            for name, faults in sorted(self._functions.items())
            if faults.probabilities
        )

    def injected(self) -> dict[str, dict[str, int]]:
        """What was injected so far, by function and kind."""
        return {name: dict(faults.injected) for name, faults in sorted(self._functions.items()) if faults.injected}


# --- inside a container -----------------------------------------------------------------------------

# The error each service answers when it throttles, as botocore reads it: status, protocol, code.
_THROTTLES: dict[str, tuple[int, str, str]] = {
    "dynamodb": (400, "json", "ProvisionedThroughputExceededException"),
    "s3": (503, "xml", "SlowDown"),
    "sqs": (400, "json", "ThrottlingException"),
    "eventbridge": (400, "json", "ThrottlingException"),
}


class _Body:
    """The raw stream botocore reads an injected response from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


def throttled_response(service: str, url: str) -> Any:
    """The response the service sends when it throttles a call (None for a service not throttled here)."""
    from botocore.awsrequest import AWSResponse

    if service not in _THROTTLES:
        return None
    status, protocol, code = _THROTTLES[service]
    message = "Rate exceeded (injected by IMGFLOW_FAULTS)"
    headers = {"x-amzn-RequestId": "imgflow-fault"}
    if protocol == "xml":
        body = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        headers["Content-Type"] = "application/xml"
    else:
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": message})
        headers["Content-Type"] = "application/x-amz-json-1.0"
        if service == "sqs":
            # SQS speaks JSON for a query-compatible client: the header carries the query API's code.
            headers["x-amzn-query-error"] = "RequestThrottled;Sender"
    # AWSResponse copies the headers into a case-insensitive dict of its own: any mapping does.
    return AWSResponse(url, status, headers, _Body(body.encode()))  # type: ignore[arg-type]


class InvocationObserver:
    """A container's view of the AWS calls its handler makes: throttles some (at botocore's `before-send`,
    inside the SDK's retry loop, so its own retries see them, as they would see the service's), and notes
    the messages whose visibility the handler set itself (the runtime must not override that delay)."""

    def __init__(self, function: str, throttle: float, seed: int) -> None:
        self.function = function
        self.throttle = throttle
        self.seed = seed
        self._request_id = ""
        self._calls = itertools.count(1)
        self.visibility_set: list[str] = []
        self.throttled = 0

    @classmethod
    def from_environment(cls, function: str, environment: Mapping[str, str]) -> InvocationObserver:
        throttle = float(environment.get(THROTTLE_VARIABLE) or 0)
        return cls(function, throttle, int(environment.get(CONTAINER_SEED_VARIABLE) or 0))

    def install(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        register("before-parameter-build.sqs.ChangeMessageVisibility", self._visibility_set)
        register("before-parameter-build.sqs.ChangeMessageVisibilityBatch", self._visibility_set)
        if self.throttle > 0:
            register("before-send", self._maybe_throttle)

    def install_in_botocore(self) -> None:
        """Every botocore session made from now on (each boto3 client's) calls these handlers."""
        import botocore.handlers

        self.install(lambda event, handler: botocore.handlers.BUILTIN_HANDLERS.append((event, handler)))

    def begin(self, request_id: str) -> None:
        self._request_id = request_id
        self._calls = itertools.count(1)
        self.visibility_set = []
        self.throttled = 0

    def _visibility_set(self, params: Mapping[str, Any], **_: Any) -> None:
        entries = params.get("Entries") or [params]
        self.visibility_set += [str(entry["ReceiptHandle"]) for entry in entries if "ReceiptHandle" in entry]

    def _maybe_throttle(self, request: Any, event_name: str, **_: Any) -> Any:
        service = event_name.split(".")[1] if event_name.count(".") >= 2 else ""
        key = f"{self._request_id}/{next(self._calls)}"
        if service not in _THROTTLES or not decide(self.seed, self.function, "throttle", key, self.throttle):
            return None
        self.throttled += 1
        return throttled_response(service, request.url)
