"""The consent API handlers, mounted on a small app over the harness's node."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin import consent
from gateway.admin.config import AdminRoute
from gateway.identifiers import ClientId, ServiceId
from registry_stub.seed import sample_students
from tests.gateway.conftest import KANYASHREE, Harness

pytestmark = pytest.mark.anyio

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
PURPOSE = "kanyashree-eligibility"


def mount(harness: Harness, routes: list[AdminRoute]) -> httpx.AsyncClient:
    """An HTTP client over the given admin routes, bound to the harness's node."""

    def bind(route: AdminRoute) -> Route:
        async def endpoint(request: Request) -> Response:
            return await route.handler(request, harness.node)

        return Route(route.path, endpoint, methods=[route.method])

    app = Starlette(routes=[bind(r) for r in routes])
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://127.0.0.1"
    )


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[httpx.AsyncClient]:
    async with mount(harness, consent.routes()) as client:
        yield client


def _girl(harness: Harness) -> dict[str, Any]:
    girls = sample_students(
        harness.demo.registry_db, gender="F", classes=range(8, 13), limit=1
    )
    return girls[0]


def _grant_body(student_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "subject": student_id,
        "client": str(KANYASHREE),
        "purpose": PURPOSE,
        "granted_by_role": "guardian",
        "granted_by_name": "Guardian Name",
        "actor": "kanyashree-portal",
        **overrides,
    }


def _verify_body(student: dict[str, Any]) -> dict[str, Any]:
    year, month, day = student["date_of_birth"].split("-")
    return {
        "applicant": {
            "registry_uid": student["student_id"],
            "dob": f"{day}/{month}/{year}",
        },
        "scheme_year": "2026-27",
    }


async def test_grant_then_exchange_then_revoke(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    student = _girl(harness)
    granted = await api.post(
        "/admin/api/v1/consents", json=_grant_body(student["student_id"])
    )
    assert granted.status_code == 201
    consent_id = granted.json()["consent_id"]
    assert granted.json()["purpose"] == f"{PURPOSE}@2"
    client = harness.client(KANYASHREE)

    ok = await client.call(
        "POST",
        STUDENTS,
        "/verify-enrolment",
        json=_verify_body(student),
        purpose=PURPOSE,
    )
    revoked = await api.post(
        f"/admin/api/v1/consents/{consent_id}/revoke", json={"actor": "guardian"}
    )
    denied = await client.call(
        "POST",
        STUDENTS,
        "/verify-enrolment",
        json=_verify_body(student),
        purpose=PURPOSE,
    )

    assert ok.status == 200
    assert revoked.json()["state"] == "revoked"
    assert denied.status == 403


async def test_a_minor_needs_a_guardian(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    body = _grant_body(_girl(harness)["student_id"], granted_by_role="student")
    answer = await api.post("/admin/api/v1/consents", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"] == "consent_refused"


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"purpose": "no-such-purpose"}, 404, "unknown_purpose"),
        ({"client": "WB/GOV/XX/nobody"}, 422, "unknown_client"),
        ({"purpose": "saboojsathi-roster"}, 422, "consent_refused"),
        ({"extra": 1}, 422, "invalid_field:extra"),
    ],
)
async def test_bad_grants_are_refused(
    harness: Harness,
    api: httpx.AsyncClient,
    overrides: dict[str, Any],
    status: int,
    error: str,
) -> None:
    body = _grant_body(_girl(harness)["student_id"], **overrides)
    answer = await api.post("/admin/api/v1/consents", json=body)
    assert answer.status_code == status
    assert answer.json()["error"] == error


async def test_history_is_signed_and_verifies(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    granted = await api.post(
        "/admin/api/v1/consents", json=_grant_body(_girl(harness)["student_id"])
    )
    consent_id = granted.json()["consent_id"]
    await api.post(
        f"/admin/api/v1/consents/{consent_id}/revoke", json={"actor": "guardian"}
    )

    answer = (await api.get(f"/admin/api/v1/consents/{consent_id}/history")).json()

    assert answer["verified"] is True
    assert answer["signed"] is True
    assert [r["state"] for r in answer["revisions"]] == ["active", "revoked"]
    kid = harness.node.keyring.active().kid
    assert all(r["kid"] == kid and r["signature"] for r in answer["revisions"])


async def test_revoking_twice_is_409_and_unknown_is_404(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    granted = await api.post(
        "/admin/api/v1/consents", json=_grant_body(_girl(harness)["student_id"])
    )
    path = f"/admin/api/v1/consents/{granted.json()['consent_id']}/revoke"
    await api.post(path, json={"actor": "guardian"})
    again = await api.post(path, json={"actor": "guardian"})
    unknown = await api.post("/admin/api/v1/consents/nope/revoke", json={"actor": "x"})
    assert (again.status_code, unknown.status_code) == (409, 404)


async def test_a_students_consents_and_exchanges(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    student = _girl(harness)
    sid = student["student_id"]
    granted = await api.post("/admin/api/v1/consents", json=_grant_body(sid))
    await harness.client(KANYASHREE).call(
        "POST",
        STUDENTS,
        "/verify-enrolment",
        json=_verify_body(student),
        purpose=PURPOSE,
    )

    consents = (
        await api.post("/admin/api/v1/consents/search", json={"subject": sid})
    ).json()
    seen = (
        await api.post("/admin/api/v1/subjects/exchanges", json={"subject": sid})
    ).json()

    assert [c["consent_id"] for c in consents["consents"]] == [
        granted.json()["consent_id"]
    ]
    (exchange,) = seen["exchanges"]
    assert exchange["consent_id"] == granted.json()["consent_id"]
    assert exchange["purpose"] == f"{PURPOSE}@2"
    assert exchange["client_id"] == str(KANYASHREE)
    assert "Guardian Name" not in str(consents)


async def test_a_bad_subject_is_refused(api: httpx.AsyncClient) -> None:
    answer = await api.post("/admin/api/v1/consents/search", json={"subject": "WB0"})
    assert answer.status_code == 422


async def test_openapi_document_names_every_path(api: httpx.AsyncClient) -> None:
    document = (await api.get("/admin/api/v1/consents/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        "/admin/api/v1/consents",
        "/admin/api/v1/consents/{consent_id}/revoke",
        "/admin/api/v1/consents/search",
        "/admin/api/v1/consents/{consent_id}/history",
        "/admin/api/v1/subjects/exchanges",
    }
