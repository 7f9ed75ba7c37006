"""The template's functions, run as Lambda runs them: each function has a pool of execution environments
("containers", see execution.py), at most `max_containers` at once, each a process of its own running
one invocation at a time with the function's own environment. An invocation that outlives the
function's timeout is killed with its container, and the next one starts cold, as on Lambda.

When every container is busy and the pool is full, an invocation waits for one to be free: the local
stand-in for Lambda scaling out, which a laptop cannot do a thousand times over. Past a function's
ReservedConcurrentExecutions, though, an invocation is throttled at once, as on Lambda.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from imgflow_local.execution import ContainerSpec, receive_message, send_message
from imgflow_local.faults import FunctionFaults
from imgflow_local.stack import FunctionSpec
from imgflow_local.template import DEFAULT_ACCOUNT_ID

# Lambda retries a slow init within the invocation, so init and invoke together get the timeout; the
# margin keeps a loaded machine's slow imports from failing the first invocation.
_INIT_MARGIN_SECONDS = 10


class FunctionError(Exception):
    """What the handler raised (or why its runtime failed), as Lambda reports it to the invoker."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        super().__init__(f"{error['errorType']}: {error['errorMessage']}")
        self.error_type: str = error["errorType"]
        self.stack_trace: list[str] = list(error.get("stackTrace", []))


class FunctionTimeoutError(Exception):
    pass


class FunctionThrottledError(Exception):
    """Lambda's TooManyRequestsException: more invocations at once than the reserved concurrency allows.
    Behind API Gateway the client gets a 500; an event source mapping retries later."""


class ContainerExitedError(Exception):
    """The container died during the invocation (a crash, a kill): Lambda's `Runtime.ExitError`."""


@dataclass(frozen=True)
class Invocation:
    function: str
    duration: float
    result: Any = None
    error: BaseException | None = None
    # Seconds spent starting a new container for this invocation; None when a warm one served it.
    cold_start: float | None = None
    # Receipt handles of the messages whose visibility the handler set itself (a delay it asked for).
    visibility_set: frozenset[str] = frozenset()


class _Container:
    """One execution environment: a forked process and the channel to it."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    def invoke(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.channel.settimeout(timeout)
        send_message(self.channel, request)
        reply: dict[str, Any] | None = receive_message(self.channel)
        if reply is None:
            raise ContainerExitedError("the container exited during the invocation (Runtime.ExitError)")
        return reply

    def stop(self) -> None:
        # The container exits when its channel closes.
        self.channel.close()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.channel.close()


def _start_execution(channel: socket.socket, environment: Mapping[str, str], role: str) -> subprocess.Popen[bytes]:
    """`python -m imgflow_local.execution CONTROL_FD ROLE`, `channel` its control channel: ROLE is a
    loader's spec (JSON) or `--zygote`."""
    return subprocess.Popen(
        [sys.executable, "-m", "imgflow_local.execution", str(channel.fileno()), role],
        pass_fds=[channel.fileno()],
        env=dict(environment),
        stdin=subprocess.DEVNULL,
    )


