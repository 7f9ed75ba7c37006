"""Builds what `sam build` builds, without SAM: one zip per layer and per function of template.yaml under
build/ (`make package`), with each artifact's locked requirements installed for Lambda's platform (arm64
Linux, CPython 3.13) from wheels only, botocore's models pruned to the services the functions call, and
every module compiled to bytecode by Python 3.13 (on PATH, or pyenv's). Prints each artifact's zipped and
unzipped size and fails past Lambda's limits, or if a function carries a package it must not (the api
function: Pillow, google-genai).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from imgflow_local.template import load_template
from layer_requirements import LAMBDA_PYTHON_VERSION, PIP_PLATFORMS, SOURCE_ONLY

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
MB = 1024 * 1024
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
MAX_ZIPPED_BYTES = 50 * MB  # a zip uploaded directly
MAX_UNZIPPED_BYTES = 250 * MB  # a function and all its layers, unzipped
MAX_LAYERS = 5
# What these functions must not carry, in their own code or any of their layers: the api function's cold
# start and attack surface stay free of the imaging stack and the Gemini SDK, and so do the sweeper's.
LEAN_FUNCTIONS = ("ApiFunction", "SweepFunction")
# By distribution (as a lock pins it) and by the folder it installs.
FORBIDDEN_IN_LEAN = {"pillow": "PIL", "google-genai": "google/genai"}
PIP_TARGET = (
    *("--implementation", "cp", "--python-version", LAMBDA_PYTHON_VERSION),
    # Wheels only but for the pure-Python sdists, every file checked against the lock's hashes (a lock
    # lists every dependency: pip allows an sdist beside --platform only with --no-deps); no .pyc for this
    # machine's Python (below).
    *("--only-binary=:all:", *(f"--no-binary={package}" for package in SOURCE_ONLY), "--no-deps"),
    *("--require-hashes", "--no-compile"),
)
# The AWS services the functions call: imgflow.aws's clients, and Secrets Manager through Powertools'
# parameters (the Gemini keys). botocore carries a model of every service AWS has (over 400 folders, 28 MB
# of the shared layer's 43 unzipped); the artifacts keep only these. The SDK's first client in a cold
# start also lists every folder of its data, three times, to find a model.
AWS_SERVICES = frozenset({"dynamodb", "events", "s3", "secretsmanager", "sqs"})
# Where Lambda extracts an artifact: a layer's zip into /opt, a function's into /var/task.
LAYER_MOUNT, FUNCTION_MOUNT = "/opt", "/var/task"
# What SAM leaves out of a build too.
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


@dataclass(frozen=True)
class Artifact:
    name: str
    root: Path  # what the zip holds, as Lambda extracts it (a layer's root becomes /opt)
    packages: Path  # where its modules are imported from (a layer's python/)
    zipped_bytes: int

    @property
    def unzipped_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.root.rglob("*") if path.is_file())


@cache
def lambda_python() -> str:
    """The interpreter that compiles the artifacts' bytecode: Lambda's own version, or the .pyc are ignored.
    `python3.13` on PATH, else pyenv's (whose shim on PATH runs only where 3.13 is the selected version)."""
    name = f"python{LAMBDA_PYTHON_VERSION}"
    pyenv = subprocess.run(["pyenv", "prefix", LAMBDA_PYTHON_VERSION], capture_output=True, text=True, check=False)
    candidates = [shutil.which(name), *([f"{pyenv.stdout.strip()}/bin/{name}"] if pyenv.returncode == 0 else [])]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True, check=False).returncode == 0:
            return candidate
    raise SystemExit(f"no {name} on PATH or in pyenv: it compiles the bytecode Lambda loads")


def build(
    name: str, source: Path, root: Path, packages: Path, mount: str, platforms: tuple[str, ...] = PIP_PLATFORMS
) -> Artifact:
    """Copies source into packages, installs source's requirements.txt there, compiles root, and zips it."""
    install_into(source, packages, platforms)
    compile_bytecode(root, mount)
    archive = root.parent / f"{name}.zip"
    zip_folder(root, archive)
    return Artifact(name, root, packages, archive.stat().st_size)


def install_into(source: Path, packages: Path, platforms: tuple[str, ...] = PIP_PLATFORMS) -> None:
    shutil.copytree(source, packages, ignore=IGNORED)
    requirements = source / "requirements.txt"
    if requirements.exists():
        target = [option for platform in platforms for option in ("--platform", platform)]
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(packages), *target, *PIP_TARGET]
        subprocess.run([*install, "--requirement", str(requirements)], check=True, env=sdist_build_env())
        check_pure(packages)
    prune_sdk_models(packages)


def sdist_build_env() -> dict[str, str]:
    # pyvips's build compiles an extension against any libvips pkg-config finds: this machine's, not Lambda's.
    hidden = {"PKG_CONFIG_PATH"}
    return {**{key: value for key, value in os.environ.items() if key not in hidden}, "PKG_CONFIG_LIBDIR": os.devnull}


def check_pure(packages: Path) -> None:
    """Fails if a package built here from its sdist is not pure Python: it would be this machine's binary."""
    for package in SOURCE_ONLY:
        for wheel in packages.glob(f"{package}-*.dist-info/WHEEL"):
            if "Tag: py3-none-any" not in wheel.read_text().splitlines():
                raise SystemExit(f"{wheel.parent.name} was built for this machine, not Lambda: {wheel.read_text()}")


