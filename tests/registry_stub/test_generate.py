"""The generator of schools, teachers and students, row by row from one seeded draw."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

import pytest

from registry_stub import tables
from registry_stub.generate import (
    LAST_EXAM_YEAR,
    YEAR_START,
    School,
    StudentMaker,
    make_schools,
    make_teachers,
    nominal_class,
)
from registry_stub.ids import is_valid_udise
from registry_stub.seed import age_on

SCHOOLS, STUDENTS = 60, 4000


@pytest.fixture(scope="module")
def schools() -> list[School]:
    return make_schools(random.Random(11), SCHOOLS)


@pytest.fixture(scope="module")
def made(schools: list[School]) -> tuple[StudentMaker, list[dict[str, Any]]]:
    """A maker after ``STUDENTS`` students, and those students in order."""
    maker = StudentMaker(random.Random(12), schools)
    return maker, [maker.make() for _ in range(STUDENTS)]


@pytest.fixture(scope="module")
def students(
    made: tuple[StudentMaker, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    return made[1]


def admission_year(student: dict[str, Any]) -> int:
    return int(student["student_id"][2:6])


# -- ages and classes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "klass"), [(0, 0), (4, 0), (5, 0), (6, 1), (10, 5), (17, 12), (18, 12)]
)
def test_nominal_class_starts_at_five_and_stops_at_twelve(age: int, klass: int) -> None:
    assert nominal_class(age) == klass


def test_a_student_is_exactly_the_drawn_age_on_the_first_day_of_the_year(
    students: list[dict[str, Any]],
) -> None:
    """The admission year in the id was computed from that age."""
    for s in students:
        age = age_on(s["date_of_birth"], YEAR_START)
        assert 4 <= age <= 18
        assert admission_year(s) == YEAR_START.year - max(0, age - 5)


# -- schools ---------------------------------------------------------------------------


def test_the_first_two_schools_are_a_primary_and_a_higher_secondary(
    schools: list[School],
) -> None:
    first, second = schools[0], schools[1]

    assert first.doc["classes"] == [0, 4]
    assert second.doc["classes"] == [5, 12]
    assert not second.girls_only


def test_schools_take_the_districts_in_turn(schools: list[School]) -> None:
    for index, school in enumerate(schools):
        district_no = index % len(tables.DISTRICTS) + 1
        district, blocks = tables.DISTRICTS[district_no - 1]
        assert school.udise_code[2:4] == f"{district_no:02d}"
        assert school.doc["district"] == district
        assert school.doc["block"] == blocks[int(school.udise_code[4:6]) - 1]


def test_udise_codes_are_valid_and_unique() -> None:
    """Many schools in a few villages still get codes of their own."""
    many = make_schools(random.Random(3), 2000)
    codes = [school.udise_code for school in many]

    assert all(is_valid_udise(code) for code in codes)
    assert len(set(codes)) == len(codes)


def test_a_second_school_of_one_name_is_numbered() -> None:
    many = make_schools(random.Random(3), 2000)
    names = Counter(school.doc["name"] for school in many)

    assert names.most_common(1)[0][1] == 1
    assert any(" No. 2 " in name for name in names)


def test_the_same_seed_gives_the_same_schools() -> None:
    first = make_schools(random.Random(5), 30)
    again = make_schools(random.Random(5), 30)

    assert [s.doc for s in first] == [s.doc for s in again]


def test_only_private_kinds_are_managed_privately(schools: list[School]) -> None:
    private = {tuple(k.classes) for k, _ in tables.SCHOOL_KINDS if k.private}
    for school in schools:
        management = school.doc["management"]
        assert management in ("government", "aided", "private")
        if management == "private":
            assert tuple(school.doc["classes"]) in private


# -- teachers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teachers(schools: list[School]) -> list[dict[str, Any]]:
    return make_teachers(random.Random(13), schools)


def test_employee_ids_count_up_from_one_million_and_one(
    teachers: list[dict[str, Any]],
) -> None:
    expected = [f"WBT{1_000_001 + n:07d}" for n in range(len(teachers))]
    assert [t["employee_id"] for t in teachers] == expected


def test_each_school_has_one_head_first_and_enough_staff(
    schools: list[School], teachers: list[dict[str, Any]]
) -> None:
    by_school: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for teacher in teachers:
        by_school[teacher["udise_code"]].append(teacher)
    heads = {"Head Teacher", "Headmaster", "Headmistress"}

    for school in schools:
        staff = by_school[school.udise_code]
        primary = school.doc["classes"][1] <= 4
        assert (2 <= len(staff) <= 5) if primary else (6 <= len(staff) <= 20)
        assert staff[0]["designation"] in heads
        assert not any(t["designation"] in heads for t in staff[1:])


def test_a_primary_head_is_a_head_teacher_who_teaches_everything(
    schools: list[School], teachers: list[dict[str, Any]]
) -> None:
    primary = {s.udise_code for s in schools if s.doc["classes"][1] <= 4}
    assert primary
    for teacher in teachers:
        if teacher["udise_code"] in primary:
            assert teacher["subject"] == "All subjects"
            assert teacher["designation"] != "Headmaster"


def test_a_girls_school_is_staffed_by_women() -> None:
    school = School({"udise_code": "19010101001", "classes": [5, 12]}, girls_only=True)
    staff = make_teachers(random.Random(1), [school] * 20)
    female = {en for en, _ in tables.GENERAL_FEMALE + tables.MUSLIM_FEMALE}

    assert {t["designation"] for t in staff if t["designation"].startswith("Head")} == {
        "Headmistress"
    }
    assert all(t["name"]["en"].split()[0] in female for t in staff)


# -- students --------------------------------------------------------------------------


def test_no_boy_attends_a_girls_school(
    schools: list[School], students: list[dict[str, Any]]
) -> None:
    girls_only = {s.udise_code for s in schools if s.girls_only}
    assert girls_only, "the fixture should hold a girls' school"
    admitted = Counter(s["gender"] for s in students if s["udise_code"] in girls_only)

    assert admitted["F"] > 0
    assert set(admitted) == {"F"}


def test_serials_run_from_one_in_each_admission_year(
    made: tuple[StudentMaker, list[dict[str, Any]]],
) -> None:
    maker, students = made
    by_year: dict[int, list[int]] = defaultdict(list)
    for s in students:
        by_year[admission_year(s)].append(int(s["student_id"][6:13]))

    for year, serials in by_year.items():
        assert serials == list(range(1, len(serials) + 1)), year
    assert maker.serials == {year: len(s) for year, s in by_year.items()}


def test_the_serials_handed_out_are_a_copy(
    made: tuple[StudentMaker, list[dict[str, Any]]],
) -> None:
    maker, _ = made
    maker.serials.clear()

    assert sum(maker.serials.values()) == STUDENTS


def test_a_passed_out_student_is_eighteen_in_class_twelve(
    students: list[dict[str, Any]],
) -> None:
    passed = [s for s in students if s["enrolment_status"] == "passed_out"]

    assert passed
    for s in passed:
        assert (age_on(s["date_of_birth"], YEAR_START), s["class"]) == (18, 12)


def test_the_last_exam_is_this_class_after_a_fail_and_the_one_before_after_a_pass(
    students: list[dict[str, Any]],
) -> None:
    results: Counter[str] = Counter()
    for s in students:
        exam = s["last_exam"]
        if s["class"] < 2:
            assert exam is None
            continue
        results[exam["result"]] += 1
        assert exam["year"] == LAST_EXAM_YEAR
        if exam["result"] == "fail":
            assert exam["class"] == s["class"]
            assert exam["percentage"] < 33
        else:
            assert exam["class"] == s["class"] - 1
            assert 35 <= exam["percentage"] <= 99
    assert results["fail"] > 0
    assert results["pass"] > 0


def test_a_student_who_failed_is_behind_the_nominal_class(
    students: list[dict[str, Any]],
) -> None:
    for s in students:
        if s["last_exam"] and s["last_exam"]["result"] == "fail":
            age = age_on(s["date_of_birth"], YEAR_START)
            assert s["class"] < nominal_class(age)


def test_muslim_students_are_general_or_obc_a(students: list[dict[str, Any]]) -> None:
    categories = {s["social_category"] for s in students if s["religion"] == "Muslim"}
    assert categories == {"GEN", "OBC-A"}


def test_a_muslim_student_has_a_name_of_the_muslim_pools(
    students: list[dict[str, Any]],
) -> None:
    surnames = {en for en, _ in tables.MUSLIM_SURNAMES}
    for s in students:
        if s["religion"] == "Muslim":
            assert s["name"]["en"].split()[-1] in surnames


def test_the_bengali_name_spells_the_same_words(
    students: list[dict[str, Any]],
) -> None:
    spelling = dict(
        tables.GENERAL_MALE
        + tables.GENERAL_FEMALE
        + tables.GENERAL_SURNAMES
        + tables.MUSLIM_MALE
        + tables.MUSLIM_FEMALE
        + tables.MUSLIM_SURNAMES
    )
    for s in students[:500]:
        words = s["name"]["en"].split()
        assert s["name"]["bn"] == " ".join(spelling[w] for w in words)


def test_a_guardian_has_an_indian_mobile_number(
    students: list[dict[str, Any]],
) -> None:
    for s in students:
        phone = s["guardian"]["phone"]
        assert phone[:3] == "+91"
        assert phone[3] in "6789"
        assert len(phone) == 13
        assert phone[3:].isdigit()


def test_a_bank_account_is_held_in_the_students_name(
    students: list[dict[str, Any]],
) -> None:
    accounts = [s for s in students if s["bank_account"] is not None]
    assert accounts
    for s in accounts:
        assert s["bank_account"]["holder_name"] == s["name"]["en"]
        assert s["bank_account"]["ifsc"][:4] in tables.IFSC_BANKS