class Zygote:
    """A process that imports the libraries every function shares (execution.SHARED_LIBRARIES), then forks
    each function's loader from that state: the runtime pays for those imports once rather than once a
    function (~0.4 s of CPU each, on the cores the handlers' own imports need at start)."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        self._control, theirs = socket.socketpair()
        with theirs:
            self.process = _start_execution(theirs, environment, "--zygote")
        self._lock = threading.Lock()
        self._spawning: collections.deque[Future[int]] = collections.deque()
        threading.Thread(target=self._read_pids, name="zygote", daemon=True).start()

    def spawn(self, spec: ContainerSpec, environment: Mapping[str, str], channel: socket.socket) -> Future[int]:
        """A loader for `spec`, with `channel` as its control channel; its pid once the zygote has forked it
        (the zygote answers in order, after its own imports)."""
        spawned: Future[int] = Future()
        with self._lock:
            self._spawning.append(spawned)
            try:
                socket.send_fds(self._control, [b"L"], [channel.fileno()])
                send_message(self._control, {"spec": asdict(spec), "environment": dict(environment)})
            except OSError:
                self._spawning.remove(spawned)  # no answer will come for it
                raise
        return spawned

    def _read_pids(self) -> None:
        with contextlib.suppress(OSError):
            while (reply := receive_message(self._control)) is not None:
                with self._lock:
                    self._spawning.popleft().set_result(int(reply["pid"]))
        with self._lock:
            while self._spawning:
                self._spawning.popleft().set_exception(ContainerExitedError("the runtime's zygote exited"))

    def stop(self) -> None:
        """After the functions have stopped their loaders: the zygote waits for them, then exits."""
        # Shut down, not only closed: the pid reader's pending receive holds the socket open otherwise.
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)
        self._control.close()
        try:
            self.process.wait(timeout=_INIT_MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Loader:
    """The function's loader process: imports the handler module once, then forks containers from it.
    Forked by the runtime's zygote when there is one, else a process of its own."""

    def __init__(self, spec: ContainerSpec, environment: Mapping[str, str], zygote: Zygote | None = None) -> None:
        self._control, theirs = socket.socketpair()
        self.process: subprocess.Popen[bytes] | None = None
        self._spawned: Future[int] | None = None
        with theirs:
            if zygote is not None:
                with contextlib.suppress(OSError):  # the zygote is gone: a process of its own, as without one
                    self._spawned = zygote.spawn(spec, environment, theirs)
            if self._spawned is None:
                self.process = _start_execution(theirs, environment, json.dumps(asdict(spec)))
        self.init: dict[str, float] | None = None
        self._failure: dict[str, Any] | None = None

    def pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        assert self._spawned is not None
        if not self._spawned.done() or self._spawned.exception() is not None:
            return None
        return self._spawned.result()

    def fork(self, init_timeout: float) -> _Container:
        """A new container; the first call waits for the handler's import (and fails as it failed)."""
        if self.init is None and self._failure is None:
            self._control.settimeout(init_timeout)
            try:
                reply = receive_message(self._control)
            except TimeoutError:
                reply = {"error": {"errorType": "Runtime.InitTimeout", "errorMessage": "init timed out"}}
            if reply is None:
                reply = {"error": {"errorType": "Runtime.ExitError", "errorMessage": "the loader exited during init"}}
            self._failure, self.init = reply.get("error"), reply.get("ready")
        if self._failure is not None:
            raise FunctionError(self._failure)
        ours, theirs = socket.socketpair()
        with theirs:
            self._control.settimeout(init_timeout)
            socket.send_fds(self._control, [b"fork"], [theirs.fileno()])
            reply = receive_message(self._control)
        if reply is None:
            ours.close()
            raise ContainerExitedError("the function's loader exited")
        return _Container(int(reply["pid"]), ours)

    def stop(self) -> None:
        # Killed, as Lambda ends an environment: a loader still importing would only notice the closed
        # channel after its import, and a graceful exit tears every imported module down (seconds of
        # stopping, each `imgflow process`, for nothing anyone reads).
        self._control.close()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait()
            return
        assert self._spawned is not None
        # The zygote's child, which the zygote reaps; its pid comes once the zygote has forked it.
        with contextlib.suppress(TimeoutError, ContainerExitedError, ProcessLookupError):
            os.kill(self._spawned.result(timeout=_INIT_MARGIN_SECONDS), signal.SIGKILL)


