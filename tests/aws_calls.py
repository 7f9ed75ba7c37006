"""The AWS API calls a Lambda function's code can make, found by reading the code (nothing is imported or
run): what the function's IAM policy has to allow.

From the handler module, every definition the code can reach is followed, through the function's own
folder and the `imgflow` layer package:
- a name or a `module.name` reaches that function, class or module, imports inside functions included:
  `services.uploads_service()` reaches the uploads service and what it builds, not the edit service;
- a method is reached by its name: `x.publish(e)` reaches every method `publish` of every class reached
  that can take those arguments (the receiver's type is not known: reaching too much is safe, missing a
  call is not; `image.copy()` is no call of `ObjectStorage.copy(source_bucket, ...)`); so is every
  method named by an attribute that is not called (a property, a bound method handed on), and every
  dunder and decorated method of a reached class, which are called for it;
- a call `x.put_events(...)` is an AWS call when `put_events` is an operation of a service whose client or
  resource the reached code makes (`client("events")`), presigned URLs and POST forms included (S3 checks
  the signer's permissions when the URL is used);
- libraries that call AWS themselves are known by a table (`LIBRARY_CALLS`); a name from one of them that
  the table does not know is an error, so that a new use is looked at rather than missed.
It cannot see an operation named at run time (`getattr(client, name)`), boto3's managed `copy` (its name
is everyone's), nor which bucket, table or queue a call names.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import boto3
import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "imgflow"

# What a library does with AWS, by the names our code uses from it.
LIBRARY_CALLS: dict[str, frozenset[tuple[str, str]]] = {
    "aws_lambda_powertools.utilities.parameters.get_secret": frozenset({("secretsmanager", "GetSecretValue")}),
    "aws_lambda_powertools.utilities.idempotency.DynamoDBPersistenceLayer": frozenset(
        ("dynamodb", operation) for operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
    ),
    "aws_lambda_powertools.utilities.idempotency.IdempotencyConfig": frozenset(),
    "aws_lambda_powertools.utilities.idempotency.idempotent_function": frozenset(),
}
# Packages whose names call AWS on their own; every name of theirs that code reaches must be in LIBRARY_CALLS.
AWS_CALLING_LIBRARIES = (
    *(
        f"aws_lambda_powertools.utilities.{name}"
        for name in ("parameters", "idempotency", "streaming", "feature_flags", "data_masking")
    ),
    "boto3.s3.transfer",
)
# Methods boto3 adds to clients and resources, which are no operation of the service model.
_INJECTED_OPERATIONS = {
    "generate_presigned_post": ("s3", "PutObject"),
    "batch_writer": ("dynamodb", "BatchWriteItem"),
    "upload_file": ("s3", "PutObject"),
    "upload_fileobj": ("s3", "PutObject"),
    "download_file": ("s3", "GetObject"),
    "download_fileobj": ("s3", "GetObject"),
}
# Calls naming the operation they make (or sign) by a string: its first argument, or this keyword.
_NAMED_OPERATION = {"generate_presigned_url": "ClientMethod", "get_paginator": "operation_name"}


@dataclass(frozen=True)
class _Shape:
    """The arguments of a call: how many by position, which by name; unpacked ones could be anything."""

    positional: int
    keywords: frozenset[str]
    unpacked: bool

    @classmethod
    def of(cls, call: ast.Call) -> _Shape:
        keywords = frozenset(k.arg for k in call.keywords if k.arg is not None)
        unpacked = any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords)
        return cls(len(call.args), keywords, unpacked)

    def fits(self, method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        if self.unpacked:
            return True
        args = method.args
        every = [*args.posonlyargs, *args.args]
        first_default = len(every) - len(args.defaults)
        params = [(arg.arg, index >= first_default) for index, arg in enumerate(every)]
        if not any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in method.decorator_list):
            params = params[1:]  # self, or cls
        if self.positional > len(params) and args.vararg is None:
            return False
        rest = params[self.positional :]
        named = {name for name, _ in rest} | {arg.arg for arg in args.kwonlyargs}
        if args.kwarg is None and not self.keywords <= named:
            return False
        required = {name for name, has_default in rest if not has_default}
        required |= {arg.arg for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True) if default is None}
        return required <= self.keywords


@dataclass(frozen=True, order=True)
class AwsCall:
    service: str  # as boto3 names it: "s3", "events", "secretsmanager"
    operation: str  # as the API names it: "PutObject"
    where: str  # "imgflow/storage.py:52", or the library name

    def __str__(self) -> str:
        return f"{self.service}:{self.operation} ({self.where})"


class AnalysisError(Exception):
    """The code does something this analysis cannot follow: teach it, rather than let a call go unseen."""


@dataclass
class _Module:
    name: str
    path: Path
    tree: ast.Module
    bindings: dict[str, ast.AST | str] = field(default_factory=dict)  # a definition, or an import's target

    # Read for every node visited: computed once, it is no longer most of the analysis's time.
    @cached_property
    def short_path(self) -> str:
        return self.path.relative_to(self.path.parents[1]).as_posix()


def _import_targets(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """The names an import binds, each to the qualified name it stands for."""
    if isinstance(node, ast.ImportFrom):
        if node.level:
            raise AnalysisError(f"relative import of {node.module} at line {node.lineno}")
        return {alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names}
    return {
        alias.asname or alias.name.split(".")[0]: alias.name if alias.asname else alias.name.split(".")[0]
        for alias in node.names
    }


def _parse(name: str, path: Path) -> _Module:
    module = _Module(name, path, ast.parse(path.read_text(), filename=str(path)))
    for statement in module.tree.body:
        # Names bound under `if TYPE_CHECKING:` or in a `try:` count too.
        for node in ast.walk(statement) if isinstance(statement, ast.If | ast.Try) else (statement,):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                module.bindings[node.name] = node
            elif isinstance(node, ast.Import | ast.ImportFrom):
                module.bindings.update(_import_targets(node))
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                module.bindings.update({target.id: node for target in targets if isinstance(target, ast.Name)})
    return module


def _string_argument(call: ast.Call, keyword: str) -> str | None:
    """The call's first argument, or the argument named `keyword`, when it is a string literal."""
    argument = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == keyword), None)
    return argument.value if isinstance(argument, ast.Constant) and isinstance(argument.value, str) else None


