"""The SAM translation behind the functions' roles is kept in the user's cache by what it derives from:
a runtime start with only its own port changed reads it back, a change a role could depend on translates again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from imgflow_local import iam
from imgflow_local.stack import LocalStack
from support import REGION, ROOT


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "imgflow"


def stack(**parameters: str) -> LocalStack:
    return LocalStack(ROOT / "template.yaml", REGION, parameter_overrides=parameters)


def counting_translations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    translate = iam._translate

    def counted(template: dict[str, Any], parameters: dict[str, Any], region: str) -> dict[str, Any]:
        calls.append(parameters)
        return translate(template, parameters, region)

    monkeypatch.setattr(iam, "_translate", counted)
    return calls


def test_given_a_cached_translation_when_only_the_origins_change_then_the_roles_are_read_back_the_same(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translations = counting_translations(monkeypatch)
    first = iam.function_roles(stack(AllowedOrigin="http://127.0.0.1:40001"))

    again = iam.function_roles(stack(AllowedOrigin="http://127.0.0.1:40002"))

    assert len(translations) == 1
    assert again == first
    assert [path.name.startswith("sam-roles-") for path in cache.iterdir()] == [True]


def test_given_a_cached_translation_when_a_parameter_the_functions_name_changes_then_it_translates_again(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    translations = counting_translations(monkeypatch)
    without = iam.function_roles(stack())

    with_secret = iam.function_roles(stack(GeminiApiKeysSecret="keys"))

    assert len(translations) == 2
    assert with_secret["EditFunction"].policies != without["EditFunction"].policies


def test_given_an_unreadable_cache_entry_then_it_translates_and_writes_it_anew(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    iam.function_roles(stack())
    [entry] = cache.iterdir()
    entry.write_text("{not json")
    translations = counting_translations(monkeypatch)

    iam.function_roles(stack())

    assert len(translations) == 1
    assert entry.read_text().startswith("{")
