"""A function's execution environments, as Lambda runs them: each invocation runs in a process of its
own that handles one invocation at a time, so no module-level or class-level state of a handler, or
of a library it uses, is ever shared by two invocations that overlap in time.

One loader process per function imports the handler module once (Lambda's init phase), then forks a
container per execution environment on request: the fork is the cold start, and every container starts
from the same freshly imported state without paying for the import again. The runtime talks to both
over Unix sockets in length-prefixed JSON (Lambda's events and results are JSON too: a result that
does not serialize fails as `Runtime.MarshalError`, as it does on Lambda).

Run by the runtime as `python -m imgflow_local.execution CONTROL_FD SPEC_JSON`; it imports nothing
heavy itself, so the handler's imports are the whole init cost. Or forked from the runtime's zygote
(`python -m imgflow_local.execution CONTROL_FD --zygote`), which imports the libraries every function's
shared layer holds once and forks each function's loader from that state with the function's own
environment: the handler's imports are then the init cost, and the runtime does not pay ~0.4 s of
CPU per function for the same libraries. The zygote imports no function's code.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import random
import signal
import socket
import struct
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgflow_local.faults import InvocationObserver

_HEADER = struct.Struct("!I")

# What every function imports from the shared layer (botocore's handlers are the invocation observer's).
# They read no function's variable at import (Powertools reads AWS_EXECUTION_ENV and
# AWS_LAMBDA_INITIALIZATION_TYPE, the same for every function), so a loader forked after them behaves
# as one that imported them itself.
SHARED_LIBRARIES = (
    "botocore.handlers",
    "boto3",
    "pydantic",
    "aws_lambda_powertools",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.parser.models",
    "aws_lambda_powertools.utilities.typing",
)


def send_message(channel: socket.socket, message: Any) -> None:
    data = json.dumps(message).encode()
    channel.sendall(_HEADER.pack(len(data)) + data)


def receive_message(channel: socket.socket) -> Any | None:
    """The next message, or None when the other side closed the channel between messages."""
    header = _receive_exactly(channel, _HEADER.size)
    if header is None:
        return None
    data = _receive_exactly(channel, _HEADER.unpack(header)[0])
    if data is None:
        raise ConnectionError("the channel closed in the middle of a message")
    return json.loads(data)


def _receive_exactly(channel: socket.socket, size: int) -> bytes | None:
    received = bytearray()
    while len(received) < size:
        chunk = channel.recv(min(size - len(received), 1 << 20))
        if not chunk:
            if received:
                raise ConnectionError("the channel closed in the middle of a message")
            return None
        received += chunk
    return bytes(received)


def error_of(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """An error as Lambda reports it to the invoker."""
    return {
        "errorType": error_type or type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error),
    }


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


@dataclass(frozen=True)
class ContainerSpec:
    """What a loader needs to know of its function; passed on its command line as JSON."""

    function_name: str
    code_uri: str
    handler: str
    memory_mb: int
    function_arn: str


def serve_invocations(
    channel: socket.socket, handler: Callable[[Any, Any], Any], spec: ContainerSpec, observer: InvocationObserver
) -> None:
    """A container's life: one invocation at a time, until the runtime closes the channel. `fault` in a
    request is one the runtime injects (faults.py): the container dies before or after the handler, or
    outlives the timeout after it (the runtime then kills it, as it kills any invocation that does)."""
    while (request := receive_message(channel)) is not None:
        fault = request.get("fault")
        if fault == "crash_before":
            os._exit(1)
        observer.begin(request["request_id"])
        context = LambdaContext(
            function_name=spec.function_name,
            memory_limit_in_mb=spec.memory_mb,
            invoked_function_arn=spec.function_arn,
            deadline=time.monotonic() + request["timeout"],
            aws_request_id=request["request_id"],
        )
        try:
            reply: dict[str, Any] = {"result": handler(request["event"], context)}
        except Exception as error:
            reply = {"error": error_of(error)}
        if fault == "crash_after":
            os._exit(1)
        if fault == "timeout":
            time.sleep(request["timeout"] + 60)
        reply.update(visibility_set=observer.visibility_set, throttled=observer.throttled)
        try:
            send_message(channel, reply)
        except (TypeError, ValueError) as error:
            send_message(channel, {"error": error_of(error, "Runtime.MarshalError")})


def _load(spec: ContainerSpec) -> Callable[[Any, Any], Any]:
    sys.path.insert(0, spec.code_uri)
    module_name, _, attribute = spec.handler.rpartition(".")
    handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module_name), attribute)
    return handler


def run_loader(control: socket.socket, spec: ContainerSpec) -> None:
    """Import the handler, then fork a container for every channel the runtime sends, until it hangs up."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    # Before the handler's import, so that every botocore session it makes calls the observer.
    observer = InvocationObserver.from_environment(spec.function_name, os.environ)
    observer.install_in_botocore()
    try:
        handler = _load(spec)
    except Exception as error:
        send_message(control, {"error": error_of(error, "Runtime.ImportModuleError")})
        return
    init_ms = (time.perf_counter() - started_wall) * 1000
    init_cpu_ms = (time.process_time() - started_cpu) * 1000
    send_message(control, {"ready": {"init_ms": init_ms, "init_cpu_ms": init_cpu_ms}})
    # Containers are reaped as they exit (the runtime kills one that timed out).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, 1)
        except ConnectionError:
            return
        if not message or not fds:
            return
        channel = socket.socket(fileno=fds[0])
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # A fork copies the random generator: containers must not share a sequence (jitter, sampling).
            random.seed()
            try:
                serve_invocations(channel, handler, spec, observer)
            except ConnectionError:
                pass  # the runtime went away: nobody is left to answer
            finally:
                os._exit(0)
        channel.close()
        send_message(control, {"pid": pid})


