"""The worked examples: every adapter in config/adapters passes its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters import AdapterSet, ExampleResult, run_examples
from adapters.examples import difference
from tests.adapters.conftest import write_adapter

CONFIG = Path(__file__).parents[2] / "config" / "adapters"


def _config_results() -> list[ExampleResult]:
    return run_examples(AdapterSet.load(CONFIG))


@pytest.mark.parametrize(
    "result", _config_results(), ids=lambda r: f"{r.adapter}: {r.example}"
)
def test_config_example_passes(result: ExampleResult) -> None:
    assert result.passed, result.detail


@pytest.mark.parametrize(
    "adapter",
    [
        "kanyashree-students",
        "saboojsathi-students",
        "ifms-students",
        "aikyashree-students",
        "iosms-schools",
    ],
)
def test_every_departmental_adapter_has_examples(adapter: str) -> None:
    assert any(r.adapter == adapter for r in _config_results())


def _examples_in(tmp_path: Path, examples: list[dict[str, Any]]) -> list[ExampleResult]:
    endpoint = {
        "name": "e",
        "match": {"method": "POST", "path": "/x"},
        "request": {"body": {"b": {"from": "/a", "required": True}}},
        "response": {"body": {"c": "/b"}},
    }
    file = write_adapter(tmp_path, [endpoint])
    spec = json.loads(file.read_text(encoding="utf-8"))
    spec["examples"] = examples
    file.write_text(json.dumps(spec), encoding="utf-8")
    return run_examples(AdapterSet.load(tmp_path))


REQUEST = {"method": "POST", "path": "/x", "body": {"a": 1}}


@pytest.mark.parametrize(
    ("example", "detail"),
    [
        (
            {"canonical_request": {"method": "POST", "path": "/x", "body": {"b": 2}}},
            "canonical body differs at '/b'",
        ),
        (
            {"canonical_request": {"method": "PUT", "path": "/x", "body": {"b": 1}}},
            "canonical method",
        ),
        ({"request_error": {"reason": "mapping_failed"}}, "but the request mapped"),
        (
            {
                "canonical_request": {"method": "POST", "path": "/x", "body": {"b": 1}},
                "canonical_response": {"status": 200, "body": {"b": 5}},
                "response": {"c": 6},
            },
            "client response differs at '/c'",
        ),
    ],
)
def test_failing_example_says_where(
    tmp_path: Path, example: dict[str, Any], detail: str
) -> None:
    (result,) = _examples_in(tmp_path, [{"name": "x", "request": REQUEST, **example}])
    assert not result.passed
    assert detail in result.detail


def test_unexpected_error_is_reported(tmp_path: Path) -> None:
    example = {
        "name": "x",
        "request": {"method": "POST", "path": "/x", "body": {}},
        "canonical_request": {"method": "POST", "path": "/x", "body": {}},
    }
    (result,) = _examples_in(tmp_path, [example])
    assert "mapping_failed at '/a'" in result.detail


def test_unmatched_example_request_fails(tmp_path: Path) -> None:
    example = {
        "name": "x",
        "request": {"method": "GET", "path": "/y"},
        "request_error": {"reason": "x"},
    }
    (result,) = _examples_in(tmp_path, [example])
    assert result.detail == "no endpoint matches the request"


@pytest.mark.parametrize(
    ("expected", "actual", "where"),
    [
        ({"a": [1, 2]}, {"a": [1, 2]}, None),
        ({"a": 1}, {"a": True}, "/a"),
        ({"a": 1}, {"a": 1.0}, "/a"),
        ({"a": 1}, {}, "/a"),
        ({}, {"b": 1}, "/b"),
        ([1, 2], [1], ""),
        ([{"x": None}], [{"x": 0}], "/0/x"),
    ],
)
def test_difference(expected: Any, actual: Any, where: str | None) -> None:
    assert difference(expected, actual) == where