class LocalFunction:
    def __init__(
        self,
        spec: FunctionSpec,
        region: str,
        environment: Mapping[str, str],
        max_containers: int,
        on_invoke: Callable[[Invocation], None] | None = None,
        say: Callable[[str], None] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        faults: FunctionFaults | None = None,
        zygote: Zygote | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.logical_id
        # Reserved concurrency caps the containers too; the local cap only ever lowers it.
        self.max_containers = min(max_containers, spec.reserved_concurrency or max_containers)
        self._environment = dict(environment)
        self._container_spec = ContainerSpec(
            function_name=spec.logical_id,
            code_uri=str(spec.code_uri.resolve()),
            handler=spec.handler,
            memory_mb=spec.memory_mb,
            function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{spec.logical_id}",
        )
        self._on_invoke = on_invoke
        self._faults = faults
        self._say = say or (lambda _line: None)
        self._zygote = zygote
        self._loader: _Loader | None = None
        self._loader_lock = threading.Lock()
        self._pool = threading.Condition()
        self._idle: list[_Container] = []
        self._busy: set[_Container] = set()
        self._starting = 0
        # Invocations running or waiting for a container: past ReservedConcurrentExecutions, Lambda throttles.
        self._in_flight = 0
        self._stopped = False

    @property
    def containers(self) -> int:
        with self._pool:
            return len(self._idle) + len(self._busy)

    def pids(self) -> list[int]:
        """The processes of this function: its loader and every container."""
        with self._pool:
            containers = [c.pid for c in (*self._idle, *self._busy)]
        loader = self._loader.pid() if self._loader else None
        return ([loader] if loader is not None else []) + containers

    def start(self) -> None:
        """Start the loader now, so the handler's import runs while the rest of the runtime starts."""
        with self._loader_lock:
            if self._loader is None:
                self._loader = _Loader(self._container_spec, self._environment, self._zygote)

    def stop(self) -> None:
        with self._pool:
            self._stopped = True
            containers = [*self._idle, *self._busy]
            self._idle.clear()
            self._pool.notify_all()
        for container in containers:
            container.kill()
        with self._loader_lock:
            if self._loader is not None:
                self._loader.stop()

    def invoke(self, event: Any, fault_key: str | None = None) -> Any:
        """Invoke synchronously; raises FunctionError (what the handler raised), FunctionTimeoutError past
        the timeout, ContainerExitedError when the container died, or FunctionThrottledError past the
        function's reserved concurrency. `fault_key`: what injected faults key on (faults.py)."""
        invocation = self.invocation(event, fault_key)
        if invocation.error is not None:
            raise invocation.error
        return invocation.result

    def invocation(self, event: Any, fault_key: str | None = None) -> Invocation:
        """Invoke synchronously; the outcome, failed or not."""
        with self._pool:
            if self.spec.reserved_concurrency is not None and self._in_flight >= self.spec.reserved_concurrency:
                error = FunctionThrottledError(f"{self.name}: Rate Exceeded (reserved concurrency reached)")
                throttled = True
            else:
                self._in_flight += 1
                throttled = False
        if throttled:
            invocation = Invocation(self.name, 0.0, error=error)
            if self._on_invoke:
                self._on_invoke(invocation)
            return invocation
        try:
            return self._invoke(event, fault_key)
        finally:
            with self._pool:
                self._in_flight -= 1

    def _invoke(self, event: Any, fault_key: str | None) -> Invocation:
        started = time.monotonic()
        try:
            container, cold_start = self._acquire()
        except ContainerExitedError as exited:
            # No container to run in (the runtime is stopping, or the loader died): a failed invocation,
            # which its event source retries as after any other, not an error of the event source.
            invocation = Invocation(self.name, time.monotonic() - started, error=exited)
            if self._on_invoke:
                self._on_invoke(invocation)
            return invocation
        request = {"event": event, "request_id": str(uuid.uuid4()), "timeout": self.spec.timeout}
        if self._faults and (fault := self._faults.invocation_fault(fault_key)):
            request["fault"] = fault
        result: Any = None
        error: BaseException | None = None
        healthy = False
        reply: dict[str, Any] = {}
        try:
            reply = container.invoke(request, timeout=self.spec.timeout)
        except TimeoutError:
            container.kill()
            error = FunctionTimeoutError(f"{self.name} timed out after {self.spec.timeout} s")
        except (ConnectionError, OSError, ContainerExitedError) as exited:
            container.kill()
            error = ContainerExitedError(f"{self.name}: {exited}")
        else:
            healthy = True
            if "error" in reply:
                error = FunctionError(reply["error"])
            else:
                result = reply["result"]
        finally:
            self._release(container, healthy)
        if self._faults and reply.get("throttled"):
            self._faults.count("throttle", reply["throttled"])
        invocation = Invocation(
            self.name,
            time.monotonic() - started,
            result,
            error,
            cold_start,
            visibility_set=frozenset(reply.get("visibility_set", ())),
        )
        if self._on_invoke:
            self._on_invoke(invocation)
        return invocation

    def _acquire(self) -> tuple[_Container, float | None]:
        with self._pool:
            while True:
                if self._stopped:
                    raise ContainerExitedError(f"{self.name}: the runtime is stopping")
                if self._idle:
                    # The most recently used container first, as Lambda prefers warm environments.
                    container = self._idle.pop()
                    self._busy.add(container)
                    return container, None
                if len(self._busy) + self._starting < self.max_containers:
                    self._starting += 1
                    break
                self._pool.wait()
        started = time.monotonic()
        try:
            container = self._new_container()
        except BaseException:
            with self._pool:
                self._starting -= 1
                self._pool.notify()
            raise
        with self._pool:
            self._starting -= 1
            self._busy.add(container)
        return container, time.monotonic() - started

    def _new_container(self) -> _Container:
        self.start()
        assert self._loader is not None
        with self._loader_lock:
            first = self._loader.init is None
            try:
                container = self._loader.fork(self.spec.timeout + _INIT_MARGIN_SECONDS)
            except ContainerExitedError:
                # The loader itself died: start a new one (a fresh init) for this and later containers.
                self._loader.stop()
                self._loader = _Loader(self._container_spec, self._environment, self._zygote)
                first = True
                container = self._loader.fork(self.spec.timeout + _INIT_MARGIN_SECONDS)
            if first and self._loader.init is not None:
                init = self._loader.init
                self._say(
                    f"{self.name:<16} init {init['init_ms']:7.0f} ms  ({init['init_cpu_ms']:.0f} ms CPU; "
                    f"imported {self.spec.handler.rpartition('.')[0]} once, containers fork from it)"
                )
        return container

    def _release(self, container: _Container, healthy: bool) -> None:
        with self._pool:
            self._busy.discard(container)
            if healthy and not self._stopped:
                self._idle.append(container)
            else:
                container.kill()
            self._pool.notify()
