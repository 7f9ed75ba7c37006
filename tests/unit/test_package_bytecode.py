"""`make package` ships bytecode Lambda's python3.13 loads as it is: unchecked-hash pycs, with Lambda's paths."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import package


def _has_lambda_python() -> bool:
    try:
        package.lambda_python()
    except SystemExit:
        return False
    return True


pytestmark = pytest.mark.skipif(not _has_lambda_python(), reason="no python3.13 on PATH or in pyenv")


def test_given_an_artifact_when_compiled_then_every_module_has_an_unchecked_hash_pyc_naming_lambdas_path(
    tmp_path: Path,
) -> None:
    root = tmp_path / "ApiFunction"
    (root / "pkg").mkdir(parents=True)
    (root / "handler.py").write_text("VALUE = frozenset({'a', 'b', 'c'})\n")
    (root / "pkg" / "__init__.py").write_text("")

    package.compile_bytecode(root, package.FUNCTION_MOUNT)

    pyc = root / "__pycache__" / f"handler.cpython-{package.LAMBDA_PYTHON_VERSION.replace('.', '')}.pyc"
    assert (root / "pkg" / "__pycache__").is_dir()
    # PEP 552: flags 0b01 is hash-based and unchecked, so the source is never read or hashed again.
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01
    # The hash and the code object are 3.13's: ask 3.13 what the pyc records.
    read = (
        "import importlib.util, json, marshal, sys; data = open(sys.argv[1], 'rb').read(); "
        "source = open(sys.argv[2], 'rb').read(); "
        "print(json.dumps([data[8:16] == importlib.util.source_hash(source), marshal.loads(data[16:]).co_filename]))"
    )
    recorded = subprocess.run(
        [package.lambda_python(), "-c", read, str(pyc), str(root / "handler.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(recorded) == [True, "/var/task/handler.py"]


def test_given_the_same_sources_when_compiled_twice_then_the_bytecode_is_the_same(tmp_path: Path) -> None:
    for build in ("one", "two"):
        (tmp_path / build).mkdir()
        (tmp_path / build / "handler.py").write_text("VALUE = frozenset({'a', 'b', 'c', 'd', 'e'})\n")
        package.compile_bytecode(tmp_path / build, package.LAYER_MOUNT)

    one, two = (next((tmp_path / build / "__pycache__").glob("*.pyc")).read_bytes() for build in ("one", "two"))
    assert one == two
