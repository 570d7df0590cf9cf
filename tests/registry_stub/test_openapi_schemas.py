"""The data shapes of the registry's OpenAPI document against the data and answers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest

from registry_stub import generate
from registry_stub.openapi_schemas import SCHEMAS
from registry_stub.seed import sample_students

STUDENT_ID = "WB201900000013"


def validator(name: str) -> Any:
    """A JSON Schema 2020-12 validator of one shape, with its references."""
    document = {
        "$ref": f"#/components/schemas/{name}",
        "components": {"schemas": SCHEMAS},
    }
    return jsonschema_rs.validator_for(document, validate_formats=True)


def errors(name: str, instance: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(instance)]


@pytest.fixture(scope="module")
def generated() -> dict[str, list[dict[str, Any]]]:
    """Schools, teachers and students straight from the generator."""
    rng = random.Random(31)
    schools = generate.make_schools(rng, 30)
    maker = generate.StudentMaker(rng, schools)
    return {
        "School": [s.doc for s in schools],
        "Teacher": generate.make_teachers(rng, schools),
        "Student": [maker.make() for _ in range(1500)],
    }


def admission(**changes: Any) -> dict[str, Any]:
    """A valid admission request, with ``changes`` over it."""
    return {
        "name": {"en": "Ananya Roy", "bn": "অনন্যা রায়"},
        "date_of_birth": "2013-06-02",
        "gender": "F",
        "class": 7,
        "udise_code": "19160102001",
        "guardian": {
            "name": "Sourav Roy",
            "relation": "father",
            "phone": "+919830012345",
        },
        **changes,
    }


def payment(amount: float = 1000) -> dict[str, Any]:
    return {
        "student_id": STUDENT_ID,
        "account_number": "123456789",
        "ifsc": "SBIN0001234",
        "amount": amount,
    }


# -- generated data --------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["School", "Teacher", "Student"])
def test_every_generated_record_has_its_documented_shape(
    generated: dict[str, list[dict[str, Any]]], shape: str
) -> None:
    check = validator(shape)
    bad = [doc for doc in generated[shape] if not check.is_valid(doc)]

    assert bad == []


@pytest.mark.parametrize(
    ("pointer", "values"),
    [
        (("AdmissionRequest", "religion"), generate.RELIGIONS),
        (("AdmissionRequest", "social_category"), generate.CATEGORIES),
    ],
    ids=["religion", "social_category"],
)
def test_an_enum_lists_exactly_what_the_generator_draws(
    pointer: tuple[str, str], values: tuple[str, ...]
) -> None:
    shape, field = pointer
    assert set(SCHEMAS[shape]["properties"][field]["enum"]) == set(values)


def test_a_student_without_an_account_or_exam_is_valid() -> None:
    """Young children have null ``bank_account`` and ``last_exam``, not missing."""
    rng = random.Random(1)
    schools = generate.make_schools(rng, 4)
    maker = generate.StudentMaker(rng, schools)
    young = next(s for s in iter(maker.make, None) if s["class"] < 2)

    assert young["bank_account"] is None
    assert young["last_exam"] is None
    assert errors("Student", young) == []


def test_a_student_missing_a_required_field_is_invalid(
    generated: dict[str, list[dict[str, Any]]],
) -> None:
    student = dict(generated["Student"][0])
    del student["enrolment_status"]

    assert errors("Student", student) == ['"enrolment_status" is a required property']


# -- admissions ------------------------------------------------------------------------


def test_a_minimal_admission_is_valid() -> None:
    assert errors("AdmissionRequest", admission()) == []


BAD_ADMISSIONS: list[tuple[str, dict[str, Any]]] = [
    ("class above 12", {"class": 13}),
    ("negative class", {"class": -1}),
    ("unknown gender", {"gender": "X"}),
    ("udise of another state", {"udise_code": "27160102001"}),
    ("udise too short", {"udise_code": "1916010200"}),
    ("lower-case section", {"section": "a"}),
    ("not a date", {"date_of_birth": "02/06/2013"}),
    ("no english name", {"name": {"bn": "অনন্যা"}}),
    (
        "landline",
        {"guardian": {"name": "S Roy", "relation": "father", "phone": "+913322001122"}},
    ),
    (
        "unknown relation",
        {"guardian": {"name": "S Roy", "relation": "uncle", "phone": "+919830012345"}},
    ),
    (
        "bad ifsc",
        {
            "bank_account": {
                "account_number": "1",
                "ifsc": "SBIN1234567",
                "holder_name": "A",
            }
        },
    ),
    (
        "percentage over 100",
        {"last_exam": {"year": 2025, "class": 6, "result": "pass", "percentage": 101}},
    ),
]


@pytest.mark.parametrize(
    "changes", [c[1] for c in BAD_ADMISSIONS], ids=[c[0] for c in BAD_ADMISSIONS]
)
def test_an_admission_outside_the_shape_is_invalid(changes: dict[str, Any]) -> None:
    """Each case breaks one rule, and only that one is reported."""
    assert len(errors("AdmissionRequest", admission(**changes))) == 1


# -- payment batches -------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 500])
def test_a_batch_of_1_to_500_payments_is_valid(count: int) -> None:
    assert errors("PaymentBatch", {"payments": [payment()] * count}) == []


@pytest.mark.parametrize(
    ("payments", "message"),
    [
        ([], "has less than 1 item"),
        ([payment()] * 501, "has more than 500 items"),
        ([payment(amount=0)], "less than or equal to the minimum of 0"),
        ([payment(amount=-5)], "less than or equal to the minimum of 0"),
    ],
    ids=["empty", "501 payments", "zero amount", "negative amount"],
)
def test_a_batch_outside_the_shape_is_invalid(
    payments: list[dict[str, Any]], message: str
) -> None:
    found = errors("PaymentBatch", {"payments": payments})

    assert len(found) == 1
    assert message in found[0]


# -- the registry's answers ------------------------------------------------------------


def _student(db: Path, **criteria: Any) -> dict[str, Any]:
    return sample_students(db, limit=1, **criteria)[0]


@pytest.mark.anyio
async def test_the_registrys_answers_have_their_documented_shapes(
    client: httpx.AsyncClient, db: Path
) -> None:
    older = _student(db, classes=range(5, 13), with_bank_account=True)
    young = _student(db, classes=range(2))
    school = older["udise_code"]
    payments = {
        "payments": [
            {
                "student_id": older["student_id"],
                "account_number": older["bank_account"]["account_number"],
                "ifsc": older["bank_account"]["ifsc"],
                "amount": 1000,
            }
        ]
    }
    window = {
        "born_from": "2008-01-01",
        "born_to": "2014-12-31",
        "class_from": 8,
        "class_to": 12,
    }
    calls: list[tuple[str, str, Any, str]] = [
        ("GET", f"/api/students/{older['student_id']}", None, "Student"),
        ("GET", f"/api/students/{young['student_id']}", None, "Student"),
        (
            "GET",
            f"/api/students?udise_code={school}&class={older['class']}",
            None,
            "StudentList",
        ),
        (
            "POST",
            "/api/students/verify-enrolment",
            {"student_id": older["student_id"], "window": window},
            "EnrolmentVerification",
        ),
        (
            "POST",
            "/api/students/verify-enrolment",
            {"student_id": STUDENT_ID, "date_of_birth": "2010-01-01"},
            "EnrolmentVerification",
        ),
        ("POST", "/api/students/payment-status", payments, "PaymentReport"),
        ("GET", f"/api/schools/{school}", None, "School"),
        ("GET", "/api/students/WB000000000000", None, "Error"),
        ("POST", "/api/students", {"name": "x"}, "Error"),
    ]

    for method, url, body, shape in calls:
        response = await client.request(method, url, json=body)
        assert errors(shape, response.json()) == [], (method, url, response.text)


@pytest.mark.anyio
async def test_a_school_teacher_list_holds_documented_teachers(
    client: httpx.AsyncClient, db: Path
) -> None:
    school = _student(db)["udise_code"]

    answer = (await client.get(f"/api/schools/{school}/teachers")).json()

    assert answer["teachers"]
    for teacher in answer["teachers"]:
        assert errors("Teacher", teacher) == []
