"""The consent API handlers, mounted on a small app over the harness's node, and
called directly for their rules on bodies and on listing exchanges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin import consent
from gateway.admin.config import AdminRoute
from gateway.admin.surface import error_response
from gateway.errors import AdminRequestError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.msglog.store import SearchQuery, StoredRecord
from gateway.node import Node
from registry_stub.seed import sample_students
from tests.gateway.admin.support import admin_request
from tests.gateway.conftest import KANYASHREE, Harness
from tests.policies.conftest import student_id

pytestmark = pytest.mark.anyio

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
PURPOSE = "kanyashree-eligibility"


def mount(harness: Harness, routes: list[AdminRoute]) -> httpx.AsyncClient:
    """An HTTP client over the given admin routes, bound to the harness's node."""

    def bind(route: AdminRoute) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return await route.handler(request, harness.node)
            except MediatorError as exc:
                return error_response(exc)

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
    assert answer.headers["x-road-error"] == "Client.consent_refused"
    assert answer.json() == {
        "type": "Client.consent_refused",
        "message": "The consent cannot be granted",
        "detail": "a minor's consent must be granted by a guardian",
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"purpose": "no-such-purpose"}, (404, "unknown_purpose", "purpose")),
        (
            {"client": "WB/GOV/XX/nobody"},
            (422, "invalid_field", "client: not a registered subsystem"),
        ),
        ({"client": "WB/GOV"}, (422, "invalid_field", "client")),
        (
            {"purpose": "saboojsathi-roster"},
            (
                422,
                "consent_refused",
                "purpose 'saboojsathi-roster' does not rest on consent",
            ),
        ),
        ({"extra": 1}, (422, "invalid_field", "extra")),
        # Strict types: a string is not a time, 1 is not true.
        ({"valid_from": "9999999999"}, (422, "invalid_field", "valid_from")),
        ({"valid_until": True}, (422, "invalid_field", "valid_until")),
        ({"subject_is_minor": 1}, (422, "invalid_field", "subject_is_minor")),
        (
            {"valid_from": 1_000_000, "valid_until": 2_000_000},
            (422, "invalid_field", "valid_until: the window has ended"),
        ),
        (
            {"valid_until": 1e308},
            (422, "invalid_field", "valid_until: more than ten years after valid_from"),
        ),
    ],
)
async def test_bad_grants_are_refused(
    harness: Harness,
    api: httpx.AsyncClient,
    overrides: dict[str, Any],
    expected: tuple[int, str, str],
) -> None:
    """X-Road error bodies, the field or the rule at fault in ``detail``."""
    status, error, detail = expected
    body = _grant_body(_girl(harness)["student_id"], **overrides)
    answer = await api.post("/admin/api/v1/consents", json=body)
    assert answer.status_code == status
    assert answer.headers["x-road-error"] == f"Client.{error}"
    assert (answer.json()["type"], answer.json()["detail"]) == (
        f"Client.{error}",
        detail,
    )


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
    assert again.headers["x-road-error"] == "Client.already_revoked"
    assert unknown.headers["x-road-error"] == "Client.unknown_consent"


async def test_a_revocation_by_a_blank_actor_is_refused_as_a_field_error(
    harness: Harness, api: httpx.AsyncClient
) -> None:
    """Not 409 already_revoked: the consent is still active."""
    granted = await api.post(
        "/admin/api/v1/consents", json=_grant_body(_girl(harness)["student_id"])
    )
    consent_id = granted.json()["consent_id"]

    blank = await api.post(
        f"/admin/api/v1/consents/{consent_id}/revoke", json={"actor": "   "}
    )
    record = await harness.node.consents.get(consent_id)

    assert blank.status_code == 422
    assert (blank.json()["type"], blank.json()["detail"]) == (
        "Client.invalid_field",
        "actor",
    )
    assert record is not None
    assert record.state == "active"


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


# -- called directly -------------------------------------------------------------------

STUDENT = student_id(777)


