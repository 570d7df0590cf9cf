"""The request and response steps of an endpoint adapter."""

from __future__ import annotations

from typing import Any

import pytest

from adapters import MappedRequest
from gateway.errors import PayloadError, Reason, UpstreamError
from tests.adapters.conftest import DRAFT, MakeEndpoint, bengali

ID_SCHEMA = {
    "$schema": DRAFT,
    "type": "object",
    "additionalProperties": False,
    "required": ["uid"],
    "properties": {
        "uid": {"type": "string", "pattern": "^WB[0-9]{12}$"},
        "dob": {"type": "string", "pattern": "^[0-9]{2}/[0-9]{2}/[0-9]{4}$"},
    },
}
CANONICAL_SCHEMA = {
    "$schema": DRAFT,
    "type": "object",
    "required": ["student_id"],
    "properties": {"student_id": {"type": "string", "pattern": "^WB[0-9]{12}$"}},
}
SCHEMAS = {"client.json": ID_SCHEMA, "canonical.json": CANONICAL_SCHEMA}
UID = "WB201900001235"


def _failure(call: Any, *args: Any) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        call(*args)
    return caught.value


def test_schema_violation_gives_pointer_and_no_value(
    make_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_endpoint({"schema": "client.json"}, schemas=SCHEMAS)
    error = _failure(endpoint.map_request, "POST", "/thing", "", {"uid": "WB99887766"})
    assert error.reason is Reason.SCHEMA_VIOLATION
    assert error.pointer == "/uid"
    assert "99887766" not in f"{error} {error.log_reason} {error.message}"
    assert error.__cause__ is None


def test_missing_required_property_points_at_it(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"schema": "client.json"}, schemas=SCHEMAS)
    error = _failure(endpoint.map_request, "POST", "/thing", "", {})
    assert (error.reason, error.pointer) == (Reason.SCHEMA_VIOLATION, "/uid")


def test_bengali_digits_rejected_without_digit_folding(
    make_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_endpoint({"schema": "client.json"}, schemas=SCHEMAS)
    error = _failure(
        endpoint.map_request, "POST", "/thing", "", {"uid": bengali("WB201900001235")}
    )
    assert (error.reason, error.pointer) == (Reason.SCHEMA_VIOLATION, "/uid")


def test_bengali_digits_folded_with_digits_ascii(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {"schema": "client.json", "digits": "ascii", "body": {"student_id": "/uid"}},
        schemas=SCHEMAS,
    )
    mapped = endpoint.map_request(
        "POST", "/thing", "", {"uid": bengali("WB201900001235")}
    )
    assert mapped.body == {"student_id": UID}


def test_digit_folding_reaches_path_parameters(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {
            "digits": "ascii",
            "params": {"id": "WB[0-9]{12}"},
            "body": {"s": {"param": "id"}},
        },
        method="GET",
        path="/s/{id}",
    )
    mapped = endpoint.map_request("GET", bengali("/s/WB201900001235"), "", None)
    assert mapped.body == {"s": UID}


def test_canonical_schema_failure_is_a_mapping_failure(
    make_endpoint: MakeEndpoint,
) -> None:
    endpoint = make_endpoint(
        {"canonical_schema": "canonical.json", "body": {"student_id": "/id"}},
        schemas=SCHEMAS,
    )
    error = _failure(endpoint.map_request, "POST", "/thing", "", {"id": "nope"})
    assert (error.reason, error.pointer) == (Reason.MAPPING_FAILED, "/student_id")


def test_path_template_from_path_parameters(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {
            "method": "POST",
            "path": "/verify-enrolment",
            "body": {"student_id": {"param": "student_id"}, "dob": "/dob"},
        },
        method="PUT",
        path="/applicants/{student_id}/enrolment",
    )
    mapped = endpoint.map_request(
        "PUT", f"/applicants/{UID}/enrolment", "", {"dob": "2012-03-05"}
    )
    assert mapped == MappedRequest(
        "POST", "/verify-enrolment", "", {"student_id": UID, "dob": "2012-03-05"}
    )


def test_path_template_from_a_body_field(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {
            "path": "/{student_id}/bank-account/verify",
            "path_params": {"student_id": {"from": "/id", "required": True}},
            "body": {"ifsc": "/ifsc"},
        }
    )
    mapped = endpoint.map_request(
        "POST", "/thing", "", {"id": UID, "ifsc": "SBIN0001234"}
    )
    assert mapped.path == f"/{UID}/bank-account/verify"
    assert mapped.body == {"ifsc": "SBIN0001234"}


@pytest.mark.parametrize("value", ["..", "a/b", "x?y=1", "", 1.5, None])
def test_unsafe_path_value_fails(make_endpoint: MakeEndpoint, value: Any) -> None:
    endpoint = make_endpoint(
        {"path": "/{sid}/verify", "path_params": {"sid": "/id"}, "body": "none"}
    )
    error = _failure(endpoint.map_request, "POST", "/thing", "", {"id": value})
    assert error.reason is Reason.MAPPING_FAILED


def test_path_parameter_pattern_mismatch(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {"params": {"udise": "19[0-9]{9}"}}, method="GET", path="/r/{udise}"
    )
    error = _failure(endpoint.map_request, "GET", "/r/2711090050", "", None)
    assert error.reason is Reason.SCHEMA_VIOLATION
    assert error.log_reason == "path_parameter.udise"


@pytest.mark.parametrize(
    ("query_spec", "given", "expected"),
    [
        ("passthrough", "limit=5&offset=10", "limit=5&offset=10"),
        ("drop", "limit=5", ""),
        (
            {"udise_code": {"param": "u"}, "class": {"const": 9}},
            "x=1",
            "udise_code=19110900503&class=9",
        ),
        ({"limit": {"query": "n"}}, "n=5&other=1", "limit=5"),
        ({"limit": {"query": "n"}}, "", ""),
        ({"limit": {"query": "n", "default": 500}}, "", "limit=500"),
        ({"name": {"const": "a b&c"}}, "", "name=a%20b%26c"),
    ],
)
def test_query_mapping(
    make_endpoint: MakeEndpoint, query_spec: Any, given: str, expected: str
) -> None:
    endpoint = make_endpoint(
        {"query": query_spec, "body": "none"}, method="GET", path="/r/{u}"
    )
    mapped = endpoint.map_request("GET", "/r/19110900503", given, None)
    assert (mapped.query, mapped.body) == (expected, None)


def test_repeated_query_parameter_is_ambiguous(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"query": {"limit": {"query": "n"}}}, method="GET")
    error = _failure(endpoint.map_request, "GET", "/thing", "n=1&n=2", None)
    assert error.log_reason == "mapping_failed.repeated_query_parameter"


