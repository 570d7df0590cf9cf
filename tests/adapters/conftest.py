"""Helpers that write small adapters into a temporary directory and load them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters import AdapterSet, EndpointAdapter
from gateway.identifiers import ClientId, ServiceId

CLIENT = ClientId.parse("WB/GOV/WCD/kanyashree")
SERVICE = ServiceId.parse("WB/GOV/SED/banglarshiksha/students")
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def bengali(text: str) -> str:
    """``text`` with its ASCII digits written as Bengali digits (U+09E6-U+09EF)."""
    return text.translate({ord("0") + i: 0x09E6 + i for i in range(10)})


def write_adapter(
    root: Path,
    endpoints: list[dict[str, Any]],
    *,
    name: str = "test",
    tables: dict[str, Any] | None = None,
    schemas: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/name/adapter.yaml`` (as JSON, a subset of YAML) and its schemas."""
    directory = root / name
    directory.mkdir(parents=True)
    for schema_file, schema in (schemas or {}).items():
        (directory / schema_file).write_text(
            json.dumps(schema, indent=2), encoding="utf-8"
        )
    spec = {
        "name": name,
        "client": str(CLIENT),
        "service": str(SERVICE),
        "tables": tables or {},
        "endpoints": endpoints,
    }
    file = directory / "adapter.yaml"
    file.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return file


MakeEndpoint = Callable[..., EndpointAdapter]


@pytest.fixture
def make_endpoint(tmp_path: Path) -> MakeEndpoint:
    """Build one endpoint adapter from its request and response specs."""

    def make(
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        *,
        method: str = "POST",
        path: str = "/thing",
        tables: dict[str, Any] | None = None,
        schemas: dict[str, Any] | None = None,
    ) -> EndpointAdapter:
        endpoint = {
            "name": "thing",
            "match": {"method": method, "path": path},
            "request": request or {},
            "response": response or {},
        }
        write_adapter(tmp_path, [endpoint], tables=tables, schemas=schemas)
        adapters = AdapterSet.load(tmp_path)
        found = adapters.find(CLIENT, SERVICE, method, _sample(path))
        assert found is not None
        return found

    return make


def _sample(pattern: str) -> str:
    return "/".join("x" if p.startswith("{") else p for p in pattern.split("/"))