def _logged(message_id: str, direction: str, **fields: Any) -> StoredRecord:
    canonical = orjson.dumps(
        {"message_id": message_id, "direction": direction, **fields}
    )
    return StoredRecord(0, "", b"", canonical)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> list[SearchQuery]:
    """The message-log searches made, on a log of three exchanges, newest first:
    one forwarded, one whose answer was never logged, one denied."""
    made: list[SearchQuery] = []
    records = [
        _logged("m-3", "response", decision="denied", subject_hash="h", path="/x"),
        _logged("m-2", "request", decision="forwarded", started_at=2.0),
        _logged("m-1", "response", decision="forwarded", status=200),
        _logged("m-1", "request", decision="forwarded"),
    ]

    class _Store:
        async def search(self, query: SearchQuery) -> list[StoredRecord]:
            made.append(query)
            return records

    @asynccontextmanager
    async def reading_store(*_args: object) -> AsyncIterator[_Store]:
        yield _Store()

    monkeypatch.setattr(consent, "reading_store", reading_store)
    return made


def _bare_node(tmp_path: Path) -> Node:
    """A node that hashes subjects as ``h(<id>)`` and has nothing else to give."""
    return cast(
        Node,
        SimpleNamespace(
            shared=SimpleNamespace(subjects=SimpleNamespace(hash="h({})".format)),
            deployment=SimpleNamespace(
                settings=SimpleNamespace(log=None), path=lambda r: tmp_path / r
            ),
        ),
    )


async def _call(handler: Any, body: bytes, node: Node) -> tuple[int, Any]:
    """The status and the X-Road error type and detail the surface would answer."""
    try:
        response = await handler(admin_request("POST", body=body), node)
    except MediatorError as exc:
        detail = exc.detail if isinstance(exc, AdminRequestError) else ""
        return exc.status, (exc.type, detail)
    return response.status_code, orjson.loads(response.body)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b" " * (16 * 1024 + 1), 413, ("Client.body_too_large", "")),
        (b"subject=WB", 400, ("Client.invalid_json", "")),
        (b'{"subject": "WB1", "subject": "WB2"}', 400, ("Client.duplicate_key", "")),
        (b'{"subject": "WB1", "limit": 1001}', 422, ("Client.invalid_field", "limit")),
        (b'{"limit": 5}', 422, ("Client.invalid_field", "subject")),
    ],
)
async def test_a_body_that_cannot_be_read_is_refused_before_the_store(
    tmp_path: Path,
    logged: list[SearchQuery],
    body: bytes,
    status: int,
    error: tuple[str, str],
) -> None:
    """Over 16 KiB, not strict JSON, or not the endpoint's fields."""
    answer = await _call(consent.exchanges, body, _bare_node(tmp_path))

    assert answer == (status, error)
    assert logged == []


async def test_an_invalid_student_id_is_refused_before_it_is_hashed(
    tmp_path: Path, logged: list[SearchQuery]
) -> None:
    wrong_check_digit = STUDENT[:-1] + str((int(STUDENT[-1]) + 1) % 10)
    body = orjson.dumps({"subject": wrong_check_digit})

    answer = await _call(consent.exchanges, body, _bare_node(tmp_path))

    assert answer == (422, ("Client.invalid_field", "subject"))
    assert logged == []


async def test_exchanges_are_searched_by_the_subjects_hash_only(
    tmp_path: Path, logged: list[SearchQuery]
) -> None:
    body = orjson.dumps({"subject": STUDENT, "limit": 3})

    await _call(consent.exchanges, body, _bare_node(tmp_path))

    assert logged == [SearchQuery(subject_hash=f"h({STUDENT})", limit=3)]


async def test_each_exchange_is_listed_once_and_a_lone_request_still_shows(
    tmp_path: Path, logged: list[SearchQuery]
) -> None:
    """An answered exchange by its final record; one whose answer was never
    logged by its request, since the data may have been released."""
    body = orjson.dumps({"subject": STUDENT})

    _, answer = await _call(consent.exchanges, body, _bare_node(tmp_path))

    assert [(e["message_id"], e["direction"]) for e in answer["exchanges"]] == [
        ("m-3", "response"),
        ("m-2", "request"),
        ("m-1", "response"),
    ]


async def test_a_listed_exchange_carries_no_hash_path_or_body(
    tmp_path: Path, logged: list[SearchQuery]
) -> None:
    body = orjson.dumps({"subject": STUDENT})

    _, answer = await _call(consent.exchanges, body, _bare_node(tmp_path))

    assert answer["exchanges"][0] == {
        "message_id": "m-3",
        "direction": "response",
        "decision": "denied",
    }
