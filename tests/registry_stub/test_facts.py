"""Derived facts: management filter, eligibility windows and payment status."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from registry_stub.seed import roster_sizes, sample_students

pytestmark = pytest.mark.anyio

VERIFY = "/api/students/verify-enrolment"
PAYMENTS = "/api/students/payment-status"


def _management(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT udise_code, doc FROM schools").fetchall()
    finally:
        conn.close()
    return {code: orjson.loads(doc)["management"] for code, doc in rows}


def _banked(db: Path) -> dict[str, Any]:
    return sample_students(db, limit=1, with_bank_account=True)[0]


# the management filter of the students listing


@pytest.mark.parametrize("given", ["own", "other"])
async def test_listing_keeps_only_schools_of_the_given_management(
    client: httpx.AsyncClient, db: Path, given: str
) -> None:
    student = sample_students(db, limit=1)[0]
    kind = _management(db)[student["udise_code"]]
    others = ",".join(k for k in ("government", "aided", "private") if k != kind)
    query = {
        "udise_code": student["udise_code"],
        "class": student["class"],
        "management": kind if given == "own" else others,
    }
    body = (await client.get("/api/students", params=query)).json()
    assert (body["count"] > 0) is (given == "own")
    assert body["count"] == len(body["students"])


@pytest.mark.parametrize("management", ["", "state", "government,,aided"])
async def test_listing_refuses_an_unknown_management(
    client: httpx.AsyncClient, db: Path, management: str
) -> None:
    student = sample_students(db, limit=1)[0]
    query = {
        "udise_code": student["udise_code"],
        "class": student["class"],
        "management": management,
    }
    response = await client.get("/api/students", params=query)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_parameter", "field": "management"}


# eligibility windows


def _window(student: dict[str, Any], inside: bool) -> dict[str, Any]:
    born = student["date_of_birth"]
    return {
        "born_from": born if inside else "1990-01-01",
        "born_to": born if inside else "1990-12-31",
        "class_from": student["class"],
        "class_to": student["class"] if inside else 12,
    }


@pytest.mark.parametrize("inside", [True, False])
async def test_window_answers_whether_the_student_falls_inside(
    client: httpx.AsyncClient, db: Path, inside: bool
) -> None:
    student = sample_students(db, limit=1)[0]
    body = {"student_id": student["student_id"], "window": _window(student, inside)}
    answer = (await client.post(VERIFY, json=body)).json()
    assert answer["window"] == {
        "date_of_birth_in_window": inside,
        "class_in_window": True,
    }


async def test_window_of_an_unknown_student_is_unknown(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = sample_students(db, limit=1)[0]
    body = {"student_id": "WB201900001236", "window": _window(student, True)}
    answer = (await client.post(VERIFY, json=body)).json()
    assert answer["window"] == {
        "date_of_birth_in_window": None,
        "class_in_window": None,
    }


async def test_no_window_asked_none_answered(
    client: httpx.AsyncClient, db: Path
) -> None:
    body = {"student_id": sample_students(db, limit=1)[0]["student_id"]}
    assert "window" not in (await client.post(VERIFY, json=body)).json()


@pytest.mark.parametrize(
    "window",
    [
        {"born_from": "2012-01-01", "born_to": "2011-01-01", "class_from": 8,
         "class_to": 12},
        {"born_from": "2010-01-01", "born_to": "2011-01-01", "class_from": 8},
        {"born_from": "2010-01-01", "born_to": "2011-02-30", "class_from": 8,
         "class_to": 12},
        {"born_from": "2010-01-01", "born_to": "2011-01-01", "class_from": 8,
         "class_to": 13},
        "2010-2011",
    ],
)  # fmt: skip
async def test_a_malformed_window_is_refused(
    client: httpx.AsyncClient, db: Path, window: Any
) -> None:
    body = {"student_id": sample_students(db, limit=1)[0]["student_id"]}
    response = await client.post(VERIFY, json={**body, "window": window})
    assert response.status_code == 422
    assert response.json()["field"] == "window"


# payment status


def _payment(student: dict[str, Any], **changes: Any) -> dict[str, Any]:
    account = student["bank_account"]
    payment = {
        "student_id": student["student_id"],
        "account_number": account["account_number"],
        "ifsc": account["ifsc"],
        "amount": 1000.0,
    }
    return {**payment, **changes}


async def test_a_matching_account_is_payable_and_wrong_ones_are_held(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _banked(db)
    wrong = "9" * len(student["bank_account"]["account_number"])
    payments = [
        _payment(student, amount=25000.5),
        _payment(student, account_number=wrong),
        _payment(student, ifsc="ABCD0000000"),
        _payment(student, student_id="WB201900001236"),
    ]
    report = (await client.post(PAYMENTS, json={"payments": payments})).json()
    assert [row["status"] for row in report["payments"]] == [
        "payable",
        "held",
        "held",
        "held",
    ]
    assert (report["count"], report["payable_count"]) == (4, 1)
    assert report["total_payable"] == 25000.5
    assert report["payments"][1]["account_matches"] is False
    assert report["payments"][2]["ifsc_matches"] is False
    assert report["payments"][3]["enrolled"] is False
    assert wrong not in str(report)
    assert student["bank_account"]["account_number"] not in str(report)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": 10.001}, "amount"),
        ({"amount": "1,000"}, "amount"),
        ({"amount": True}, "amount"),
        ({"ifsc": "sbin0001234"}, "ifsc"),
        ({"account_number": "12-34"}, "account_number"),
    ],
)
async def test_a_malformed_payment_is_refused(
    client: httpx.AsyncClient, db: Path, changes: dict[str, Any], field: str
) -> None:
    body = {"payments": [_payment(_banked(db), **changes)]}
    response = await client.post(PAYMENTS, json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field


@pytest.mark.parametrize("payments", [[], "all", [1], [None] * 501])
async def test_a_malformed_batch_is_refused(
    client: httpx.AsyncClient, payments: Any
) -> None:
    response = await client.post(PAYMENTS, json={"payments": payments})
    assert response.status_code == 422
    assert response.json()["field"] == "payments"


def test_roster_sizes_count_nobody_in_schools_of_other_management(db: Path) -> None:
    everyone = roster_sizes(db, klass=9)
    kinds = _management(db)
    covered = frozenset({"government", "aided"})
    filtered = roster_sizes(db, klass=9, management=covered)
    assert filtered.keys() == everyone.keys()
    for code, count in filtered.items():
        assert count == (everyone[code] if kinds[code] in covered else 0)
