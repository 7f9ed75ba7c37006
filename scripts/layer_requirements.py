"""Compiles each Lambda artifact's requirements.txt, a lock with hashes, from its group of pyproject.toml's
runtime dependencies (`make lock`). SAM and scripts/package.py install exactly these files, so a build is
reproducible; pyproject.toml stays the one place the ranges are declared.

Locks are resolved for Lambda's platform (arm64 Linux, CPython 3.13), not this machine's. The shared
layer is compiled first and constrains the others, so a package that two artifacts ship has one version.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_PYTHON_VERSION = "3.13"
# Lambda's python3.13 runtime is Amazon Linux 2023 (glibc 2.34), so it takes manylinux wheels up to
# manylinux_2_34 (SAM's builder accepts the same); manylinux2014 alone would miss Pillow 13, whose
# aarch64 wheels are manylinux_2_28. uv's name for that platform, and pip's tags for it (pip takes a wheel
# only for a tag it is given, so every glibc from manylinux2014's 2.17 to 2.34):
UV_PYTHON_PLATFORM = "aarch64-manylinux_2_34"
PIP_PLATFORMS = ("manylinux2014_aarch64", *(f"manylinux_2_{glibc}_aarch64" for glibc in range(17, 35)))
# Pure-Python packages published only as an sdist: the one exception to wheels only. Built on any machine
# they make the same py3-none-any wheel (pyvips would compile an extension only against a libvips it finds
# with pkg-config; scripts/package.py hides any the machine has, and Lambda's libvips is pyvips-binary's).
SOURCE_ONLY = ("pyvips",)


@dataclass(frozen=True)
class LockedArtifact:
    """One artifact's lock and the pyproject group it is compiled from (None: `project.dependencies`)."""

    lock: Path
    group: str | None


# The shared layer first: the others are compiled against its lock.
ARTIFACTS = (
    LockedArtifact(ROOT / "layers" / "imgflow" / "requirements.txt", None),
    LockedArtifact(ROOT / "layers" / "imaging" / "requirements.txt", "imaging"),
    LockedArtifact(ROOT / "functions" / "edit" / "requirements.txt", "gemini"),
)


def declared(artifact: LockedArtifact) -> list[str]:
    """The requirement strings pyproject.toml declares for an artifact."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements: list[str] = (
        project["dependencies"] if artifact.group is None else project["optional-dependencies"][artifact.group]
    )
    return requirements


def compile_lock(artifact: LockedArtifact, constraints: list[Path]) -> None:
    command = [
        *(str(Path(sys.executable).parent / "uv"), "pip", "compile", "-"),
        *("--output-file", str(artifact.lock.relative_to(ROOT))),
        *("--python-version", LAMBDA_PYTHON_VERSION, "--python-platform", UV_PYTHON_PLATFORM),
        # Wheels only: Lambda cannot build an sdist, and this machine cannot build one for arm64.
        *("--only-binary", ":all:", *(arg for package in SOURCE_ONLY for arg in ("--no-binary", package))),
        *("--generate-hashes", "--no-strip-extras"),
        *("--custom-compile-command", "make lock", "--quiet"),
        *(arg for constraint in constraints for arg in ("--constraint", str(constraint.relative_to(ROOT)))),
    ]
    artifact.lock.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(command, input="\n".join(declared(artifact)) + "\n", text=True, cwd=ROOT, check=True)


def main() -> None:
    shared, *others = ARTIFACTS
    compile_lock(shared, [])
    for artifact in others:
        compile_lock(artifact, [shared.lock])


if __name__ == "__main__":
    main()
