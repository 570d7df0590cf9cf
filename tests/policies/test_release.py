"""Release: only the listed fields leave, whatever the shape of the document."""

from __future__ import annotations

from typing import Any

import pytest

from policies.purposes import PurposeSet
from policies.release import compile_release

STUDENT = {
    "student_id": "WB201900001236",
    "name": {"en": "Shovan Roy", "bn": "শোভন রায়"},
    "gender": "F",
    "religion": "Hindu",
    "guardian": {"name": "G", "phone": "+910000000000"},
    "bank_account": {"account_number": "XXXXXXXX1234", "ifsc": "SBIN0001234"},
}


@pytest.mark.parametrize(
    ("fields", "document", "released"),
    [
        (["student_id"], STUDENT, {"student_id": "WB201900001236"}),
        (["name.en"], STUDENT, {"name": {"en": "Shovan Roy"}}),
        (["name"], STUDENT, {"name": STUDENT["name"]}),
        (["name", "name.en"], STUDENT, {"name": STUDENT["name"]}),
        (["name.en", "name"], STUDENT, {"name": STUDENT["name"]}),
        (["missing", "name.xx"], STUDENT, {"name": {}}),
        (["a.b.c"], {"a": {"b": {"c": 1, "d": 2}, "e": 3}}, {"a": {"b": {"c": 1}}}),
        (
            ["count", "students[].student_id", "students[].name.en"],
            {"count": 2, "students": [STUDENT, STUDENT], "udise_code": "19110900503"},
            {
                "count": 2,
                "students": [
                    {"student_id": "WB201900001236", "name": {"en": "Shovan Roy"}}
                ]
                * 2,
            },
        ),
        (["tags[]"], {"tags": ["a", {"b": 1}]}, {"tags": ["a", {"b": 1}]}),
        (["m[].n[].o"], {"m": [{"n": [{"o": 1, "p": 2}]}]}, {"m": [{"n": [{"o": 1}]}]}),
    ],
)
def test_release_keeps_only_listed_paths(
    fields: list[str], document: Any, released: Any
) -> None:
    assert compile_release(fields).apply(document) == released


@pytest.mark.parametrize(
    ("fields", "document", "released"),
    [
        # a string, number or array where an object was expected is dropped
        (["name.en"], {"name": "Shovan Roy"}, {}),
        (["name.en"], {"name": ["Shovan Roy"]}, {}),
        (["name.en"], {"name": 5}, {}),
        # anything but an array where an array was expected is dropped
        (["students[].student_id"], {"students": {"student_id": "x"}}, {}),
        (["students[].student_id"], {"students": "x"}, {}),
        # array items that are not objects are dropped
        (
            ["s[].id"],
            {"s": ["WB1", {"id": "WB2"}, 3, None, [{"id": 4}]]},
            {"s": [{"id": "WB2"}]},
        ),
        # null carries nothing and stays null
        (["name.en"], {"name": None}, {"name": None}),
        (["s[].id"], {"s": None}, {"s": None}),
        # a top-level array is released item by item
        (["id"], [{"id": 1, "x": 2}, "odd"], [{"id": 1}]),
    ],
)
def test_odd_shapes_never_raise_and_never_leak(
    fields: list[str], document: Any, released: Any
) -> None:
    assert compile_release(fields).apply(document) == released


@pytest.mark.parametrize("document", [None, "text", 7, 1.5, True])
def test_scalar_document_releases_nothing(document: Any) -> None:
    assert compile_release(["a"]).apply(document) is None


def test_release_builds_new_objects() -> None:
    document = {"name": {"en": "A", "bn": "B"}}

    released = compile_release(["name.en"]).apply(document)
    released["name"]["en"] = "changed"

    assert document == {"name": {"en": "A", "bn": "B"}}


@pytest.mark.parametrize("field", ["", "a.", ".a", "a[]]", "a b", "a[0]", "a.*"])
def test_malformed_field_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="is not a name"):
        compile_release([field])


def test_kanyashree_release_drops_sensitive_fields(purposes: PurposeSet) -> None:
    purpose = purposes.get("kanyashree-eligibility")
    assert purpose is not None
    response = {
        "student_id": "WB201900001236",
        "enrolled": True,
        "date_of_birth_matches": True,
        "name": {"en": "Shovan Roy", "bn": "শোভন রায়"},
        "gender": "F",
        "date_of_birth": "2012-03-05",
        "class": 9,
        "udise_code": "19110900503",
        "school_name": "Kalna Girls High School",
        "academic_year": "2026-27",
        "minority": False,
        "religion": "Hindu",
        "last_exam": {"year": 2025, "class": 8, "result": "pass", "percentage": 78.5},
    }

    released = purpose.release.apply(response)

    assert set(released) == {
        "student_id",
        "enrolled",
        "date_of_birth_matches",
        "name",
        "gender",
        "date_of_birth",
        "class",
        "udise_code",
        "school_name",
        "academic_year",
    }
    assert released["name"] == {"en": "Shovan Roy"}
