"""The OpenAPI 3.1 document of the admin API, built from the mounted routes.

Each operation names the roles that may call it (``x-roles``); the consent API's
own document is merged in for its request bodies.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.admin import consent
from gateway.admin.framework import PATH_PARAM, Route
from gateway.admin.routing import all_routes


@cache
def document() -> dict[str, Any]:
    """The document; built once per process from :func:`gateway.admin.all_routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in all_routes():
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    extra = consent.openapi()
    for path, item in extra.get("paths", {}).items():
        for method, operation in item.items():
            mine = paths.setdefault(path, {}).get(method, {})
            paths[path][method] = {
                **operation,
                **{k: v for k, v in mine.items() if k.startswith("x-")},
                # The refusals every admin operation shares, under its own answers.
                "responses": {**mine.get("responses", {}), **operation["responses"]},
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shiksha Mediator admin API",
            "version": "1",
            "description": (
                "Operations, monitoring, message log, keys, consent and configuration "
                "of one mediator node. Every change is written to the admin audit log."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "adminJwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "The value 'ApiKey <key>'",
                },
            },
            "schemas": extra.get("components", {}).get("schemas", {}),
        },
        "security": [{"adminJwt": []}, {"apiKey": []}],
    }


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(route.path)
    ]
    parameters += [
        {"name": name, "in": "query", "description": text, "schema": {"type": "string"}}
        for name, text in route.query.items()
    ]
    operation: dict[str, Any] = {
        "summary": route.summary,
        "x-roles": sorted(role.value for role in route.roles),
        "responses": {
            "200": {"description": "Done"},
            "401": {"description": "No valid credential"},
            "403": {"description": "The caller's role may not do this"},
            "429": {"description": "Too many requests for this identity"},
        },
    }
    if parameters:
        operation["parameters"] = parameters
    return operation