def prune_sdk_models(packages: Path) -> None:
    """Drops from the botocore and boto3 under packages (if any) the models of services not in AWS_SERVICES.
    The files at the top of their data (endpoints, partitions, retry and default settings) stay."""
    for data in (packages / "botocore" / "data", packages / "boto3" / "data"):
        if data.is_dir():
            for service in data.iterdir():
                if service.is_dir() and service.name not in AWS_SERVICES:
                    shutil.rmtree(service)


def compile_bytecode(root: Path, mount: str) -> None:
    """Ships every module compiled: Lambda's code is read-only, so without .pyc files each cold start compiles
    every module it imports (about 1 s of CPU for the api). Unchecked-hash pycs, because the zip's timestamps
    are not the files' (a timestamp pyc would be stale at once) and the code never changes under them; the
    paths in tracebacks are the ones Lambda extracts to (`mount`), so the bytes do not depend on where this ran.
    """
    compile_all = [lambda_python(), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([*compile_all, "-s", str(root), "-p", mount, str(root)], check=True, env=_compile_env())


def _compile_env() -> dict[str, str]:
    # The same bytes on every run: a fixed hash seed (frozenset constants are written in hash order), and
    # the pycs in __pycache__ beside their sources, unoptimized, whatever this shell sets.
    hidden = {"PYTHONPYCACHEPREFIX", "PYTHONOPTIMIZE"}
    return {**{key: value for key, value in os.environ.items() if key not in hidden}, "PYTHONHASHSEED": "0"}


def zip_folder(folder: Path, archive: Path) -> None:
    # Sorted entries and a fixed timestamp: the same lock and code make the same zip.
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (path.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zipped.writestr(info, path.read_bytes())


@dataclass(frozen=True)
class Application:
    """What template.yaml builds: each layer's and function's source folder, and each function's layers."""

    layers: dict[str, Path]
    functions: dict[str, Path]
    function_layers: dict[str, list[str]]


def read_application(template_path: Path) -> Application:
    template = load_template(template_path)
    resources: dict[str, Any] = template["Resources"]

    def of_type(kind: str, uri: str) -> dict[str, Path]:
        return {
            name: template_path.parent / resource["Properties"][uri]
            for name, resource in resources.items()
            if resource["Type"] == kind
        }

    def refs(value: Any) -> list[str]:
        return [item["Ref"] for item in value or []]

    functions = of_type("AWS::Serverless::Function", "CodeUri")
    # SAM appends a function's own Layers to the global ones.
    global_layers = refs(template.get("Globals", {}).get("Function", {}).get("Layers"))
    return Application(
        layers=of_type("AWS::Serverless::LayerVersion", "ContentUri"),
        functions=functions,
        function_layers={name: global_layers + refs(resources[name]["Properties"].get("Layers")) for name in functions},
    )


def finish_sam_build(folder: Path) -> None:
    """Prunes and compiles what `sam build` left in folder (one folder per resource) as `make package` does
    its zips: SAM's python builder installs wheels as they are and offers no step after its own."""
    application = read_application(ROOT / "template.yaml")
    for name in application.layers:
        prune_sdk_models(folder / name / "python")
        compile_bytecode(folder / name, LAYER_MOUNT)
    for name in application.functions:
        prune_sdk_models(folder / name)
        compile_bytecode(folder / name, FUNCTION_MOUNT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--finish-sam-build", type=Path, metavar="DIR", help="only prune and compile sam build's output"
    )
    args = parser.parse_args(argv)
    if args.finish_sam_build:
        finish_sam_build(args.finish_sam_build)
        return 0
    application = read_application(ROOT / "template.yaml")
    shutil.rmtree(BUILD, ignore_errors=True)
    BUILD.mkdir()

    layers = {
        name: build(name, source, BUILD / name, BUILD / name / "python", LAYER_MOUNT)
        for name, source in application.layers.items()
    }
    functions = {
        name: build(name, source, BUILD / name, BUILD / name, FUNCTION_MOUNT)
        for name, source in application.functions.items()
    }

    problems: list[str] = []
    print(f"{'artifact':<48} {'zipped MB':>10} {'unzipped MB':>12}")
    for artifact in [*layers.values(), *functions.values()]:
        print(f"{artifact.name:<48} {artifact.zipped_bytes / MB:>10.2f} {artifact.unzipped_bytes / MB:>12.2f}")
        if artifact.zipped_bytes > MAX_ZIPPED_BYTES:
            problems.append(
                f"{artifact.name}: {artifact.zipped_bytes / MB:.1f} MB zipped, over {MAX_ZIPPED_BYTES // MB}"
            )
    print(f"\n{'function + its layers':<48} {'unzipped MB':>12}")
    for name, layer_names in application.function_layers.items():
        parts = [functions[name], *(layers[layer] for layer in layer_names)]
        total = sum(part.unzipped_bytes for part in parts)
        print(f"{' + '.join(part.name for part in parts):<48} {total / MB:>12.2f}")
        if total > MAX_UNZIPPED_BYTES:
            problems.append(f"{name}: {total / MB:.1f} MB unzipped with its layers, over {MAX_UNZIPPED_BYTES // MB}")
        if len(layer_names) > MAX_LAYERS:
            problems.append(f"{name}: {len(layer_names)} layers, over {MAX_LAYERS}")
        forbidden = FORBIDDEN_IN_LEAN.values() if name in LEAN_FUNCTIONS else ()
        problems += [
            f"{name} carries {folder}" for folder in forbidden for part in parts if (part.packages / folder).exists()
        ]
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
