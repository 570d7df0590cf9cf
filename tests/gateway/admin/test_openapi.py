"""The admin API's OpenAPI document: one operation per route, its roles, its inputs."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.admin.framework import PATH_PARAM, PREFIX
from gateway.admin.openapi import document
from gateway.admin.routing import all_routes

API = PREFIX


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document()["paths"].items()
        for method, operation in item.items()
    ]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_the_document_is_openapi_3_1() -> None:
    assert document()["openapi"] == "3.1.0"


def test_every_mounted_route_is_an_operation_with_its_roles() -> None:
    expected = {
        (r.method.lower(), r.path): sorted(role.value for role in r.roles)
        for r in all_routes()
    }

    found = {(m, p): op["x-roles"] for m, p, op in _operations()}

    assert found == expected


def test_every_path_parameter_is_declared_required() -> None:
    for _, path, operation in _operations():
        declared = {
            p["name"]: p["required"]
            for p in operation.get("parameters", [])
            if p["in"] == "path"
        }
        assert declared == dict.fromkeys(PATH_PARAM.findall(path), True), path


def test_query_parameters_are_listed_with_their_descriptions() -> None:
    operation = document()["paths"][f"{API}/opmonitoring"]["get"]

    query = {p["name"]: p["description"] for p in operation["parameters"]}

    assert set(query) == {"since", "until", "after", "limit", "client_id"}
    assert query["client_id"] == "Admins only"


def test_an_operation_without_inputs_lists_no_parameters() -> None:
    assert "parameters" not in document()["paths"][f"{API}/keys"]["get"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (f"{API}/consents", "GrantBody"),
        (f"{API}/consents/{{consent_id}}/revoke", "RevokeBody"),
        (f"{API}/consents/search", "SubjectBody"),
        (f"{API}/subjects/exchanges", "SubjectBody"),
    ],
)
def test_a_consent_operation_takes_its_body_from_the_consent_document(
    path: str, schema: str
) -> None:
    """The consent API's request body, with the roles of the mounted route."""
    operation = document()["paths"][path]["post"]

    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{schema}"}
    assert operation["x-roles"] == ["security_officer"]


def test_every_operation_has_a_summary_and_the_shared_refusals() -> None:
    """Consent operations too: their own answers are kept beside 401, 403, 429."""
    for method, path, operation in _operations():
        assert operation["summary"], f"{method} {path}"
        assert {"401", "403", "429"} <= set(operation["responses"]), f"{method} {path}"


def test_every_reference_names_a_schema_of_the_document() -> None:
    schemas = document()["components"]["schemas"]

    refs = set(_refs(document()["paths"])) | set(_refs(schemas))

    assert refs
    assert {r.removeprefix("#/components/schemas/") for r in refs} <= set(schemas)


def test_paths_are_in_order() -> None:
    paths = list(document()["paths"])

    assert paths == sorted(paths)


def test_both_admin_credentials_are_offered() -> None:
    doc = document()

    assert doc["security"] == [{"adminJwt": []}, {"apiKey": []}]
    assert doc["components"]["securitySchemes"]["apiKey"]["name"] == "Authorization"


def test_the_document_is_built_once() -> None:
    assert document() is document()