def test_request_without_body_maps_as_empty_object(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"body": {"a": "/a", "c": {"const": 1}}}, method="GET")
    assert endpoint.map_request("GET", "/thing", "", None).body == {"c": 1}


def test_passthrough_keeps_method_path_and_body(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(method="PATCH", path="/files/**")
    mapped = endpoint.map_request("PATCH", "/files/a/b", "q=1", {"k": "v"})
    assert mapped == MappedRequest("PATCH", "/files/a/b", "q=1", {"k": "v"})


def test_request_on_another_endpoint_is_refused(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint()
    error = _failure(endpoint.map_request, "GET", "/other", "", None)
    assert error.log_reason == "endpoint_mismatch"


RESPONSE = {
    "schema": "client.json",
    "canonical_schema": "canonical.json",
    "body": {"uid": {"from": "/student_id", "required": True}},
}


@pytest.mark.parametrize("status", [301, 400, 404, 409, 422, 500, 503])
def test_non_2xx_passes_untouched(make_endpoint: MakeEndpoint, status: int) -> None:
    endpoint = make_endpoint(response=RESPONSE, schemas=SCHEMAS)
    body = {"error": "not_found"}
    assert endpoint.map_response(status, body) is body


def test_2xx_without_body_passes(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(response=RESPONSE, schemas=SCHEMAS)
    assert endpoint.map_response(204, None) is None


def test_response_is_mapped_and_validated(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(response=RESPONSE, schemas=SCHEMAS)
    assert endpoint.map_response(200, {"student_id": UID, "x": 1}) == {"uid": UID}


@pytest.mark.parametrize(
    ("body", "side"),
    [
        ({"sid": UID}, "canonical_response:/student_id"),
        ({"student_id": "WB1"}, "canonical_response:/student_id"),
    ],
)
def test_invalid_canonical_response_is_the_providers(
    make_endpoint: MakeEndpoint, body: Any, side: str
) -> None:
    endpoint = make_endpoint(response=RESPONSE, schemas=SCHEMAS)
    with pytest.raises(UpstreamError) as caught:
        endpoint.map_response(200, body)
    assert caught.value.reason is Reason.UPSTREAM_RESPONSE_INVALID
    assert caught.value.log_reason == side


def test_invalid_client_response_is_the_providers(make_endpoint: MakeEndpoint) -> None:
    response = {
        "schema": "client.json",
        "body": {"uid": "/student_id", "extra": {"const": 1}},
    }
    endpoint = make_endpoint(response=response, schemas=SCHEMAS)
    with pytest.raises(UpstreamError) as caught:
        endpoint.map_response(200, {"student_id": UID})
    assert caught.value.log_reason == "client_response:"
