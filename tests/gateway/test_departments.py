"""Departmental systems end to end through the node, each with its own schema."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from gateway.identifiers import ClientId, ServiceId
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
    (record,) = await harness.records()
    assert record["purpose"] == "iosms-staff-records@1"
    assert record["lawful_basis"] == "public_task"
    assert record["consent_id"] is None


async def test_iosms_may_not_read_students(harness: Harness) -> None:
    answer = await harness.client(IOSMS).call(
        "GET", ServiceId(REGISTRY, "students"), "/roster/19110900503"
    )
    assert answer.status == 403
    (record,) = await harness.records()
    assert record["decision"] == "denied"
    assert record["upstream_called"] is False
