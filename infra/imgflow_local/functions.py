"""Runs the template's functions in this process, as Lambda would: the handler module imported once per
function from its CodeUri (a cold start), a context per invocation, and the function's timeout enforced."""

from __future__ import annotations

import importlib
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imgflow_local.stack import FunctionSpec
from imgflow_local.template import ACCOUNT_ID


@dataclass
class LambdaContext:
    """What Lambda hands a handler as its second argument."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    deadline: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class FunctionTimeoutError(Exception):
    pass


@dataclass(frozen=True)
class Invocation:
    function: str
    duration: float
    result: Any = None
    error: BaseException | None = None


class LocalFunction:
    def __init__(self, spec: FunctionSpec, region: str, on_invoke: Callable[[Invocation], None] | None = None) -> None:
        self.spec = spec
        self.name = spec.logical_id
        self._region = region
        self._on_invoke = on_invoke
        self._handler: Callable[[Any, Any], Any] | None = None
        self._import_lock = threading.Lock()

    def handler(self) -> Callable[[Any, Any], Any]:
        with self._import_lock:
            if self._handler is None:
                module_name, _, attribute = self.spec.handler.rpartition(".")
                code_uri = str(self.spec.code_uri.resolve())
                if code_uri not in sys.path:
                    sys.path.insert(0, code_uri)
                self._handler = getattr(importlib.import_module(module_name), attribute)
            return self._handler

    def invoke(self, event: Any) -> Any:
        """Invoke synchronously; raises what the handler raised, or FunctionTimeoutError past the timeout."""
        handler = self.handler()
        context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.spec.memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{self._region}:{ACCOUNT_ID}:function:{self.name}",
            deadline=time.monotonic() + self.spec.timeout,
        )
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = handler(event, context)
            except BaseException as error:
                outcome["error"] = error

        started = time.monotonic()
        # A thread per invocation lets the caller stop waiting at the timeout, as Lambda stops the function.
        worker = threading.Thread(target=run, name=f"{self.name}-{context.aws_request_id[:8]}", daemon=True)
        worker.start()
        worker.join(self.spec.timeout)
        duration = time.monotonic() - started
        if worker.is_alive():
            outcome["error"] = FunctionTimeoutError(f"{self.name} timed out after {self.spec.timeout} s")
        invocation = Invocation(self.name, duration, outcome.get("result"), outcome.get("error"))
        if self._on_invoke:
            self._on_invoke(invocation)
        if invocation.error is not None:
            raise invocation.error
        return invocation.result
