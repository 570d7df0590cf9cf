"""Seeding: determinism, the invariants of every record, and picking test subjects."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from registry_stub.generate import nominal_class
from registry_stub.ids import is_valid_student_id, is_valid_udise, normalise_aadhaar
from registry_stub.seed import age_on, roster_sizes, sample_students, seed_database
from registry_stub.tables import DISTRICTS

from .conftest import SCHOOLS, STUDENTS

CANONICAL_KEYS = {
    "student_id", "name", "date_of_birth", "gender", "class", "section", "udise_code",
    "school_name", "academic_year", "enrolment_status", "guardian", "social_category",
    "minority", "religion", "disability", "bank_account", "aadhaar", "last_exam",
}  # fmt: skip


def _docs(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"SELECT doc FROM {table} ORDER BY rowid").fetchall()
    finally:
        conn.close()
    return [orjson.loads(row[0]) for row in rows]


@pytest.fixture(scope="module")
def students(seeded_db: Path) -> list[dict[str, Any]]:
    return _docs(seeded_db, "students")


@pytest.fixture(scope="module")
def schools(seeded_db: Path) -> dict[str, dict[str, Any]]:
    return {s["udise_code"]: s for s in _docs(seeded_db, "schools")}


def test_same_seed_gives_the_same_registry(tmp_path: Path, seeded_db: Path) -> None:
    again = tmp_path / "again.db"
    seed_database(again, students=STUDENTS, schools=SCHOOLS)
    assert _docs(again, "students")[:20] == _docs(seeded_db, "students")[:20]
    assert _docs(again, "teachers") == _docs(seeded_db, "teachers")


def test_another_seed_gives_other_students(tmp_path: Path, seeded_db: Path) -> None:
    other = tmp_path / "other.db"
    seed_database(other, students=STUDENTS, schools=SCHOOLS, seed=7)
    assert _docs(other, "students")[:5] != _docs(seeded_db, "students")[:5]


def test_seeding_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    path.write_bytes(b"not a database")
    summary = seed_database(path, students=10, schools=2)
    assert (summary.students, summary.schools) == (10, 2)
    assert len(_docs(path, "students")) == 10
    assert summary.size_bytes == path.stat().st_size


@pytest.mark.parametrize(("students", "schools"), [(10, 1), (-1, 10), (10, 100_001)])
def test_seeding_refuses_counts_out_of_range(
    tmp_path: Path, students: int, schools: int
) -> None:
    with pytest.raises(ValueError, match="must be between"):
        seed_database(tmp_path / "r.db", students=students, schools=schools)


def test_every_student_has_every_canonical_field(
    students: list[dict[str, Any]],
) -> None:
    assert len(students) == STUDENTS
    assert all(set(s) == CANONICAL_KEYS for s in students)


def test_student_ids_are_valid_and_unique(students: list[dict[str, Any]]) -> None:
    ids = [s["student_id"] for s in students]
    assert all(is_valid_student_id(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_ages_are_0_to_18_and_classes_fit_them(students: list[dict[str, Any]]) -> None:
    for s in students:
        age = age_on(s["date_of_birth"])
        assert 0 <= age <= 18
        assert max(0, nominal_class(age) - 2) <= s["class"] <= nominal_class(age)


def test_aadhaar_numbers_are_in_the_test_range_and_valid(
    students: list[dict[str, Any]],
) -> None:
    for s in students:
        assert s["aadhaar"].startswith("9999")
        assert normalise_aadhaar(s["aadhaar"]) == s["aadhaar"]


def test_bank_accounts_belong_to_students_from_class_5(
    students: list[dict[str, Any]],
) -> None:
    for s in students:
        account = s["bank_account"]
        assert (account is not None) == (s["class"] >= 5)
        if account is not None:
            assert re.fullmatch(r"\d{9,18}", account["account_number"])
            assert re.fullmatch(r"[A-Z]{4}0\d{6}", account["ifsc"])


def test_students_attend_schools_that_offer_their_class(
    students: list[dict[str, Any]], schools: dict[str, dict[str, Any]]
) -> None:
    for s in students:
        school = schools[s["udise_code"]]
        lo, hi = school["classes"]
        assert lo <= s["class"] <= hi
        assert s["school_name"] == school["name"]


def test_minority_follows_religion(students: list[dict[str, Any]]) -> None:
    for s in students:
        assert s["minority"] == (s["religion"] not in {"Hindu", "Other"})


def test_population_shares_are_plausible(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    seed_database(path, students=5000, schools=50)
    docs = _docs(path, "students")
    share = Counter[str]()
    for s in docs:
        share["minority"] += s["minority"]
        share["disability"] += s["disability"]
        share["enrolled"] += s["enrolment_status"] == "enrolled"
    assert 0.23 < share["minority"] / len(docs) < 0.31
    assert 0.01 < share["disability"] / len(docs) < 0.03
    assert 0.9 < share["enrolled"] / len(docs) < 1.0


def test_udise_codes_are_state_19_with_known_districts(
    schools: dict[str, dict[str, Any]],
) -> None:
    for code, school in schools.items():
        assert is_valid_udise(code)
        district, blocks = DISTRICTS[int(code[2:4]) - 1]
        assert school["district"] == district
        assert school["block"] == blocks[int(code[4:6]) - 1]


def test_teachers_have_employee_ids_of_their_schools(
    seeded_db: Path, schools: dict[str, dict[str, Any]]
) -> None:
    teachers = _docs(seeded_db, "teachers")
    assert {t["udise_code"] for t in teachers} == set(schools)
    assert all(re.fullmatch(r"WBT\d{7}", t["employee_id"]) for t in teachers)


def test_sample_students_matches_every_criterion(seeded_db: Path) -> None:
    picked = sample_students(
        seeded_db, gender="F", min_age=13, max_age=18, classes=range(8, 13), limit=5
    )
    assert len(picked) == 5
    for s in picked:
        assert s["gender"] == "F"
        assert 13 <= age_on(s["date_of_birth"]) <= 18
        assert 8 <= s["class"] <= 12
        assert s["enrolment_status"] == "enrolled"


def test_sample_students_is_deterministic(seeded_db: Path) -> None:
    first = sample_students(seeded_db, minority=True, limit=3)
    assert first == sample_students(seeded_db, minority=True, limit=3)
    assert [s["student_id"] for s in first] == sorted(s["student_id"] for s in first)


def test_sample_students_can_pick_students_not_enrolled(seeded_db: Path) -> None:
    picked = sample_students(seeded_db, enrolled=False, limit=50)
    assert picked
    assert all(s["enrolment_status"] != "enrolled" for s in picked)


def test_sample_students_treats_criteria_as_values_not_sql(seeded_db: Path) -> None:
    assert sample_students(seeded_db, gender="F' OR '1'='1") == []
    assert sample_students(seeded_db, classes=[]) == []


@pytest.mark.parametrize("with_account", [True, False])
def test_sample_students_by_bank_account(seeded_db: Path, with_account: bool) -> None:
    picked = sample_students(seeded_db, with_bank_account=with_account, limit=20)
    assert picked
    assert all((s["bank_account"] is not None) is with_account for s in picked)


def test_roster_sizes_count_enrolled_students_of_a_class(
    seeded_db: Path, students: list[dict[str, Any]]
) -> None:
    sizes = roster_sizes(seeded_db, klass=9, limit=3)
    assert 0 < len(sizes) <= 3
    for udise_code, size in sizes.items():
        expected = sum(
            1
            for s in students
            if (s["udise_code"], s["class"], s["enrolment_status"])
            == (udise_code, 9, "enrolled")
        )
        assert size == expected
