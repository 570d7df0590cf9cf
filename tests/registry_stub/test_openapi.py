"""The registry's OpenAPI document matches its routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from registry_stub.app import create_app
from registry_stub.openapi import OPENAPI

pytestmark = pytest.mark.anyio


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(ref: str) -> Any:
    node: Any = OPENAPI
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


async def test_document_is_served_as_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    assert response.json() == OPENAPI
    assert response.json()["openapi"] == "3.1.0"


def test_document_lists_every_route_and_method(db: Path) -> None:
    app = create_app(db)
    routes = {
        (r.path, method.lower())
        for r in app.routes
        if isinstance(r, Route)
        for method in r.methods or ()
        if method != "HEAD"
    }
    documented = {(p, m) for p, ops in OPENAPI["paths"].items() for m in ops}
    assert documented == routes


def test_every_reference_resolves() -> None:
    refs = _refs(OPENAPI)
    assert refs
    for ref in refs:
        assert _resolve(ref)


def test_every_operation_has_a_unique_id() -> None:
    ids = [
        op["operationId"] for ops in OPENAPI["paths"].values() for op in ops.values()
    ]
    assert len(ids) == len(set(ids))