@cache
def _operations(service: str) -> dict[str, str]:
    """The operations of a service by the name of their boto3 method: put_events → PutEvents."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(operation): operation for operation in model.operation_names}


@cache
def _services() -> frozenset[str]:
    return frozenset(boto3.session.Session().get_available_services())


class _Reach:
    """Walks what the handler module reaches, to a fixed point."""

    def __init__(self, modules: dict[str, _Module]) -> None:
        self.modules = modules
        self.packages = {name.split(".")[0] for name in modules}
        self.walked: set[int] = set()
        self.pending: list[tuple[_Module, ast.AST]] = []
        self.uses: dict[str, list[_Shape | None]] = defaultdict(list)  # method name → its calls (None: no call)
        self.calls_by_function: dict[int, ast.Call] = {}
        self.methods: dict[str, list[tuple[_Module, ast.FunctionDef | ast.AsyncFunctionDef]]] = defaultdict(list)
        self.externals: dict[str, str] = {}  # qualified name → where it is first used
        self.services: set[str] = set()
        self.method_calls: list[tuple[_Module, str, ast.Call]] = []

    def run(self, handler: _Module) -> None:
        self.reach_module(handler.name)
        for statement in handler.tree.body:  # the routes and the entry point: the runtime calls them
            if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.reach(handler, statement)
        while self.pending:
            module, node = self.pending.pop()
            self.walk(module, node)

    def reach(self, module: _Module, node: ast.AST) -> None:
        if id(node) not in self.walked:
            self.walked.add(id(node))
            self.pending.append((module, node))

    def reach_module(self, name: str) -> None:
        if name in self.modules:
            self.reach(self.modules[name], self.modules[name].tree)

    def reach_name(self, qualified: str, where: str) -> None:
        """Reach what a qualified name stands for: one of our modules or definitions, or a library's name."""
        if qualified in self.modules:
            self.reach_module(qualified)
            return
        owner, _, name = qualified.rpartition(".")
        if owner in self.modules:
            self.reach_module(owner)
            binding = self.modules[owner].bindings.get(name)
            if isinstance(binding, str):
                self.reach_name(binding, where)
            elif isinstance(binding, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.reach(self.modules[owner], binding)
            return
        if qualified.split(".")[0] not in self.packages:
            self.externals.setdefault(qualified, where)

    def walk(self, module: _Module, node: ast.AST) -> None:
        if isinstance(node, ast.ClassDef):
            self.walk_class(module, node)
            return
        if isinstance(node, ast.Module):
            inside: list[ast.AST] = [
                s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            ]
        else:
            inside = [node]
        local: dict[str, str] = {}
        for part in inside:
            for child in ast.walk(part):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    local.update(_import_targets(child))
        for target in set(local.values()):  # an import runs the module it names
            self.reach_module(target)
            self.reach_module(target.rpartition(".")[0])
        for part in inside:
            for child in ast.walk(part):
                self.visit(module, child, local)

    def walk_class(self, module: _Module, node: ast.ClassDef) -> None:
        body = [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)]
        for part in [*node.bases, *node.keywords, *node.decorator_list, *body]:
            for child in ast.walk(part):
                self.visit(module, child, {})
        for method in node.body:
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                self.methods[method.name].append((module, method))
                implicit = method.decorator_list or (method.name.startswith("__") and method.name.endswith("__"))
                if implicit or any(use is None or use.fits(method) for use in self.uses.get(method.name, ())):
                    self.reach(module, method)

    def visit(self, module: _Module, node: ast.AST, local: dict[str, str]) -> None:
        where = f"{module.short_path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Name | ast.Attribute):
            qualified = self.qualified(module, node, local)
            if qualified is not None:
                self.reach_name(qualified, where)
        if isinstance(node, ast.Attribute):
            call = self.calls_by_function.get(id(node))
            use = _Shape.of(call) if call is not None else None
            if use not in self.uses[node.attr]:
                self.uses[node.attr].append(use)
                for owner, method in self.methods.get(node.attr, []):
                    if use is None or use.fits(method):
                        self.reach(owner, method)
        if isinstance(node, ast.Call):
            self.calls_by_function[id(node.func)] = node  # ast.walk gives a call before its function
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            service = _string_argument(node, "service_name")
            if name.endswith(("client", "resource")) and service in _services():
                self.services.add(str(service))
            if isinstance(node.func, ast.Attribute):
                self.method_calls.append((module, node.func.attr, node))
            elif name == "getattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                self.method_calls.append((module, str(node.args[1].value), node))  # getattr(client, "put_item")

    def qualified(self, module: _Module, node: ast.AST, local: dict[str, str]) -> str | None:
        """The qualified name a name or a chain of attributes on a name stands for, if it is a global one."""
        if isinstance(node, ast.Attribute):
            owner = self.qualified(module, node.value, local)
            return f"{owner}.{node.attr}" if owner is not None else None
        if not isinstance(node, ast.Name):
            return None
        if node.id in local:
            return local[node.id]
        binding = module.bindings.get(node.id)
        if isinstance(binding, str):
            return binding
        return f"{module.name}.{node.id}" if binding is not None else None


