"""Prints the shared layer's requirements.txt from pyproject.toml's runtime dependencies (SAM builds the
layer from that file; pyproject.toml stays the one place they are declared)."""

import tomllib
from pathlib import Path

HEADER = "# Generated from pyproject.toml by `make layer-requirements`; do not edit.\n"


def render() -> str:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    return HEADER + "".join(f"{dependency}\n" for dependency in project["dependencies"])


if __name__ == "__main__":
    print(render(), end="")
