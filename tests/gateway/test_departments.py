"""Departmental systems end to end through the node, each with its own schema."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson
import pytest

from gateway.identifiers import ClientId, ServiceId
from registry_stub.seed import sample_students
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio

REGISTRY = ClientId("WB", "GOV", "SED", "banglarshiksha")
SCHOOLS = ServiceId(REGISTRY, "schools")
IOSMS = ClientId("WB", "GOV", "SED", "iosms")


def _a_school_with_teachers(harness: Harness) -> str:
    db = sqlite3.connect(harness.demo.registry_db)
    try:
        row = db.execute("SELECT udise_code FROM teachers LIMIT 1").fetchone()
    finally:
        db.close()
    return str(row[0])


async def test_iosms_reads_a_schools_staff_in_its_own_shape(harness: Harness) -> None:
    udise = _a_school_with_teachers(harness)

    answer = await harness.client(IOSMS).call(
        "GET", SCHOOLS, f"/postings/{udise}/staff", purpose="iosms-staff-records"
    )

    assert answer.status == 200
    document: dict[str, Any] = answer.json()
    assert document["postingSchoolUdise"] == udise
    assert document["staff"]
    for member in document["staff"]:
        assert member["employeeCode"].startswith("WBT")
        assert member["fullName"].startswith(member["firstName"])
        assert member["postedAt"] == udise
    heads = [m for m in document["staff"] if m.get("isHeadOfInstitution")]
    assert len(heads) == 1
    (record,) = await harness.exchanges()
    assert record["purpose"] == "iosms-staff-records@1"
    assert record["lawful_basis"] == "public_task"
    assert record["consent_id"] is None


async def test_iosms_may_not_read_students(harness: Harness) -> None:
    answer = await harness.client(IOSMS).call(
        "GET", ServiceId(REGISTRY, "students"), "/roster/19110900503"
    )
    assert answer.status == 403
    (record,) = await harness.exchanges()
    assert record["decision"] == "denied"
    assert record["upstream_called"] is False


# the consent-based departments, the public-task ones and their filters

STUDENTS = ServiceId(REGISTRY, "students")
KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
AIKYASHREE = ClientId("WB", "GOV", "MAME", "aikyashree")
SABOOJSATHI = ClientId("WB", "GOV", "BCW", "saboojsathi")
IFMS = ClientId("WB", "GOV", "FIN", "ifms")


async def _grant(harness: Harness, client: ClientId, purpose_id: str, sid: str) -> str:
    purpose = harness.node.deployment.policies.purposes.get(purpose_id)
    if purpose is None:
        raise LookupError(purpose_id)
    now = time.time()
    record = await harness.node.consents.grant(
        subject=sid,
        client=client,
        purpose=purpose,
        granted_by_role="guardian",
        granted_by_name="Guardian Name",
        subject_is_minor=True,
        valid_from=now - 60,
        valid_until=now + 3600,
        actor="test",
    )
    return record.consent_id


def _dmy(iso: str, sep: str) -> str:
    year, month, day = iso.split("-")
    return sep.join((day, month, year))


async def test_kanyashree_k1_facts_come_without_the_birth_date_asked(
    harness: Harness,
) -> None:
    (girl,) = sample_students(
        harness.demo.registry_db, gender="F", classes=[9], limit=1
    )
    await _grant(harness, KANYASHREE, "kanyashree-eligibility", girl["student_id"])
    body = {
        "applicant": {"registry_uid": girl["student_id"]},
        "scheme": "K1",
        "scheme_year": "2026-27",
    }

    answer = await harness.client(KANYASHREE).call(
        "POST", STUDENTS, "/verify-enrolment", json=body,
        purpose="kanyashree-eligibility",
    )  # fmt: skip

    assert answer.status == 200
    document = answer.json()
    in_window = "2008-04-01" <= girl["date_of_birth"] <= "2014-03-31"
    assert document["age_window_met"] == ("Y" if in_window else "N")
    assert document["class_window_met"] == "Y"
    assert document["studying_in_class"] == "IX"
    (record,) = await harness.exchanges()
    assert record["purpose"] == "kanyashree-eligibility@2"


async def test_aikyashree_reads_minority_and_last_exam_never_religion(
    harness: Harness,
) -> None:
    (student,) = sample_students(
        harness.demo.registry_db, minority=True, classes=[9, 10], limit=1
    )
    consent = await _grant(
        harness, AIKYASHREE, "aikyashree-scholarship", student["student_id"]
    )
    body = {
        "studentUid": student["student_id"],
        "dateOfBirth": _dmy(student["date_of_birth"], "-"),
    }

    answer = await harness.client(AIKYASHREE).call(
        "POST", STUDENTS, "/minority-enrolment", json=body,
        purpose="aikyashree-scholarship",
    )  # fmt: skip

    assert answer.status == 200
    document = answer.json()
    assert (document["enrolled"], document["dobMatched"]) == ("Y", "Y")
    assert document["minorityCommunity"] == "Y"
    assert document["lastExam"]["class"] == student["last_exam"]["class"]
    assert student["religion"] not in answer.body.decode()
    (record,) = await harness.exchanges()
    assert record["consent_id"] == consent
    assert record["purpose"] == "aikyashree-scholarship@1"


async def test_aikyashree_without_consent_is_refused(harness: Harness) -> None:
    (student,) = sample_students(harness.demo.registry_db, minority=True, limit=1)
    answer = await harness.client(AIKYASHREE).call(
        "POST", STUDENTS, "/minority-enrolment",
        json={"studentUid": student["student_id"]}, purpose="aikyashree-scholarship",
    )  # fmt: skip
    assert answer.status == 403
    (record,) = await harness.exchanges()
    assert record["upstream_called"] is False


def _schools_by_management(harness: Harness) -> dict[str, str]:
    db = sqlite3.connect(harness.demo.registry_db)
    try:
        rows = db.execute(
            "SELECT s.udise_code, s.doc FROM schools s WHERE EXISTS (SELECT 1 FROM"
            " students t WHERE t.udise_code = s.udise_code AND t.class = 9"
            " AND t.enrolment_status = 'enrolled')"
        ).fetchall()
    finally:
        db.close()
    return {orjson.loads(doc)["management"]: code for code, doc in rows}


@pytest.mark.parametrize("management", ["government", "aided", "private"])
async def test_saboojsathi_rosters_cover_government_and_aided_schools_only(
    harness: Harness, management: str
) -> None:
    # The session's registry is seeded so that every kind of school has class IX.
    udise = _schools_by_management(harness)[management]

    answer = await harness.client(SABOOJSATHI).call(
        "GET", STUDENTS, f"/roster/{udise}", purpose="saboojsathi-roster"
    )

    assert answer.status == 200
    document = answer.json()
    assert (document["total"] > 0) is (management != "private")
    assert document["total"] == len(document["beneficiaries"])


async def test_ifms_payment_status_in_rupees_with_indian_grouping(
    harness: Harness,
) -> None:
    (student,) = sample_students(
        harness.demo.registry_db, with_bank_account=True, limit=1
    )
    account = student["bank_account"]
    right = {
        "beneficiaryId": student["student_id"],
        "bankAccountNo": account["account_number"],
        "ifscCode": account["ifsc"],
        "amount": "1,25,000.50",
    }
    wrong_ifsc = {**right, "ifscCode": "ABCD0000000", "amount": "500"}
    body = {"batchNo": "PB/2026-27/000001", "payments": [right, wrong_ifsc]}

    answer = await harness.client(IFMS).call(
        "POST", STUDENTS, "/payment-status", json=body, purpose="ifms-payment-status"
    )

    assert answer.status == 200
    document = answer.json()
    assert (document["totalRecords"], document["payableRecords"]) == (2, 1)
    assert document["totalPayable"] == "₹1,25,000.50"
    statuses = [(p["paymentStatus"], p["amount"]) for p in document["payments"]]
    assert statuses == [("PAYABLE", "₹1,25,000.50"), ("HELD", "₹500.00")]
    assert document["payments"][1]["ifscValidated"] == "N"
    assert account["account_number"] not in answer.body.decode()
    (record,) = await harness.exchanges()
    assert record["purpose"] == "ifms-payment-status@1"
    assert record["lawful_basis"] == "public_task"