def _calls_by_name(reach: _Reach) -> set[AwsCall]:
    operations: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for service in reach.services:
        for method, operation in _operations(service).items():
            operations[method].add((service, operation))
    found: set[AwsCall] = set()
    for module, method, call in reach.method_calls:
        where = f"{module.short_path}:{call.lineno}"
        if method in _NAMED_OPERATION:
            named = _string_argument(call, _NAMED_OPERATION[method])
            if named is None:
                raise AnalysisError(f"{where}: {method} with an operation that is not a string literal")
            method = named
        if method in _INJECTED_OPERATIONS and _INJECTED_OPERATIONS[method][0] in reach.services:
            found.add(AwsCall(*_INJECTED_OPERATIONS[method], where))
        # A name that is an operation of several services the code uses is taken as a call of each.
        found.update(AwsCall(service, operation, where) for service, operation in operations.get(method, ()))
    return found


def _library_calls(reach: _Reach) -> set[AwsCall]:
    found: set[AwsCall] = set()
    for name, where in reach.externals.items():
        if not name.startswith(tuple(f"{library}." for library in AWS_CALLING_LIBRARIES)):
            continue
        if name not in LIBRARY_CALLS:
            raise AnalysisError(f"{where}: {name} may call AWS; say what it calls in LIBRARY_CALLS")
        found.update(AwsCall(service, operation, f"{where}, {name}") for service, operation in LIBRARY_CALLS[name])
    return found


def aws_calls(code_uri: Path, handler: str) -> set[AwsCall]:
    """Every AWS API call the function whose code is in `code_uri`, entered at `handler`
    (`module.function`), can make through its own modules and the `imgflow` layer."""
    modules = {
        f"imgflow.{path.stem}": _parse(f"imgflow.{path.stem}", path) for path in (LAYER / "imgflow").glob("*.py")
    }
    modules["imgflow"] = modules.pop("imgflow.__init__")
    modules.update({path.stem: _parse(path.stem, path) for path in code_uri.glob("*.py")})
    handler_module = handler.rpartition(".")[0]
    if handler_module not in modules:
        raise AnalysisError(f"no module {handler_module} in {code_uri}")
    reach = _Reach(modules)
    reach.run(modules[handler_module])
    return _calls_by_name(reach) | _library_calls(reach)
