"""The X-Road REST protocol's example exchanges, replayed against the node.

After the X-Road Message Protocol for REST (PR-REST) and the Service Metadata
Protocol for REST (PR-MREST): the request and response headers, the request hash,
the error body and ``X-Road-Error``, and the metaservice answers' form.
"""

from __future__ import annotations

import base64
import re
import uuid

import pytest

from gateway.identifiers import ClientId, ServiceId
from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness

pytestmark = pytest.mark.anyio

PROVIDER = ClientId("WB", "GOV", "SED", "banglarshiksha")
SCHOOLS = ServiceId(PROVIDER, "schools")
_ERROR_TYPE = re.compile(r"(Client|Server\.Mediator|Server\.Provider)\.[a-z_]+")


async def test_a_request_id_is_echoed_and_a_message_id_is_given(
    harness: Harness,
) -> None:
    request_id = str(uuid.uuid4())

    answer = await harness.client(SABOOJSATHI).call(
        "GET", SCHOOLS, "/", extra_headers={"x-road-request-id": request_id}
    )

    assert answer.headers["x-road-request-id"] == request_id
    assert uuid.UUID(answer.headers["x-road-id"])


async def test_a_forwarded_answer_carries_the_request_hash(harness: Harness) -> None:
    answer = await harness.client(SABOOJSATHI).call("GET", SCHOOLS, "/")

    value = answer.headers["x-road-request-hash"]
    # PR-REST: the base64 SHA-512 of the request, 88 characters.
    assert len(value) == 88
    assert len(base64.b64decode(value, validate=True)) == 64


async def test_a_refused_request_has_no_request_hash(harness: Harness) -> None:
    answer = await harness.client(KANYASHREE).call("GET", SCHOOLS, "/")

    assert answer.status == 403
    assert "x-road-request-hash" not in answer.headers


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/nowhere", {}, 404),
        ("/r1/WB/GOV/SED/banglarshiksha/schools/", {"host": "other.example"}, 400),
        ("/r1/WB/GOV/SED/banglarshiksha/schools/", {}, 401),
    ],
)
async def test_errors_use_the_xroad_error_body_and_header(
    harness: Harness, path: str, headers: dict[str, str], status: int
) -> None:
    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{path}", headers=headers
    )

    body = answer.json()
    assert answer.status_code == status
    assert set(body) == {"type", "message", "detail"}
    assert body["type"] == answer.headers["x-road-error"]
    assert _ERROR_TYPE.fullmatch(body["type"])
    assert body["detail"] == answer.headers["x-road-id"]
    assert answer.headers["content-type"] == "application/json"


async def test_list_methods_has_the_pr_mrest_annex_b_form(harness: Harness) -> None:
    answer = await harness.client(SABOOJSATHI).call(
        "GET",
        ServiceId(PROVIDER, "listMethods"),
        extra_headers={"accept": "application/json"},
    )

    [first, *_] = answer.json()["service"]
    assert set(first) == {
        "member_class",
        "member_code",
        "object_type",
        "service_code",
        "service_type",
        "subsystem_code",
        "xroad_instance",
        "endpoint_list",
    }
    assert first["object_type"] == "SERVICE"
    assert all(set(e) == {"method", "path"} for e in first["endpoint_list"])


async def test_a_metaservice_answer_is_signed_like_an_exchange(
    harness: Harness,
) -> None:
    answer = await harness.client(SABOOJSATHI).call(
        "GET", ServiceId(PROVIDER, "allowedMethods")
    )

    assert answer.status == 200
    assert answer.signature_ok
