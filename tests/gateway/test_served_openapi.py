"""The OpenAPI documents ``getOpenAPI`` serves describe the registry as it is.

Each registry service (``students``, ``schools``) has a document in
``config/openapi/`` with paths relative to the service's base URL. Every route of
the registry app must be described by one of them, nothing else may be, and each
described operation and component must equal the registry's own document.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.routing import Route

from gateway.directory import Directory
from gateway.identifiers import ClientId
from registry_stub.app import create_app
from registry_stub.openapi import OPENAPI

CONFIG = Path(__file__).resolve().parents[2] / "config"
REGISTRY = ClientId("WB", "GOV", "SED", "banglarshiksha")
#: The registry's own document, served by the registry and by no service.
SELF = ("GET", "/api/openapi.json")


def _services() -> dict[str, tuple[str, dict[str, Any]]]:
    """Each registry service's base path and served document, by service code."""
    directory = Directory.load(CONFIG / "directory.yaml")
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for service in directory.services():
        if service.id.provider != REGISTRY or service.entry.openapi is None:
            continue
        document = json.loads((CONFIG / service.entry.openapi).read_text())
        found[service.id.code] = (urlsplit(service.url).path, document)
    return found


def _operations(paths: dict[str, Any], base: str = "") -> set[tuple[str, str]]:
    return {
        (method.upper(), base + (path if path != "/" else "") or "/")
        for path, item in paths.items()
        for method in item
    }


def test_every_registry_route_is_in_a_served_document(registry_db: Path) -> None:
    app = create_app(registry_db)
    routes = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    described: set[tuple[str, str]] = set()
    for base, document in _services().values():
        described |= _operations(document["paths"], base)

    assert routes - {SELF} - described == set(), "routes no document describes"
    assert described - routes == set(), "described operations the registry lacks"


@pytest.mark.parametrize("code", ["students", "schools"])
def test_a_served_document_is_the_registrys_own_under_its_base(code: str) -> None:
    base, document = _services()[code]
    own = {
        path[len(base) :] or "/": item
        for path, item in OPENAPI["paths"].items()
        if path == base or path.startswith(base + "/")
    }

    assert document["paths"] == own
    for kind, components in document["components"].items():
        for name, component in components.items():
            assert component == OPENAPI["components"][kind][name], f"{kind}/{name}"
    missing = {ref for ref in _refs(document) if not _resolves(document, ref)}
    assert missing == set()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


def _resolves(document: dict[str, Any], ref: str) -> bool:
    node: Any = document
    for token in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or token not in node:
            return False
        node = node[token]
    return True
