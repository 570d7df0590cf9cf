"""The demo's iOSMS traffic: staff lists checked against the registry's teachers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.demo import iosms
from gateway.demo.traffic import run_all
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio


async def test_staff_lists_and_refusals_are_as_expected(harness: Harness) -> None:
    staff = iosms.staff_lists(harness.demo.registry_db, schools=3)
    client = harness.client(iosms.IOSMS)
    jobs = iosms.jobs(client, staff) + iosms.refused_jobs(client)

    outcomes = await run_all(jobs, concurrency=1)

    assert [(o.case, o.status, o.as_expected) for o in outcomes] == [
        ("staff of a school", 200, True),
        ("staff of a school", 200, True),
        ("staff of a school", 200, True),
        ("unknown school", 404, True),
        ("UDISE of another state", 422, True),
        ("reads students", 403, True),
        ("no purpose declared", 403, True),
    ]


def test_staff_lists_hold_every_teacher_of_each_school(registry_db: Path) -> None:
    staff = iosms.staff_lists(registry_db, schools=5)

    assert len(staff) == 5
    for udise, teachers in staff.items():
        assert teachers
        assert {t["udise_code"] for t in teachers} == {udise}


@pytest.mark.parametrize(
    ("name", "designation", "expected"),
    [
        ("Anjali Ghosh", "Headmistress", {"surname": "Ghosh", "cadreCode": "HM"}),
        ("Rahim", "Para Teacher", {"cadreCode": "PT"}),
        ("Md Abdul Karim", "Librarian", {"surname": "Karim", "cadreCode": "OTHER"}),
    ],
)
def test_a_teacher_in_iosmss_shape(
    name: str, designation: str, expected: dict[str, str]
) -> None:
    teacher = {
        "employee_id": "WBT1000001",
        "name": {"en": name, "bn": "-"},
        "designation": designation,
        "date_of_joining": "2004-07-01",
        "udise_code": "19110900503",
    }

    record = iosms.member(teacher)

    assert record["firstName"] == name.split(" ", maxsplit=1)[0]
    assert record["dateOfJoiningService"] == "01-07-2004"
    assert {k: record[k] for k in expected} == expected
    assert "surname" in record or " " not in name
    assert record.get("isHeadOfInstitution") is (
        True if "Head" in designation else None
    )
    assert "subjectTaught" not in record
