"""Deterministic synthetic schools, teachers and students for the registry.

Everything comes from one seeded :class:`random.Random` and the fixed tables of
:mod:`registry_stub.tables`, so one seed gives the same registry on every machine.
The per-row work is a few dozen draws and one dictionary: a million students take
well under a minute.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from registry_stub import tables
from registry_stub.ids import TEST_AADHAAR_PREFIX, make_aadhaar, make_student_id

ACADEMIC_YEAR: Final = "2026-27"
#: Ages are counted on the first day of the academic year.
YEAR_START: Final = date(2026, 4, 1)
LAST_EXAM_YEAR: Final = 2025
#: A child starts pre-primary (class 0) at five and class 1 at six.
SCHOOL_START_AGE: Final = 5

RELIGIONS: Final = ("Hindu", "Muslim", "Christian", "Buddhist", "Sikh", "Jain", "Other")
#: Weights per mille; the minorities (all but Hindu and Other) make about 27 %.
RELIGION_WEIGHTS: Final = (723, 245, 11, 9, 2, 2, 8)
MINORITY_RELIGIONS: Final = frozenset(
    {"Muslim", "Christian", "Buddhist", "Sikh", "Jain"}
)
CATEGORIES: Final = ("GEN", "SC", "ST", "OBC-A", "OBC-B")
CATEGORY_WEIGHTS: Final = (45, 28, 7, 5, 15)

Doc = dict[str, Any]


def nominal_class(age: int) -> int:
    """The class a child of this age attends without delay (0-12)."""
    return min(12, max(0, age - SCHOOL_START_AGE))


@dataclass(frozen=True, slots=True)
class School:
    """A generated school: its document and what the student generator needs."""

    doc: Doc
    girls_only: bool

    @property
    def udise_code(self) -> str:
        return str(self.doc["udise_code"])


def make_schools(rng: random.Random, count: int) -> list[School]:
    """``count`` schools spread over the 23 districts, with unique UDISE codes.

    The first is a primary and the second a co-educational higher secondary school,
    so every class and gender has a school.
    """
    kinds = [k for k, _ in tables.SCHOOL_KINDS]
    weights = [w for _, w in tables.SCHOOL_KINDS]
    codes: Counter[str] = Counter()
    names: Counter[str] = Counter()
    schools = []
    for i in range(count):
        if i < 2:
            kind = (tables.PRIMARY, tables.HIGHER_SECONDARY)[i]
        else:
            kind = rng.choices(kinds, weights)[0]
        schools.append(_school(rng, i, kind, codes, names))
    return schools


def _school(
    rng: random.Random,
    index: int,
    kind: tables.SchoolKind,
    codes: Counter[str],
    names: Counter[str],
) -> School:
    district_no = index % len(tables.DISTRICTS) + 1
    district, blocks = tables.DISTRICTS[district_no - 1]
    block_no = rng.randrange(len(blocks)) + 1
    village = f"19{district_no:02d}{block_no:02d}{rng.randint(1, 99):02d}"
    codes[village] += 1

    place = blocks[block_no - 1]
    name = f"{place} {rng.choice(kind.suffixes)}"
    names[name] += 1
    if names[name] > 1:
        name = name.replace(place, f"{place} No. {names[name]}", 1)

    if kind.private:
        management = "private"
    else:
        management = "government" if rng.random() < 0.65 else "aided"
    doc = {
        "udise_code": f"{village}{codes[village]:03d}",
        "name": name,
        "district": district,
        "block": place,
        "management": management,
        "classes": list(kind.classes),
    }
    return School(doc, kind.girls_only)


def make_teachers(rng: random.Random, schools: list[School]) -> list[Doc]:
    """A head and assistant teachers for every school, employee ids ``WBT`` + 7."""
    teachers: list[Doc] = []
    for school in schools:
        hi = school.doc["classes"][1]
        count = rng.randint(2, 5) if hi <= 4 else rng.randint(6, 20)
        for n in range(count):
            teachers.append(_teacher(rng, school, len(teachers) + 1, n == 0))
    return teachers


def _teacher(rng: random.Random, school: School, number: int, head: bool) -> Doc:
    female = school.girls_only or rng.random() < 0.45
    firsts, surnames = _name_pools(rng.random() < 0.2, female)
    en, bn = _full_name(rng.choice(firsts), rng.choice(surnames))
    primary = school.doc["classes"][1] <= 4
    if head:
        designation = "Head Teacher" if primary else _head_title(female)
    else:
        designation = "Para Teacher" if rng.random() < 0.1 else "Assistant Teacher"
    joined = date.fromordinal(rng.randint(_JOIN_FIRST, _JOIN_LAST))
    return {
        "employee_id": f"WBT{1_000_000 + number:07d}",
        "name": {"en": en, "bn": bn},
        "designation": designation,
        "subject": "All subjects" if primary else rng.choice(tables.SECONDARY_SUBJECTS),
        "date_of_joining": joined.isoformat(),
        "udise_code": school.udise_code,
    }


_JOIN_FIRST: Final = date(1995, 1, 1).toordinal()
_JOIN_LAST: Final = date(2025, 12, 31).toordinal()


def _head_title(female: bool) -> str:
    return "Headmistress" if female else "Headmaster"


class StudentMaker:
    """Makes students one at a time, numbering admissions per year as it goes."""

    def __init__(self, rng: random.Random, schools: list[School]) -> None:
        self._rng = rng
        self._serials: Counter[int] = Counter()
        self._for_girls = [_offering(schools, c, girls=True) for c in range(13)]
        self._for_others = [_offering(schools, c, girls=False) for c in range(13)]

    @property
    def serials(self) -> dict[int, int]:
        """The last serial given out per admission year."""
        return dict(self._serials)

    def make(self) -> Doc:
        """One student of the academic year, with every canonical field."""
        rng = self._rng
        age = rng.randint(4, 18)
        gender = _gender(rng.random())
        religion = rng.choices(RELIGIONS, RELIGION_WEIGHTS)[0]
        muslim = religion == "Muslim"
        female_name = gender == "F" or (gender == "T" and rng.random() < 0.5)
        firsts, surnames = _name_pools(muslim, female_name)
        family = rng.choice(surnames)
        en, bn = _full_name(rng.choice(firsts), family)
        behind = _years_behind(rng.random())
        class_ = max(0, nominal_class(age) - behind)
        school = rng.choice(
            (self._for_girls if gender == "F" else self._for_others)[class_]
        )
        admitted = YEAR_START.year - max(0, age - SCHOOL_START_AGE)
        self._serials[admitted] += 1
        return {
            "student_id": make_student_id(admitted, self._serials[admitted]),
            "name": {"en": en, "bn": bn},
            "date_of_birth": _birth_date(rng, age),
            "gender": gender,
            "class": class_,
            "section": rng.choice("AAABBC"),
            "udise_code": school.udise_code,
            "school_name": school.doc["name"],
            "academic_year": ACADEMIC_YEAR,
            "enrolment_status": _status(rng.random(), age, class_),
            "guardian": _guardian(rng, muslim, family),
            "social_category": _category(rng, muslim),
            "minority": religion in MINORITY_RELIGIONS,
            "religion": religion,
            "disability": rng.random() < 0.02,
            "bank_account": _bank_account(rng, en) if class_ >= 5 else None,
            "aadhaar": make_aadhaar(f"{TEST_AADHAAR_PREFIX}{rng.randrange(10**7):07d}"),
            "last_exam": _last_exam(rng, class_, behind),
        }


def _offering(schools: list[School], class_: int, *, girls: bool) -> list[School]:
    return [
        s
        for s in schools
        if s.doc["classes"][0] <= class_ <= s.doc["classes"][1]
        and (girls or not s.girls_only)
    ]


def _gender(draw: float) -> str:
    if draw < 0.49:
        return "F"
    return "T" if draw > 0.999 else "M"


def _years_behind(draw: float) -> int:
    if draw < 0.85:
        return 0
    return 1 if draw < 0.97 else 2


def _status(draw: float, age: int, class_: int) -> str:
    if age == 18 and class_ == 12 and draw < 0.5:
        return "passed_out"
    if draw > 0.985:
        return "transferred_out"
    return "left" if draw > 0.97 else "enrolled"


def _name_pools(
    muslim: bool, female: bool
) -> tuple[tuple[tables.NamePair, ...], tuple[tables.NamePair, ...]]:
    if muslim:
        first = tables.MUSLIM_FEMALE if female else tables.MUSLIM_MALE
        return first, tables.MUSLIM_SURNAMES
    first = tables.GENERAL_FEMALE if female else tables.GENERAL_MALE
    return first, tables.GENERAL_SURNAMES


def _full_name(given: tables.NamePair, family: tables.NamePair) -> tables.NamePair:
    return f"{given[0]} {family[0]}", f"{given[1]} {family[1]}"


def _birth_date(rng: random.Random, age: int) -> str:
    # Born within the year before the age's birthday-cutoff, so the age on
    # YEAR_START is exactly ``age`` (364 days keeps clear of leap-year edges).
    cutoff = date(YEAR_START.year - age, YEAR_START.month, YEAR_START.day)
    return date.fromordinal(cutoff.toordinal() - 1 - rng.randrange(364)).isoformat()


def _guardian(rng: random.Random, muslim: bool, family: tables.NamePair) -> Doc:
    relation = rng.choices(("father", "mother", "guardian"), (60, 30, 10))[0]
    firsts, surnames = _name_pools(muslim, relation == "mother")
    if relation == "guardian":
        family = rng.choice(surnames)
    return {
        "name": _full_name(rng.choice(firsts), family)[0],
        "relation": relation,
        "phone": f"+91{rng.randint(6, 9)}{rng.randrange(10**9):09d}",
    }


def _category(rng: random.Random, muslim: bool) -> str:
    if muslim:
        return "OBC-A" if rng.random() < 0.6 else "GEN"
    return rng.choices(CATEGORIES, CATEGORY_WEIGHTS)[0]


def _bank_account(rng: random.Random, holder: str) -> Doc:
    length = rng.randint(9, 18)
    return {
        "account_number": str(rng.randrange(10 ** (length - 1), 10**length)),
        "ifsc": f"{rng.choice(tables.IFSC_BANKS)}0{rng.randrange(10**6):06d}",
        "holder_name": holder,
    }


def _last_exam(rng: random.Random, class_: int, behind: int) -> Doc | None:
    # Pre-primary and class 1 have had no examination yet.
    if class_ < 2:
        return None
    if behind and rng.random() < 0.5:
        failed = round(rng.uniform(10.0, 32.9), 1)
        return {
            "year": LAST_EXAM_YEAR,
            "class": class_,
            "result": "fail",
            "percentage": failed,
        }
    passed = round(rng.uniform(35.0, 99.0), 1)
    return {
        "year": LAST_EXAM_YEAR,
        "class": class_ - 1,
        "result": "pass",
        "percentage": passed,
    }
