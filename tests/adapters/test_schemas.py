"""JSON Schema files: draft 2020-12 only, local references only, pointers not values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.schemas import SchemaLoader
from gateway.errors import ConfigError
from tests.adapters.conftest import DRAFT


def _load(tmp_path: Path, schema: Any, name: str = "s.json") -> Any:
    text = schema if isinstance(schema, str) else json.dumps(schema, indent=2)
    (tmp_path / name).write_text(text, encoding="utf-8")
    return SchemaLoader(tmp_path).load(name, tmp_path / "adapter.yaml", 7)


@pytest.mark.parametrize(
    "ref",
    [
        "https://schemas.example.org/student.json",
        "student.json",
        "file:///etc/passwd",
        "/abs/path.json#/x",
    ],
)
def test_external_ref_is_refused_with_line(tmp_path: Path, ref: str) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": ref}}}
    with pytest.raises(ConfigError, match="external \\$ref") as caught:
        _load(tmp_path, schema)
    assert caught.value.file.endswith("s.json")
    assert caught.value.line == 5


def test_external_dynamic_ref_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="external"):
        _load(tmp_path, {"$dynamicRef": "https://schemas.example.org/x"})


def test_local_ref_is_accepted(tmp_path: Path) -> None:
    schema = {
        "properties": {"a": {"$ref": "#/$defs/id"}},
        "$defs": {"id": {"type": "string"}},
    }
    assert _load(tmp_path, schema).first_error({"a": 1}) == "/a"


def test_ref_inside_const_is_data(tmp_path: Path) -> None:
    schema = {"properties": {"a": {"const": {"$ref": "https://x.example"}}}}
    assert (
        _load(tmp_path, schema).first_error({"a": {"$ref": "https://x.example"}})
        is None
    )


def test_local_ref_that_does_not_resolve(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a valid JSON Schema|does not resolve"):
        _load(tmp_path, {"properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_invalid_schema_names_file_and_line(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "strin"}}}
    with pytest.raises(ConfigError, match="not a valid JSON Schema") as caught:
        _load(tmp_path, schema)
    assert caught.value.file.endswith("s.json")
    assert caught.value.line == 5


def test_bad_regex_in_schema_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        _load(tmp_path, {"pattern": "(unclosed"})


def test_other_draft_is_refused(tmp_path: Path) -> None:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    with pytest.raises(ConfigError, match="2020-12") as caught:
        _load(tmp_path, schema)
    assert caught.value.line == 2


def test_not_json_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not JSON") as caught:
        _load(tmp_path, '{\n  "type": "object",\n  oops\n}')
    assert caught.value.line == 3


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="twice"):
        _load(tmp_path, '{"type": "object", "type": "string"}')


def test_schema_outside_the_adapter_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "adapter"
    inner.mkdir()
    (tmp_path / "s.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="outside the adapter") as caught:
        SchemaLoader(inner).load("../s.json", inner / "adapter.yaml", 7)
    assert caught.value.line == 7


def test_missing_schema_file_names_the_referring_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such schema file") as caught:
        SchemaLoader(tmp_path).load("nope.json", tmp_path / "adapter.yaml", 12)
    assert caught.value.file.endswith("adapter.yaml")
    assert caught.value.line == 12


@pytest.mark.parametrize(
    ("instance", "where"),
    [
        ({"id": "WB201900001235"}, None),
        ({}, "/id"),
        ({"id": "WB2019"}, "/id"),
        ({"id": "WB201900001235", "extra": 1}, ""),
        ({"id": "WB201900001235", "list": ["ok", 3]}, "/list/1"),
        ({"id": "WB201900001235", "a/b": 3}, "/a~1b"),
    ],
)
def test_first_error_is_a_pointer(
    tmp_path: Path, instance: Any, where: str | None
) -> None:
    schema = {
        "$schema": DRAFT,
        "type": "object",
        "additionalProperties": False,
        "required": ["id"],
        "properties": {
            "id": {"type": "string", "pattern": "^WB[0-9]{12}$"},
            "list": {"type": "array", "items": {"type": "string"}},
            "a/b": {"type": "string"},
        },
    }
    assert _load(tmp_path, schema).first_error(instance) == where


def test_format_date_is_asserted(tmp_path: Path) -> None:
    schema = {"properties": {"d": {"type": "string", "format": "date"}}}
    assert _load(tmp_path, schema).first_error({"d": "2012-02-31"}) == "/d"
