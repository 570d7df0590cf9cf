"""Aikyashree traffic for the demo: minority students' enrolment and last examination.

The portal checks applicants with its own schema (``studentUid``, a DD-MM-YYYY
birth date); the node maps the request, checks the guardian's consent and releases
only the purpose's fields: whether the student belongs to a minority community,
never which one. Each answer is checked against the registry's own record. Some
applicants have no consent and one guardian revoked it before the run; another
revokes during the run, so that the same request is answered before and refused
after.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.client import Answer, DepartmentClient
from gateway.demo.traffic import STUDENTS, Call, Expectation
from gateway.identifiers import ClientId
from registry_stub.ids import make_student_id
from registry_stub.seed import sample_students

AIKYASHREE = ClientId("WB", "GOV", "MAME", "aikyashree")
PURPOSE = "aikyashree-scholarship"
#: Fields of the portal's answer; anything else (religion above all) is a leak.
ANSWER_FIELDS = frozenset(
    {
        "studentUid",
        "enrolled",
        "dobMatched",
        "studentName",
        "minorityCommunity",
        "currentClass",
        "schoolUdise",
        "schoolName",
        "session",
        "lastExam",
    }
)
#: The birth date an applicant gives: the true one, a wrong one, or none.
DOB_RIGHT, DOB_WRONG, DOB_NONE = "right", "wrong", "none"

#: (student id, registry record or None, consent state, birth date given).
Applicant = tuple[str, dict[str, Any] | None, str, str]

_POOL = 20_000


@dataclass(frozen=True)
class Plan:
    """The applicants checked at once, and one whose guardian revokes mid-run."""

    applicants: list[Applicant]
    revoked_in_run: Applicant

    def consented(self) -> list[Applicant]:
        """Every applicant a consent is recorded for before the node starts."""
        return [*self.applicants, self.revoked_in_run]


def plan(db: Path, rng: random.Random) -> Plan:
    """160 Aikyashree applicants, most of them enrolled minority students.

    A few give a wrong birth date or none; some are not of a minority community,
    no longer enrolled, or unknown. Ten have no consent and one guardian revoked
    it; one more applicant, with consent, is kept apart for the revocation during
    the run. Raises LookupError if the registry has too few students of a kind.
    """
    minority = _pick(rng, sample_students(db, minority=True, limit=_POOL), 126)
    others = _pick(rng, sample_students(db, minority=False, limit=_POOL), 15)
    gone = _pick(
        rng, sample_students(db, minority=True, enrolled=False, limit=_POOL), 10
    )
    during = minority.pop()
    chosen: list[tuple[str, dict[str, Any] | None]] = [
        (s["student_id"], s) for s in minority + others + gone
    ]
    chosen += [(_unknown_id(rng, i), None) for i in range(160 - len(chosen))]
    dobs = [DOB_RIGHT] * len(chosen)
    odd = rng.sample(range(len(minority)), 31)
    for index in odd[:10]:
        dobs[index] = DOB_WRONG
    for index in odd[10:20]:
        dobs[index] = DOB_NONE
    states = ["active"] * len(chosen)
    for index in odd[20:30]:
        states[index] = "none"
    states[odd[30]] = "revoked"
    batch = [
        (sid, doc, state, dob)
        for (sid, doc), state, dob in zip(chosen, states, dobs, strict=True)
    ]
    return Plan(batch, (during["student_id"], during, "active", DOB_RIGHT))


def jobs(
    client: DepartmentClient, applicants: list[Applicant]
) -> list[tuple[str, Expectation, Call]]:
    """One job per applicant, with the answer the registry's record implies."""
    return [
        (
            "aikyashree",
            expectation(student_id, student, consent, dob),
            _post(client, student_id, student, dob),
        )
        for student_id, student, consent, dob in applicants
    ]


