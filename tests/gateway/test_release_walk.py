"""The release walk: for every kind of departmental traffic, nothing beyond the
purpose's fields leaves the node.

Each case is called twice: once through the node, as the department calls it, and
once straight at the registry with the canonical request, which gives the whole
answer the registry would have sent. Every leaf of that whole answer is then judged
field by field: a leaf the purpose names may reach the client (renamed by the
adapter); the text of any other leaf must not appear anywhere in the client's
answer. Numbers and booleans cannot be told apart by value, so the walk also checks
that the released document the adapter sees holds only the purpose's fields.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from gateway.identifiers import ClientId, ServiceId
from policies.release import compile_release
from registry_stub.seed import sample_students
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio

REGISTRY = ClientId("WB", "GOV", "SED", "banglarshiksha")
STUDENTS = ServiceId(REGISTRY, "students")
SCHOOLS = ServiceId(REGISTRY, "schools")
KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
AIKYASHREE = ClientId("WB", "GOV", "MAME", "aikyashree")
SABOOJSATHI = ClientId("WB", "GOV", "BCW", "saboojsathi")
IFMS = ClientId("WB", "GOV", "FIN", "ifms")
IOSMS = ClientId("WB", "GOV", "SED", "iosms")
REGISTRY_URL = "http://127.0.0.1:8701/api"
K1_2026 = {
    "born_from": "2008-04-01",
    "born_to": "2014-03-31",
    "class_from": 8,
    "class_to": 12,
}
#: Values too short or too common to tell where they came from.
MIN_TEXT = 4


@dataclass(frozen=True)
class Case:
    name: str
    client: ClientId
    service: ServiceId
    purpose: str
    method: str
    path: str
    body: Any
    canonical: tuple[str, str, Any]  # method, registry path with query, body


def _cases(harness: Harness) -> list[Case]:
    db = harness.demo.registry_db
    (girl,) = sample_students(db, gender="F", classes=[9], limit=1)
    (minority,) = sample_students(db, minority=True, classes=[9, 10], limit=1)
    (banked,) = sample_students(db, with_bank_account=True, limit=1)
    year, month, day = girl["date_of_birth"].split("-")
    account = banked["bank_account"]
    ifms_item = {
        "beneficiaryId": banked["student_id"],
        "bankAccountNo": account["account_number"],
        "ifscCode": account["ifsc"],
    }
    canonical_item = {
        "student_id": banked["student_id"],
        "account_number": account["account_number"],
        "ifsc": account["ifsc"],
    }
    k_body = {
        "applicant": {
            "registry_uid": girl["student_id"],
            "dob": f"{day}/{month}/{year}",
        }
    }
    udise = girl["udise_code"]
    k_canonical = {
        "student_id": girl["student_id"],
        "date_of_birth": girl["date_of_birth"],
    }
    return [
        Case(
            "kanyashree verify", KANYASHREE, STUDENTS, "kanyashree-eligibility",
            "POST", "/verify-enrolment", k_body,
            ("POST", "/students/verify-enrolment", k_canonical),
        ),
        Case(
            "kanyashree K1 window", KANYASHREE, STUDENTS, "kanyashree-eligibility",
            "POST", "/verify-enrolment",
            {**k_body, "scheme": "K1", "scheme_year": "2026-27"},
            ("POST", "/students/verify-enrolment",
             {**k_canonical, "window": K1_2026}),
        ),
        Case(
            "kanyashree path form", KANYASHREE, STUDENTS, "kanyashree-eligibility",
            "GET", f"/applicants/{girl['student_id']}/enrolment", None,
            ("POST", "/students/verify-enrolment", {"student_id": girl["student_id"]}),
        ),
        Case(
            "aikyashree", AIKYASHREE, STUDENTS, "aikyashree-scholarship",
            "POST", "/minority-enrolment", {"studentUid": minority["student_id"]},
            ("POST", "/students/verify-enrolment",
             {"student_id": minority["student_id"]}),
        ),
        Case(
            "saboojsathi roster", SABOOJSATHI, STUDENTS, "saboojsathi-roster",
            "GET", f"/roster/{udise}", None,
            ("GET", f"/students?udise_code={udise}&class=9", None),
        ),
        Case(
            "ifms beneficiary check", IFMS, STUDENTS, "ifms-beneficiary-check",
            "POST", "/beneficiary-check", ifms_item,
            ("POST", f"/students/{banked['student_id']}/bank-account/verify",
             {"account_number": account["account_number"], "ifsc": account["ifsc"]}),
        ),
        Case(
            "ifms payment status", IFMS, STUDENTS, "ifms-payment-status",
            "POST", "/payment-status",
            {"payments": [{**ifms_item, "amount": "12,000.00"}]},
            ("POST", "/students/payment-status",
             {"payments": [{**canonical_item, "amount": 12000}]}),
        ),
        Case(
            "iosms staff", IOSMS, SCHOOLS, "iosms-staff-records",
            "GET", f"/postings/{udise}/staff", None,
            ("GET", f"/schools/{udise}/teachers", None),
        ),
    ]  # fmt: skip


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, f"{path}[]")
    else:
        yield path, value


def _covered(path: str, fields: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f"{f}.") for f in fields)


async def _grant_if_needed(harness: Harness, case: Case) -> None:
    purpose = harness.node.deployment.policies.purposes.get(case.purpose)
    if purpose is None:
        raise LookupError(case.purpose)
    if purpose.lawful_basis != "consent":
        return
    subject = case.canonical[2]["student_id"]
    now = time.time()
    await harness.node.consents.grant(
        subject=subject,
        client=case.client,
        purpose=purpose,
        granted_by_role="guardian",
        granted_by_name="Guardian Name",
        subject_is_minor=True,
        valid_from=now - 60,
        valid_until=now + 3600,
        actor="test",
    )


async def _whole_answer(harness: Harness, case: Case) -> Any:
    method, path, body = case.canonical
    response = await harness.registry_http.request(
        method, f"{REGISTRY_URL}{path}", json=body
    )
    assert response.status_code == 200, case.name
    return response.json()


CASE_NAMES = [
    "kanyashree verify", "kanyashree K1 window", "kanyashree path form",
    "aikyashree", "saboojsathi roster", "ifms beneficiary check",
    "ifms payment status", "iosms staff",
]  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
async def test_nothing_beyond_the_purpose_leaves(harness: Harness, name: str) -> None:
    (case,) = [c for c in _cases(harness) if c.name == name]
    await _grant_if_needed(harness, case)
    purpose = harness.node.deployment.policies.purposes.get(case.purpose)
    assert purpose is not None
    fields = tuple(purpose.fields)
    whole = await _whole_answer(harness, case)

    answer = await harness.client(case.client).call(
        case.method, case.service, case.path, json=case.body, purpose=case.purpose
    )

    assert answer.status == 200, (name, answer.body[:200])
    sent = answer.body.decode()
    released = compile_release(fields).apply(whole)
    for path, _value in _leaves(released):
        assert _covered(path, fields), (name, path)
    allowed = {str(v) for p, v in _leaves(whole) if _covered(p, fields)}
    for path, value in _leaves(whole):
        if _covered(path, fields) or not isinstance(value, str):
            continue
        if len(value) < MIN_TEXT or value in allowed:
            continue
        assert orjson.dumps(value).decode().strip('"') not in sent, (name, path)


async def test_the_walk_covers_every_purpose(harness: Harness) -> None:
    walked = {c.purpose for c in _cases(harness)}
    configured = set(harness.node.deployment.policies.purposes.ids())
    assert walked == configured
