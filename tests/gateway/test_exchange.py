"""End-to-end exchanges through the node, in process, against the seeded registry."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from gateway.client import DepartmentClient, new_client_key
from gateway.identifiers import ClientId, ServiceId
from gateway.logsafe import contains_personal_number
from registry_stub.seed import sample_students
from tests.gateway.conftest import IFMS, KANYASHREE, SABOOJSATHI, Harness
from tests.gateway.hostile.support import Spy

pytestmark = pytest.mark.anyio

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
PURPOSE = "kanyashree-eligibility"


def _girl(harness: Harness) -> dict[str, Any]:
    girls = sample_students(
        harness.demo.registry_db, gender="F", classes=range(8, 13), limit=1
    )
    return girls[0]


async def _grant(harness: Harness, student_id: str) -> str:
    purpose = harness.node.deployment.policies.purposes.get(PURPOSE)
    assert purpose is not None
    now = time.time()
    record = await harness.node.consents.grant(
        subject=student_id,
        client=KANYASHREE,
        purpose=purpose,
        granted_by_role="guardian",
        granted_by_name="Guardian Name",
        subject_is_minor=True,
        valid_from=now - 60,
        valid_until=now + 3600,
        actor="test",
    )
    return record.consent_id


def _verify_body(student: dict[str, Any]) -> dict[str, Any]:
    year, month, day = student["date_of_birth"].split("-")
    return {
        "applicant": {
            "registry_uid": student["student_id"],
            "dob": f"{day}/{month}/{year}",
        },
        "scheme_year": "2026-27",
    }


async def _verify(client: DepartmentClient, body: Any, **kwargs: Any) -> Any:
    return await client.call(
        "POST", STUDENTS, "/verify-enrolment", json=body, purpose=PURPOSE, **kwargs
    )


async def test_consented_request_is_forwarded_mapped_released_and_signed(
    harness: Harness,
) -> None:
    student = _girl(harness)
    consent_id = await _grant(harness, student["student_id"])

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    assert answer.status == 200
    assert answer.signature_ok
    document = answer.json()
    assert document["registry_uid"] == student["student_id"]
    assert document["is_enrolled"] == "Y"
    assert document["dob_verified"] == "Y"
    assert not set(document) & {"religion", "aadhaar", "bank_account", "guardian"}
    for header in ("x-road-id", "x-road-request-id", "x-road-request-hash"):
        assert answer.headers.get(header)
    (record,) = await harness.exchanges()
    assert record["decision"] == "forwarded"
    assert record["consent_id"] == consent_id
    assert record["purpose"] == f"{PURPOSE}@2"
    assert record["upstream_signature_kid"] == "banglarshiksha-demo-1"
    assert student["student_id"] not in orjson.dumps(record).decode()


async def test_request_without_consent_is_denied_and_not_forwarded(
    harness: Harness,
) -> None:
    answer = await _verify(harness.client(KANYASHREE), _verify_body(_girl(harness)))

    assert answer.status == 403
    assert answer.error_type == "Client.consent_required"
    (record,) = await harness.exchanges()
    assert record["decision"] == "denied"
    assert record["reason"] == "no_active_consent"
    assert record["upstream_called"] is False


async def test_revocation_takes_effect_on_the_next_request(harness: Harness) -> None:
    student = _girl(harness)
    consent_id = await _grant(harness, student["student_id"])
    client = harness.client(KANYASHREE)
    assert (await _verify(client, _verify_body(student))).status == 200

    await harness.node.consents.revoke(consent_id, actor="guardian")

    assert (await _verify(client, _verify_body(student))).status == 403


async def test_saboojsathi_roster_carries_only_roster_fields(harness: Harness) -> None:
    udise = sample_students(harness.demo.registry_db, classes=[9], limit=1)[0][
        "udise_code"
    ]
    client = harness.client(SABOOJSATHI)

    answer = await client.call(
        "GET", STUDENTS, f"/roster/{udise}", purpose="saboojsathi-roster"
    )

    assert answer.status == 200
    rows = answer.json()["beneficiaries"]
    assert rows
    allowed = {"uid", "beneficiary_name", "gender", "section", "category", "dob"}
    assert all(set(row) <= allowed for row in rows)


@pytest.mark.parametrize(("right", "expected"), [(True, "Y"), (False, "N")])
async def test_ifms_beneficiary_check_compares_the_account(
    harness: Harness, right: bool, expected: str
) -> None:
    student = sample_students(
        harness.demo.registry_db, with_bank_account=True, limit=1
    )[0]
    account = student["bank_account"]["account_number"]
    if not right:
        account = account[:-1] + str((int(account[-1]) + 1) % 10)
    body = {
        "beneficiaryId": student["student_id"],
        "bankAccountNo": account,
        "ifscCode": student["bank_account"]["ifsc"],
    }

    answer = await harness.client(IFMS).call(
        "POST",
        STUDENTS,
        "/beneficiary-check",
        json=body,
        purpose="ifms-beneficiary-check",
    )

    assert answer.status == 200
    assert answer.json()["accountValidated"] == expected
    assert account not in answer.body.decode()


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/verify-enrolment/../export", 403, "access_denied"),
        ("/./export", 403, "access_denied"),
        ("/EXPORT", 403, "access_denied"),
        ("/_debug/vars", 403, "access_denied"),
        ("/by-udise%2F..%2Fexport", 400, "invalid_path"),
        ("/verify-enrolment%00.json", 400, "invalid_path"),
        ("//export", 400, "invalid_path"),
    ],
)
async def test_paths_are_normalised_before_access_and_never_fail_open(
    harness: Harness, path: str, status: int, reason: str
) -> None:
    client = harness.client(KANYASHREE)
    url = f"{harness.demo.mediator_url}/r1/{STUDENTS}{path}"
    headers = {
        "authorization": f"Bearer {client.assertion()}",
        "x-road-client": str(KANYASHREE),
    }

    response = await harness.http.get(url, headers=headers)

    assert response.status_code == status
    assert response.headers["x-road-error"].endswith(reason)
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False


async def test_unknown_service_is_404(harness: Harness) -> None:
    service = ServiceId(STUDENTS.provider, "payroll")

    answer = await harness.client(KANYASHREE).call("GET", service, "/x")

    assert answer.status == 404
    assert answer.error_type == "Client.unknown_service"


async def test_unregistered_client_is_401(harness: Harness) -> None:
    stranger = ClientId("WB", "GOV", "XYZ", "stranger")
    key, _jwk = new_client_key("stranger-1")

    answer = await _verify(harness.client(stranger, key), {})

    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    (record,) = await harness.exchanges()
    assert record["client_id"] is None


async def test_key_of_another_client_is_refused(harness: Harness) -> None:
    saboojsathi_key = harness.demo.client_keys[SABOOJSATHI]

    answer = await _verify(harness.client(KANYASHREE, saboojsathi_key), {})

    assert answer.status == 401
    assert answer.error_type == "Client.invalid_token"


@pytest.mark.parametrize("claimed", [None, "WB/GOV/BCW/saboojsathi"])
async def test_x_road_client_must_match_the_credential(
    harness: Harness, claimed: str | None
) -> None:
    client = harness.client(KANYASHREE)
    headers = {"authorization": f"Bearer {client.assertion()}"}
    if claimed is not None:
        headers["x-road-client"] = claimed

    response = await harness.http.post(
        f"{harness.demo.mediator_url}/r1/{STUDENTS}/verify-enrolment", headers=headers
    )

    assert response.status_code == 401
    assert response.headers["x-road-error"] == "Client.client_mismatch"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"applicant": ', 400, "invalid_json"),
        (b'{"name":"\xe0\xa6\xb8\xe0\xa7"}', 400, "invalid_encoding"),
        (b'{"a":1,"a":2}', 400, "duplicate_key"),
        (b"[" * 5000 + b"]" * 5000, 400, "json_too_deep"),
        (b'{"applicant":{"registry_uid":12345}}', 422, "schema_violation"),
    ],
)
async def test_bad_bodies_are_refused_and_never_forwarded(
    harness: Harness, body: bytes, status: int, reason: str
) -> None:
    client = harness.client(KANYASHREE)
    headers = {
        "authorization": f"Bearer {client.assertion()}",
        "x-road-client": str(KANYASHREE),
        "x-road-purpose": PURPOSE,
        "content-type": "application/json",
    }

    response = await harness.http.post(
        f"{harness.demo.mediator_url}/r1/{STUDENTS}/verify-enrolment",
        headers=headers,
        content=body,
    )

    assert response.status_code == status
    assert response.headers["x-road-error"] == f"Client.{reason}"
    assert set(response.json()) == {"type", "message", "detail"}
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False
    assert record["request_body_sha256"]


async def test_body_over_the_cap_is_413(harness: Harness) -> None:
    cap = harness.node.deployment.settings.limits.max_body_bytes
    client = harness.client(KANYASHREE)

    answer = await _verify(client, {"pad": "x" * cap})

    assert answer.status == 413
    assert answer.headers["connection"] == "close"


async def test_host_outside_the_allow_list_is_refused(harness: Harness) -> None:
    client = harness.client(KANYASHREE)

    answer = await _verify(
        client, {}, extra_headers={"host": "registry.wbsed.internal:8443"}
    )

    assert answer.status == 400
    assert answer.error_type == "Client.invalid_host"


async def test_error_bodies_and_records_never_carry_the_token(harness: Harness) -> None:
    client = harness.client(KANYASHREE)
    token = client.assertion()

    answer = await client.call("GET", STUDENTS, "/export", token=token)

    assert answer.status == 403
    assert token not in answer.body.decode()
    records = await harness.records()
    assert all(token not in orjson.dumps(r).decode() for r in records)


async def test_every_exchange_is_logged_in_one_unbroken_chain(harness: Harness) -> None:
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    client = harness.client(KANYASHREE)
    await _verify(client, _verify_body(student))
    await client.call("GET", STUDENTS, "/export")
    await harness.http.get(f"{harness.demo.mediator_url}/nowhere")  # 404, rejected

    records = await harness.records()

    assert [(r["direction"], r["decision"]) for r in records] == [
        ("request", "forwarded"),
        ("response", "forwarded"),
        ("exchange", "denied"),
        ("exchange", "rejected"),
    ]
    assert records[0]["message_id"] == records[1]["message_id"]
    assert [r["seq"] for r in records] == [0, 1, 2, 3]
    assert all(records[i]["prev_hash"] == records[i - 1]["hash"] for i in (1, 2, 3))
    strings = [v for r in records for v in r.values() if isinstance(v, str)]
    assert not any(contains_personal_number(value) for value in strings)


async def test_nothing_is_forwarded_while_the_log_cannot_be_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    spy = Spy(harness, monkeypatch)
    monkeypatch.setattr(type(harness.node.log), "available", property(lambda _s: False))

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    assert answer.status == 503
    assert answer.error_type == "Server.Mediator.log_unavailable"
    assert spy.calls == []


async def test_the_request_record_is_durable_before_the_provider_sees_it(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    seen_at_send: list[list[dict[str, object]]] = []
    original = harness.node.upstream.send

    async def spy(*args: Any, **kwargs: Any) -> Any:
        seen_at_send.append(await harness.records())
        return await original(*args, **kwargs)

    monkeypatch.setattr(harness.node.upstream, "send", spy)

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    assert answer.status == 200
    ((request,),) = seen_at_send
    assert request["direction"] == "request"
    assert request["message_id"] == answer.headers["x-road-id"]
    assert request["status"] == 0
    assert request["forwarded_body_sha256"]
    assert request["request_signature_kid"]
    assert request["upstream_signature_kid"] is None
    request_, response = await harness.records()
    assert request_ == request
    assert response["direction"] == "response"
    assert response["status"] == 200


async def test_a_log_that_fails_to_write_keeps_the_exchange_inside_then_recovers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    spy = Spy(harness, monkeypatch)
    store = harness.node.log._store  # the fault goes under the log
    writes = store.append_sealing

    async def disk_full(*_args: Any) -> Any:
        raise OSError(28, "No space left on device")

    # The log is known good: only the failed write of the request record can
    # tell, and it must stop the exchange before anything is sent.
    assert harness.node.log.available
    monkeypatch.setattr(store, "append_sealing", disk_full)
    client = harness.client(KANYASHREE)
    refused = await _verify(client, _verify_body(student))

    assert refused.status == 503
    assert refused.error_type == "Server.Mediator.log_unavailable"
    assert spy.calls == []
    assert await harness.records() == []

    monkeypatch.setattr(store, "append_sealing", writes)
    for _ in range(100):  # the recovery probe reopens the log, no restart
        if harness.node.log.available:
            break
        await asyncio.sleep(0.05)
    served = await _verify(client, _verify_body(student))

    assert served.status == 200
    assert len(spy.calls) == 1
    records = await harness.records()
    assert [r["direction"] for r in records] == ["request", "response"]
    assert {r["message_id"] for r in records} == {served.headers["x-road-id"]}


async def test_a_defect_answers_500_without_detail(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> Any:
        raise RuntimeError("WB201900001236 secret detail")

    monkeypatch.setattr(harness.node.pipeline, "run", broken)

    answer = await _verify(harness.client(KANYASHREE), {})

    assert answer.status == 500
    assert answer.error_type == "Server.Mediator.internal_error"
    assert b"secret" not in answer.body
    (record,) = await harness.exchanges()
    assert record["reason"] == "defect_RuntimeError"


async def test_provider_down_is_a_typed_502(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    student = _girl(harness)
    await _grant(harness, student["student_id"])

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused to 10.0.0.1:8443", request=request)

    down = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    monkeypatch.setattr(harness.node.upstream, "_client", down)

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    assert answer.status == 502
    assert answer.error_type == "Server.Provider.upstream_unavailable"
    assert b"10.0.0.1" not in answer.body
    (record,) = await harness.exchanges()
    assert record["decision"] == "upstream_error"
    assert record["upstream_called"] is True


async def test_unsigned_provider_answer_is_refused(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry_stub.app import create_app

    student = _girl(harness)
    await _grant(harness, student["student_id"])
    unsigned = httpx.AsyncClient(
        transport=httpx.ASGITransport(create_app(harness.demo.registry_db))
    )
    monkeypatch.setattr(harness.node.upstream, "_client", unsigned)

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    assert answer.status == 502
    assert answer.error_type == "Server.Provider.upstream_signature_invalid"


async def test_jwks_and_health_are_served(harness: Harness) -> None:
    jwks = await harness.http.get(f"{harness.demo.mediator_url}/.well-known/jwks.json")
    health = await harness.http.get(f"{harness.demo.mediator_url}/admin/health")

    assert jwks.status_code == 200
    assert [k["kid"] for k in jwks.json()["keys"]] == [
        harness.node.keyring.active().kid
    ]
    assert health.json()["status"] == "ok"


async def test_a_body_that_does_not_say_it_is_json_is_415(harness: Harness) -> None:
    client = harness.client(KANYASHREE)
    headers = {
        "authorization": f"Bearer {client.assertion()}",
        "x-road-client": str(KANYASHREE),
        "x-road-purpose": PURPOSE,
        "content-type": "text/plain",
    }

    response = await harness.http.post(
        f"{harness.demo.mediator_url}/r1/{STUDENTS}/verify-enrolment",
        headers=headers,
        content=b'{"applicant": {}}',
    )

    assert response.status_code == 415
    assert response.headers["x-road-error"] == "Client.unsupported_media_type"
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False


async def test_the_service_root_is_forwarded_to_the_service_url_itself(
    harness: Harness,
) -> None:
    schools = ServiceId(STUDENTS.provider, "schools")
    udise = sample_students(harness.demo.registry_db, limit=1)[0]["udise_code"]
    school = await harness.registry_http.get(f"http://registry/api/schools/{udise}")
    district = school.json()["district"]

    answer = await harness.client(SABOOJSATHI).call(
        "GET", schools, "/", query={"district": district}
    )

    assert answer.status == 200
    assert udise in [row["udise_code"] for row in answer.json()["schools"]]


async def test_the_user_id_is_kept_escaped_for_monitoring_and_the_record(
    harness: Harness,
) -> None:
    client = harness.client(KANYASHREE)

    await client.call(
        "GET",
        STUDENTS,
        "/export",
        extra_headers={"x-road-userid": "IN/officer-17 999901234563"},
    )

    (record,) = await harness.exchanges()
    assert record["user_id"] == "IN/officer-17 [redacted]"


class _ProviderHeader(httpx.AsyncBaseTransport):
    """The registry's transport, adding one header field to every answer."""

    def __init__(self, inner: httpx.AsyncBaseTransport, field: bytes) -> None:
        self._inner = inner
        self._field = field

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        headers = [*response.headers.raw, (b"content-language", self._field)]
        return httpx.Response(response.status_code, headers=headers, content=body)


async def test_a_provider_header_the_node_cannot_send_is_a_logged_provider_fault(
    harness: Harness,
) -> None:
    """A non-ASCII forwarded field value ends in a logged 502, never an unlogged 500."""
    student = _girl(harness)
    await _grant(harness, student["student_id"])
    http = harness.registry_http
    http._transport = _ProviderHeader(http._transport, "€".encode())

    answer = await _verify(harness.client(KANYASHREE), _verify_body(student))

    records = await harness.records()
    assert answer.status == 502
    assert answer.error_type == "Server.Provider.upstream_response_invalid"
    assert [r["direction"] for r in records] == ["request", "response"]
    assert records[-1]["reason"] == "upstream_header_not_ascii"