def run_zygote(control: socket.socket) -> None:
    """Import the shared libraries, then fork a loader for every request (its control channel, its spec
    and its environment), answering with the loader's pid, until the runtime hangs up."""
    for module in SHARED_LIBRARIES:
        importlib.import_module(module)
    # Loaders are waited for as they exit (the runtime kills them when it stops), not left to the
    # kernel: their CPU then counts in the zygote's children's, as a loader started as the runtime's
    # own child counts in the runtime's.
    signal.signal(signal.SIGCHLD, lambda *_: _wait_for_loaders(os.WNOHANG))
    try:
        _fork_loaders(control)
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _wait_for_loaders(0)  # the runtime hung up once its functions had killed their loaders


def _wait_for_loaders(options: int) -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, options)[0]:
            pass


def _fork_loaders(control: socket.socket) -> None:
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(control, 1, 1)
            request = receive_message(control)
        except ConnectionError:
            return
        if not fds or request is None:
            return
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.clear()
            os.environ.update(request["environment"])
            spec = ContainerSpec(**request["spec"])
            _name_process(spec.function_name)
            try:
                _run_loader_process(socket.socket(fileno=fds[0]), spec)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        os.close(fds[0])
        send_message(control, {"pid": pid})


def _name_process(name: str) -> None:
    # A forked loader has the zygote's command line: its name (/proc/PID/comm, 15 characters on Linux)
    # says which function it is to `ps` and to `make load`'s CPU accounting.
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


def _run_loader_process(control: socket.socket, spec: ContainerSpec) -> None:
    # A handler's stdout is its log (CloudWatch on AWS), never the runtime's stdout, which
    # `imgflow process --json` keeps for its results.
    os.dup2(2, 1)
    # The runtime turns metrics off (no CloudWatch here); Powertools then warns on every invocation.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Ctrl+C stops the runtime, which closes every channel; an invocation is not interrupted mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_loader(control, spec)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    if argv[1] == "--zygote":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a loader's: the runtime stops it
        run_zygote(control)
    else:
        _run_loader_process(control, ContainerSpec(**json.loads(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