def revocation_jobs(
    client: DepartmentClient,
    applicant: Applicant,
    revoke: Callable[[], Awaitable[None]],
) -> list[tuple[str, Expectation, Call]]:
    """Asked once with an active consent, then again after ``revoke`` withdrew it.

    The two jobs must run in order: the second revokes first, then asks.
    """
    student_id, student, consent, dob = applicant
    ask = _post(client, student_id, student, dob)

    async def revoke_then_ask() -> Answer:
        await revoke()
        return await ask()

    answered = expectation(student_id, student, consent, dob)
    before = Expectation("before revocation", answered.status, answered.check)
    return [
        ("aikyashree", before, ask),
        ("aikyashree", Expectation("after revocation", 403), revoke_then_ask),
    ]


def expectation(
    student_id: str, student: dict[str, Any] | None, consent: str, dob: str
) -> Expectation:
    """What the portal must be told about this applicant."""
    if consent != "active":
        return Expectation(f"consent {consent}", 403)
    if student is None or student["enrolment_status"] != "enrolled":
        case = "unknown id" if student is None else "not enrolled"
        return Expectation(case, 200, _not_enrolled(student_id))
    return Expectation(_case(student, dob), 200, _facts_match(student, dob))


def _case(student: dict[str, Any], dob: str) -> str:
    if not student["minority"]:
        return "not a minority"
    if dob != DOB_RIGHT:
        return f"birth date {dob}"
    if student["last_exam"] is None:
        return "minority, no exam yet"
    return "minority, last exam"


def _post(
    client: DepartmentClient, student_id: str, student: dict[str, Any] | None, dob: str
) -> Call:
    body: dict[str, Any] = {"studentUid": student_id}
    if dob != DOB_NONE:
        body["dateOfBirth"] = _claimed_dob(student, wrong=dob == DOB_WRONG)

    def call() -> Awaitable[Answer]:
        return client.call(
            "POST", STUDENTS, "/minority-enrolment", json=body, purpose=PURPOSE
        )

    return call


def _claimed_dob(student: dict[str, Any] | None, *, wrong: bool) -> str:
    if student is None:
        return "01-01-2012"
    year, month, day = student["date_of_birth"].split("-")
    if wrong:  # a day off, and still a date that exists
        day = f"{int(day) + 1 if int(day) < 28 else int(day) - 1:02d}"
    return f"{day}-{month}-{year}"


def _not_enrolled(student_id: str) -> Callable[[Answer], bool]:
    def check(answer: Answer) -> bool:
        doc = answer.json()
        return (
            doc.get("studentUid") == student_id
            and doc.get("enrolled") == "N"
            and set(doc) <= ANSWER_FIELDS
        )

    return check


def _facts_match(student: dict[str, Any], dob: str) -> Callable[[Answer], bool]:
    """The answer carries the record's facts in the portal's shape, and no more."""
    matched = {DOB_RIGHT: "Y", DOB_WRONG: "N", DOB_NONE: None}[dob]
    wanted = {
        "studentUid": student["student_id"],
        "enrolled": "Y",
        "dobMatched": matched,
        "studentName": student["name"]["en"],
        "minorityCommunity": "Y" if student["minority"] else "N",
        "currentClass": student["class"],
        "schoolUdise": student["udise_code"],
        "schoolName": student["school_name"],
        "session": student["academic_year"],
    }
    exam = last_exam(student.get("last_exam"))
    if exam is not None:
        wanted["lastExam"] = exam

    def check(answer: Answer) -> bool:
        return bool(answer.json() == wanted)

    return check


def last_exam(exam: dict[str, Any] | None) -> dict[str, Any] | None:
    """The registry's last examination as the portal reads it."""
    if exam is None:
        return None
    out = {
        "year": exam["year"],
        "class": exam["class"],
        "result": {"pass": "PASSED", "fail": "FAILED"}[exam["result"]],
    }
    if exam.get("percentage") is not None:
        out["marksPercent"] = f"{exam['percentage']:.2f}"
    return out


def _pick(rng: random.Random, found: list[dict[str, Any]], count: int) -> list[Any]:
    if len(found) < count:
        raise LookupError(f"the registry has only {len(found)} students of a kind")
    return rng.sample(found, count)


def _unknown_id(rng: random.Random, index: int) -> str:
    return make_student_id(2019, 8_000_000 + rng.randrange(900_000) + index)
