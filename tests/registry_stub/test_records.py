"""Checks of request bodies, masking and the purpose header."""

from __future__ import annotations

import contextlib
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_stub.ids import make_aadhaar
from registry_stub.records import (
    Rejected,
    admission,
    json_object,
    masked,
    next_academic_year,
    purpose_id,
)

YEAR_START = date(2026, 4, 1)
AADHAAR = make_aadhaar("99991234567")
WRONG_AADHAAR = AADHAAR[:-1] + str((int(AADHAAR[-1]) + 1) % 10)


def _admission(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": {"en": "Shovan Roy", "bn": "শোভন রায়"},
        "date_of_birth": "2012-03-05",
        "gender": "M",
        "class": 8,
        "udise_code": "19110900503",
        "guardian": {
            "name": "Tapas Roy",
            "relation": "father",
            "phone": "+919800000001",
        },
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_admission_fills_defaults() -> None:
    fields = admission(_admission(), YEAR_START)
    assert fields["section"] == "A"
    assert fields["social_category"] == "GEN"
    assert (fields["religion"], fields["minority"]) == ("Other", False)
    assert fields["bank_account"] is None
    assert fields["aadhaar"] is None


def test_admission_derives_minority_from_religion() -> None:
    assert admission(_admission(religion="Muslim"), YEAR_START)["minority"] is True


def test_admission_normalises_a_grouped_aadhaar() -> None:
    grouped = f"{AADHAAR[:4]} {AADHAAR[4:8]} {AADHAAR[8:]}"
    assert admission(_admission(aadhaar=grouped), YEAR_START)["aadhaar"] == AADHAAR


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"name": ...}, "invalid_field", "name"),
        ({"name": {"en": "Shovan Roy"}}, "invalid_field", "bn"),
        ({"name": {"en": "  ", "bn": "x"}}, "invalid_field", "en"),
        ({"date_of_birth": "05-03-2012"}, "invalid_field", "date_of_birth"),
        ({"date_of_birth": "2012-02-30"}, "invalid_field", "date_of_birth"),
        ({"date_of_birth": "2007-03-31"}, "age_out_of_range", "date_of_birth"),
        ({"date_of_birth": "2027-01-01"}, "age_out_of_range", "date_of_birth"),
        ({"class": 10}, "class_does_not_fit_age", "class"),
        ({"class": "8"}, "invalid_field", "class"),
        ({"class": True}, "invalid_field", "class"),
        ({"class": 13}, "invalid_field", "class"),
        ({"gender": "X"}, "invalid_field", "gender"),
        ({"udise_code": "20110900503"}, "invalid_field", "udise_code"),
        ({"guardian": {"name": "T", "relation": "uncle", "phone": "+919800000001"}},
         "invalid_field", "relation"),
        ({"guardian": {"name": "T", "relation": "father", "phone": "9800000001"}},
         "invalid_field", "phone"),
        ({"aadhaar": WRONG_AADHAAR}, "invalid_field", "aadhaar"),
        ({"aadhaar": 999912345678}, "invalid_field", "aadhaar"),
        ({"bank_account": {"account_number": "12", "ifsc": "SBIN0000001",
                           "holder_name": "S"}}, "invalid_field", "account_number"),
        ({"last_exam": {"year": 2025, "class": 7, "result": "pass",
                        "percentage": 101}}, "invalid_field", "percentage"),
        ({"minority": "yes"}, "invalid_field", "minority"),
        ({"student_id": "WB201900001236"}, "unknown_field", "student_id"),
        ({"nickname": "Shovu"}, "unknown_field", "nickname"),
    ],
)  # fmt: skip
def test_admission_refuses_invalid_fields(
    changes: dict[str, Any], code: str, field: str
) -> None:
    with pytest.raises(Rejected, match=code) as caught:
        admission(_admission(**changes), YEAR_START)
    assert caught.value.status == 422
    assert caught.value.body == {"error": code, "field": field}


def test_admission_ignores_fields_the_registry_assigns() -> None:
    fields = admission(_admission(enrolment_status="left"), YEAR_START)
    assert "enrolment_status" not in fields


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [(b"{", 400, "invalid_json"), (b"\xff", 400, "invalid_json"),
     (b'"\\ud800"', 400, "invalid_json"), (b"[]", 422, "invalid_body"),
     (b"null", 422, "invalid_body"), (b"[" * 2000, 400, "invalid_json")],
)  # fmt: skip
def test_json_object_refuses_what_is_not_an_object(
    body: bytes, status: int, code: str
) -> None:
    with pytest.raises(Rejected, match=code) as caught:
        json_object(body)
    assert caught.value.status == status


STUDENT = {
    "student_id": "WB201900001236",
    "aadhaar": AADHAAR,
    "bank_account": {"account_number": "123456789012", "ifsc": "SBIN0001234",
                     "holder_name": "Shovan Roy"},
}  # fmt: skip


def test_masked_hides_identity_numbers_but_the_last_four() -> None:
    out = masked(STUDENT, unmask=False)
    assert out["aadhaar"] == f"XXXX XXXX {AADHAAR[-4:]}"
    assert out["bank_account"]["account_number"] == "XXXXXXXX9012"
    assert out["bank_account"]["ifsc"] == "SBIN0001234"


def test_masked_leaves_the_record_itself_unchanged() -> None:
    masked(STUDENT, unmask=False)
    assert STUDENT["aadhaar"] == AADHAAR


def test_masked_can_unmask() -> None:
    assert masked(STUDENT, unmask=True) == STUDENT


def test_masked_keeps_missing_numbers_missing() -> None:
    assert masked({"aadhaar": None, "bank_account": None}, unmask=False) == {
        "aadhaar": None,
        "bank_account": None,
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [("kanyashree@1", "kanyashree"), ("dbt-payment@2026-01", "dbt-payment"),
     ("kanyashree", None), ("@1", None), ("kanyashree@", None), ("", None),
     (None, None)],
)  # fmt: skip
def test_purpose_id_of_the_header(header: str | None, expected: str | None) -> None:
    assert purpose_id(header) == expected


@pytest.mark.parametrize(
    ("current", "following"),
    [("2026-27", "2027-28"), ("2099-00", "2100-01"), ("1999-00", "2000-01")],
)
def test_next_academic_year(current: str, following: str) -> None:
    assert next_academic_year(current) == following


def test_next_academic_year_refuses_a_malformed_year() -> None:
    with pytest.raises(ValueError, match="YYYY-YY"):
        next_academic_year("2026")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner),
    max_leaves=12,
)


_OPTIONAL = (
    "name",
    "date_of_birth",
    "class",
    "guardian",
    "aadhaar",
    "bank_account",
    "last_exam",
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({}, optional=dict.fromkeys(_OPTIONAL, _JSON)).map(
        lambda changes: _admission(**changes)
    )
)
def test_admission_raises_nothing_but_rejected(body: dict[str, Any]) -> None:
    with contextlib.suppress(Rejected):
        admission(body, YEAR_START)
