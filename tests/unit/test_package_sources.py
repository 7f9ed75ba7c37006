"""The one exception to wheels only: a pure-Python sdist, built on this machine, is shipped only if pure."""

from __future__ import annotations

from pathlib import Path

import pytest

import package


def wheel_metadata(packages: Path, distribution: str, tag: str) -> None:
    dist_info = packages / f"{distribution}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")


def test_given_the_sdist_built_as_pure_python_when_checked_then_it_ships(tmp_path: Path) -> None:
    wheel_metadata(tmp_path, "pyvips-3.2.0", "py3-none-any")
    wheel_metadata(tmp_path, "pillow-13.0.0", "cp313-cp313-manylinux_2_28_aarch64")  # a locked wheel: not built

    package.check_pure(tmp_path)


def test_given_the_sdist_compiled_for_this_machine_when_checked_then_the_build_fails(tmp_path: Path) -> None:
    # What pyvips's build makes where pkg-config finds a libvips: an extension for this machine, not Lambda.
    wheel_metadata(tmp_path, "pyvips-3.2.0", "cp313-cp313-linux_x86_64")

    with pytest.raises(SystemExit, match=r"pyvips-3\.2\.0\.dist-info was built for this machine"):
        package.check_pure(tmp_path)


def test_given_this_shell_when_sdists_build_then_pkg_config_finds_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKG_CONFIG_PATH", "/usr/local/lib/pkgconfig")

    environment = package.sdist_build_env()

    assert "PKG_CONFIG_PATH" not in environment
    assert environment["PKG_CONFIG_LIBDIR"] == "/dev/null"
