"""The registry's endpoints, called in process through the ASGI app."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from registry_stub.ids import is_valid_student_id
from registry_stub.seed import sample_students

from .conftest import UNMASKED_PURPOSE

pytestmark = pytest.mark.anyio

PURPOSE = "x-mediator-purpose"


def _one(db: Path, **criteria: Any) -> dict[str, Any]:
    return sample_students(db, limit=1, **criteria)[0]


def _other_school(db: Path, student: dict[str, Any]) -> str:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT udise_code, doc FROM schools").fetchall()
    finally:
        conn.close()
    for code, doc in rows:
        lo, hi = orjson.loads(doc)["classes"]
        if code != student["udise_code"] and lo <= student["class"] <= hi:
            return str(code)
    raise LookupError("no other school offers the class")


def _admission(student: dict[str, Any], **changes: Any) -> dict[str, Any]:
    keys = ("name", "date_of_birth", "gender", "class", "udise_code", "guardian")
    return {**{k: student[k] for k in keys}, **changes}


# reading students


async def test_get_student_masks_identity_numbers(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db, classes=range(5, 13))
    response = await client.get(f"/api/students/{student['student_id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["aadhaar"] == f"XXXX XXXX {student['aadhaar'][-4:]}"
    number = student["bank_account"]["account_number"]
    assert body["bank_account"]["account_number"] == f"XXXXXXXX{number[-4:]}"
    assert {k: v for k, v in body.items() if k not in {"aadhaar", "bank_account"}} == {
        k: v for k, v in student.items() if k not in {"aadhaar", "bank_account"}
    }


@pytest.mark.parametrize(
    ("header", "unmasked"),
    [(f"{UNMASKED_PURPOSE}@1", True), ("kanyashree@1", False),
     (UNMASKED_PURPOSE, False), (f"x{UNMASKED_PURPOSE}@1", False)],
)  # fmt: skip
async def test_only_a_listed_purpose_unmasks(
    client: httpx.AsyncClient, db: Path, header: str, unmasked: bool
) -> None:
    student = _one(db, classes=range(5, 13))
    response = await client.get(
        f"/api/students/{student['student_id']}", headers={PURPOSE: header}
    )
    assert (response.json()["aadhaar"] == student["aadhaar"]) is unmasked
    account = response.json()["bank_account"]["account_number"]
    assert (account == student["bank_account"]["account_number"]) is unmasked


async def test_unknown_student_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/students/WB201900001236")
    assert (response.status_code, response.json()) == (404, {"error": "not_found"})


@pytest.mark.parametrize("student_id", ["WB201900001235", "WB2019", "x" * 300])
async def test_malformed_student_id_is_a_bad_request(
    client: httpx.AsyncClient, student_id: str
) -> None:
    response = await client.get(f"/api/students/{student_id}")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_student_id"}


async def test_list_students_of_a_class(client: httpx.AsyncClient, db: Path) -> None:
    student = _one(db)
    query = {"udise_code": student["udise_code"], "class": student["class"]}
    body = (await client.get("/api/students", params=query)).json()
    assert body["udise_code"] == student["udise_code"]
    assert body["count"] == len(body["students"]) > 0
    assert student["student_id"] in {s["student_id"] for s in body["students"]}
    for s in body["students"]:
        assert (s["udise_code"], s["class"]) == (
            student["udise_code"],
            student["class"],
        )
        assert s["enrolment_status"] == "enrolled"
        assert s["aadhaar"].startswith("XXXX")


async def test_list_students_pages_with_limit_and_offset(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    query = {"udise_code": student["udise_code"], "class": student["class"]}
    everyone = (await client.get("/api/students", params=query)).json()["students"]
    second = await client.get(
        "/api/students", params={**query, "limit": 1, "offset": 1}
    )
    assert second.json()["students"] == everyone[1:2]


async def test_list_students_filters_by_section(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    query = {"udise_code": student["udise_code"], "class": student["class"],
             "section": student["section"]}  # fmt: skip
    body = (await client.get("/api/students", params=query)).json()
    assert {s["section"] for s in body["students"]} == {student["section"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [({"class": 9}, "udise_code"), ({"udise_code": "19110900503"}, "class"),
     ({"udise_code": "191109", "class": 9}, "udise_code"),
     ({"udise_code": "19110900503", "class": 13}, "class"),
     ({"udise_code": "19110900503", "class": "-1"}, "class"),
     ({"udise_code": "19110900503", "class": "9.0"}, "class"),
     ({"udise_code": "19110900503", "class": "٩"}, "class"),
     ({"udise_code": "19110900503", "class": 9, "limit": 0}, "limit"),
     ({"udise_code": "19110900503", "class": 9, "limit": 501}, "limit"),
     ({"udise_code": "19110900503", "class": 9, "offset": "9" * 30}, "offset"),
     ({"udise_code": "19110900503", "class": 9, "section": "a;"}, "section")],
)  # fmt: skip
async def test_list_students_refuses_bad_parameters(
    client: httpx.AsyncClient, query: dict[str, Any], field: str
) -> None:
    response = await client.get("/api/students", params=query)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_parameter", "field": field}


# verifying enrolment


async def test_verify_enrolment_of_an_enrolled_student(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    body = {
        "student_id": student["student_id"],
        "date_of_birth": student["date_of_birth"],
    }
    answer = (await client.post("/api/students/verify-enrolment", json=body)).json()
    assert answer["enrolled"] is True
    assert answer["date_of_birth_matches"] is True
    assert answer["name"] == student["name"]
    assert answer["school_name"] == student["school_name"]
    assert "aadhaar" not in answer
    assert "bank_account" not in answer


async def test_verify_enrolment_reports_a_wrong_birth_date(
    client: httpx.AsyncClient, db: Path
) -> None:
    body = {"student_id": _one(db)["student_id"], "date_of_birth": "1999-01-01"}
    answer = (await client.post("/api/students/verify-enrolment", json=body)).json()
    assert answer["date_of_birth_matches"] is False


async def test_verify_enrolment_without_birth_date_compares_nothing(
    client: httpx.AsyncClient, db: Path
) -> None:
    body = {"student_id": _one(db)["student_id"]}
    answer = (await client.post("/api/students/verify-enrolment", json=body)).json()
    assert answer["date_of_birth_matches"] is None


@pytest.mark.parametrize("student_id", ["WB201900001236", "WB201900001235", "nobody"])
async def test_verify_enrolment_of_an_unknown_id_is_not_enrolled(
    client: httpx.AsyncClient, student_id: str
) -> None:
    body = {"student_id": student_id, "date_of_birth": "2012-03-05"}
    response = await client.post("/api/students/verify-enrolment", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["enrolled"], answer["date_of_birth_matches"]) == (False, None)
    assert answer["name"] is None
    assert answer["last_exam"] is None


async def test_verify_enrolment_of_a_student_who_left(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db, enrolled=False)
    body = {"student_id": student["student_id"]}
    answer = (await client.post("/api/students/verify-enrolment", json=body)).json()
    assert answer["enrolled"] is False
    assert answer["name"] == student["name"]


# admission


async def test_admission_gives_a_new_valid_id(
    client: httpx.AsyncClient, db: Path
) -> None:
    model = _one(db, classes=range(5, 13))
    body = _admission(model, name={"en": "Tanmoy Saha", "bn": "তন্ময় সাহা"})
    response = await client.post("/api/students", json=body)
    assert response.status_code == 201
    admitted = response.json()
    assert is_valid_student_id(admitted["student_id"])
    assert admitted["student_id"].startswith("WB2026")
    assert admitted["enrolment_status"] == "enrolled"
    assert response.headers["location"] == f"/api/students/{admitted['student_id']}"
    again = await client.get(response.headers["location"])
    assert again.json() == admitted


async def test_admissions_take_consecutive_serials(
    client: httpx.AsyncClient, db: Path
) -> None:
    model = _one(db)
    ids = []
    for en in ("Ayan Pal", "Rohan Pal"):
        body = _admission(model, name={"en": en, "bn": "অয়ন পাল"})
        ids.append((await client.post("/api/students", json=body)).json()["student_id"])
    assert int(ids[1][6:13]) == int(ids[0][6:13]) + 1


async def test_duplicate_admission_names_the_existing_student(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    loud = {"en": f"  {student['name']['en'].upper()} ", "bn": student["name"]["bn"]}
    response = await client.post("/api/students", json=_admission(student, name=loud))
    assert response.status_code == 409
    assert response.json() == {
        "error": "duplicate",
        "existing_student_id": student["student_id"],
    }


async def test_second_admission_of_a_new_student_is_a_duplicate(
    client: httpx.AsyncClient, db: Path
) -> None:
    body = _admission(_one(db), name={"en": "Ritam Kundu", "bn": "ঋতম কুণ্ডু"})
    first = await client.post("/api/students", json=body)
    second = await client.post("/api/students", json=body)
    assert second.status_code == 409
    assert second.json()["existing_student_id"] == first.json()["student_id"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [({"udise_code": "19999999999"}, "unknown_school"),
     ({"class": 0, "date_of_birth": "2021-01-01"}, "class_not_offered")],
)  # fmt: skip
async def test_admission_refuses_a_school_that_cannot_take_the_student(
    client: httpx.AsyncClient, db: Path, changes: dict[str, Any], code: str
) -> None:
    body = _admission(_one(db, classes=range(5, 13)), **changes)
    response = await client.post("/api/students", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == code


async def test_girls_school_refuses_a_boy(client: httpx.AsyncClient, db: Path) -> None:
    boy = _one(db, gender="M")
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE schools SET girls_only = 1 WHERE udise_code = ?",
                     (boy["udise_code"],))  # fmt: skip
    conn.close()
    body = _admission(boy, name={"en": "Amit Das", "bn": "অমিত দাস"})
    response = await client.post("/api/students", json=body)
    assert response.json() == {"error": "school_admits_girls_only", "field": "gender"}


# promotion


@pytest.mark.parametrize(("outcome", "step"), [("promoted", 1), ("detained", 0)])
async def test_year_end_outcome_sets_the_class_and_year(
    client: httpx.AsyncClient, db: Path, outcome: str, step: int
) -> None:
    student = _one(db, classes=range(2, 12))
    body = {"academic_year": "2027-28", "outcome": outcome, "percentage": 61.5}
    response = await client.post(
        f"/api/students/{student['student_id']}/promotion", json=body
    )
    assert response.status_code == 200
    after = response.json()
    assert after["class"] == student["class"] + step
    assert after["academic_year"] == "2027-28"
    assert after["student_id"] == student["student_id"]
    result = "pass" if step else "fail"
    assert after["last_exam"] == {"year": 2026, "class": student["class"],
                                  "result": result, "percentage": 61.5}  # fmt: skip


async def test_promotion_from_class_12_passes_out(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db, classes=[12])
    body = {"academic_year": "2027-28", "outcome": "promoted"}
    after = (
        await client.post(f"/api/students/{student['student_id']}/promotion", json=body)
    ).json()
    assert (after["class"], after["enrolment_status"]) == (12, "passed_out")


async def test_promotion_twice_for_one_year_is_a_conflict(
    client: httpx.AsyncClient, db: Path
) -> None:
    url = f"/api/students/{_one(db, classes=range(12))['student_id']}/promotion"
    body = {"academic_year": "2027-28", "outcome": "promoted"}
    await client.post(url, json=body)
    response = await client.post(url, json=body)
    assert response.status_code == 409
    assert response.json()["error"] == "academic_year_mismatch"


async def test_promotion_of_a_student_not_enrolled_is_a_conflict(
    client: httpx.AsyncClient, db: Path
) -> None:
    url = f"/api/students/{_one(db, enrolled=False)['student_id']}/promotion"
    body = {"academic_year": "2027-28", "outcome": "promoted"}
    response = await client.post(url, json=body)
    assert (response.status_code, response.json()) == (409, {"error": "not_enrolled"})


# transfer


async def test_transfer_keeps_the_id_and_changes_the_school(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    target = _other_school(db, student)
    body = {"to_udise_code": target, "date": "2026-07-01"}
    response = await client.post(
        f"/api/students/{student['student_id']}/transfer", json=body
    )
    assert response.status_code == 200
    after = (await client.get(f"/api/students/{student['student_id']}")).json()
    assert after["student_id"] == student["student_id"]
    assert after["udise_code"] == target
    school = (await client.get(f"/api/schools/{target}")).json()
    assert after["school_name"] == school["name"]


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [("same", 409, "same_school"), ("19999999999", 422, "unknown_school"),
     ("1999", 422, "invalid_field")],
)  # fmt: skip
async def test_transfer_refuses_an_impossible_target(
    client: httpx.AsyncClient, db: Path, target: str, status: int, code: str
) -> None:
    student = _one(db)
    to = student["udise_code"] if target == "same" else target
    body = {"to_udise_code": to, "date": "2026-07-01"}
    response = await client.post(
        f"/api/students/{student['student_id']}/transfer", json=body
    )
    assert (response.status_code, response.json()["error"]) == (status, code)


async def test_transfer_refuses_a_school_without_the_class(
    client: httpx.AsyncClient, db: Path
) -> None:
    infant = _one(db, classes=[0])
    senior = _one(db, classes=[11])
    body = {"to_udise_code": senior["udise_code"], "date": "2026-07-01"}
    response = await client.post(
        f"/api/students/{infant['student_id']}/transfer", json=body
    )
    assert response.json() == {"error": "class_not_offered", "field": "class"}


# bank account


@pytest.mark.parametrize(
    ("account_ok", "ifsc_ok"), [(True, True), (False, True), (True, False)]
)
async def test_bank_account_verify_compares_number_and_ifsc(
    client: httpx.AsyncClient, db: Path, account_ok: bool, ifsc_ok: bool
) -> None:
    student = _one(db, classes=range(5, 13))
    account = student["bank_account"]
    body = {
        "account_number": account["account_number"] if account_ok else "123456789",
        "ifsc": account["ifsc"] if ifsc_ok else "ZZZZ0000000",
    }
    response = await client.post(
        f"/api/students/{student['student_id']}/bank-account/verify", json=body
    )
    assert response.json() == {
        "student_id": student["student_id"],
        "account_matches": account_ok,
        "ifsc_matches": ifsc_ok,
    }
    assert account["account_number"] not in response.text


async def test_bank_account_verify_without_an_account_matches_nothing(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db, classes=range(5))
    body = {"account_number": "", "ifsc": ""}
    response = await client.post(
        f"/api/students/{student['student_id']}/bank-account/verify", json=body
    )
    assert response.status_code == 422
    body = {"account_number": "123456789", "ifsc": "SBIN0000001"}
    response = await client.post(
        f"/api/students/{student['student_id']}/bank-account/verify", json=body
    )
    assert response.json()["account_matches"] is False


async def test_bank_account_verify_of_an_unknown_student(
    client: httpx.AsyncClient,
) -> None:
    body = {"account_number": "123456789", "ifsc": "SBIN0000001"}
    response = await client.post(
        "/api/students/WB201900001236/bank-account/verify", json=body
    )
    assert response.status_code == 404


# schools and teachers


async def test_get_school(client: httpx.AsyncClient, db: Path) -> None:
    student = _one(db)
    school = (await client.get(f"/api/schools/{student['udise_code']}")).json()
    assert school["name"] == student["school_name"]
    assert set(school) == {"udise_code", "name", "district", "block", "management",
                           "classes"}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/schools/19999999999", 404), ("/api/schools/1999", 400),
     ("/api/schools/19999999999/teachers", 404), ("/api/schools/abc/teachers", 400)],
)  # fmt: skip
async def test_unknown_or_malformed_school(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert "error" in response.json()


async def test_list_schools_of_a_district_ignores_case(
    client: httpx.AsyncClient, db: Path
) -> None:
    student = _one(db)
    school = (await client.get(f"/api/schools/{student['udise_code']}")).json()
    query = {"district": school["district"].upper()}
    schools = (await client.get("/api/schools", params=query)).json()["schools"]
    assert school in schools
    assert {s["district"] for s in schools} == {school["district"]}


async def test_list_schools_needs_a_district(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/schools")
    assert response.json() == {"error": "invalid_parameter", "field": "district"}


async def test_teachers_of_a_school(client: httpx.AsyncClient, db: Path) -> None:
    udise_code = _one(db)["udise_code"]
    body = (await client.get(f"/api/schools/{udise_code}/teachers")).json()
    assert body["udise_code"] == udise_code
    assert body["teachers"]
    assert {t["udise_code"] for t in body["teachers"]} == {udise_code}


# refusals are JSON 4xx, never 500


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [("GET", "/api/nothing", b""), ("DELETE", "/api/students", b""),
     ("POST", "/api/students", b"{"), ("POST", "/api/students", b"[1]"),
     ("POST", "/api/students", b"\xff\xfe"), ("POST", "/api/students", b""),
     ("POST", "/api/students", b'{"name": {"en": 1}}'),
     ("POST", "/api/students", b'{"class": 1e400}'),
     ("POST", "/api/students", b"[" * 5000),
     ("POST", "/api/students", b'{"a": "' + b"x" * 70_000 + b'"}'),
     ("POST", "/api/students/verify-enrolment", b"{}"),
     ("POST", "/api/students/verify-enrolment", b'{"student_id": 5}'),
     ("POST", "/api/students/verify-enrolment",
      b'{"student_id": "WB201900001236", "date_of_birth": "2012-13-01"}'),
     ("POST", "/api/students/WB201900001236/promotion", b"{}"),
     ("POST", "/api/students/WB201900001236/promotion",
      b'{"academic_year": "2027-28", "outcome": "expelled"}'),
     ("POST", "/api/students/WB201900001236/promotion",
      b'{"academic_year": "2027-28", "outcome": "promoted", "percentage": true}'),
     ("POST", "/api/students/WB201900001236/transfer", b'{"to_udise_code": null}'),
     ("POST", "/api/students/WB201900001236/bank-account/verify", b'{"ifsc": []}'),
     ("GET", "/api/students/%00", b""), ("GET", "/api/schools/%F0%9F%98%80", b"")],
)  # fmt: skip
async def test_bad_input_is_a_json_client_error(
    client: httpx.AsyncClient, method: str, path: str, content: bytes
) -> None:
    response = await client.request(method, path, content=content)
    assert response.status_code in {400, 404, 405, 409, 413, 422}
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["error"], str)


async def test_wrong_method_says_which_are_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/students/WB201900001236")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed"}
    assert "GET" in response.headers["allow"]
