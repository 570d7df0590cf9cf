"""Departmental traffic for the demo, each request with the answer it must get.

Kanyashree checks applicants (eligible girls, boys, girls outside the age window,
students no longer enrolled, unknown ids, applicants without consent and one whose
guardian revoked it), SaboojSathi pulls class IX rosters, iFMS checks bank accounts
(some wrong), and a few hostile requests must be refused; Aikyashree and iOSMS
have modules of their own. Expectations come from the registry's own data, read
directly, so the demo checks the mediator against ground truth rather than against
itself.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.client import Answer, DepartmentClient, new_client_key
from gateway.identifiers import ClientId, ServiceId

STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "banglarshiksha"), "students")
KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
SABOOJSATHI = ClientId("WB", "GOV", "BCW", "saboojsathi")
IFMS = ClientId("WB", "GOV", "FIN", "ifms")
#: The scheme year's reference date for Kanyashree's age window (13 to 18).
REFERENCE_DATE = dt.date(2027, 3, 31)
ROMAN = {8: "VIII", 9: "IX", 10: "X", 11: "XI", 12: "XII"}


@dataclass(frozen=True, slots=True)
class Outcome:
    client: str
    case: str
    status: int
    reason: str
    elapsed_ms: float
    as_expected: bool
    signature_ok: bool


@dataclass
class Expectation:
    case: str
    status: int
    check: Callable[[Answer], bool] = field(default=lambda _answer: True)


Call = Callable[[], Awaitable[Answer]]


async def run_all(
    jobs: list[tuple[str, Expectation, Call]], concurrency: int = 16
) -> list[Outcome]:
    """Run the calls with bounded concurrency and judge each answer."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: str, expected: Expectation, call: Call) -> Outcome:
        async with gate:
            answer = await call()
        ok = answer.status == expected.status and expected.check(answer)
        reason = (answer.error_type or "ok").rsplit(".", 1)[-1]
        return Outcome(
            client,
            expected.case,
            answer.status,
            reason,
            answer.elapsed_ms,
            ok,
            answer.signature_ok,
        )

    return list(await asyncio.gather(*(one(*job) for job in jobs)))


def age_on(date_of_birth: str, when: dt.date) -> int:
    born = dt.date.fromisoformat(date_of_birth)
    return when.year - born.year - ((when.month, when.day) < (born.month, born.day))


def kanyashree_eligible(student: dict[str, Any]) -> bool:
    return (
        student["enrolment_status"] == "enrolled"
        and student["gender"] == "F"
        and 8 <= student["class"] <= 12
        and 13 <= age_on(student["date_of_birth"], REFERENCE_DATE) <= 18
    )


def kanyashree_jobs(
    client: DepartmentClient,
    applicants: list[tuple[str, dict[str, Any] | None, str]],
) -> list[tuple[str, Expectation, Call]]:
    """One job per applicant: (student id, registry record or None, consent state)."""
    jobs: list[tuple[str, Expectation, Call]] = []
    for student_id, student, consent in applicants:
        expected = _kanyashree_expectation(student, consent)
        body = {
            "applicant": {"registry_uid": student_id, "dob": _dob(student)},
            "scheme_year": "2026-27",
        }
        jobs.append(("kanyashree", expected, _post(client, body)))
    return jobs


def _dob(student: dict[str, Any] | None) -> str:
    if student is None:
        return "01/01/2011"
    year, month, day = student["date_of_birth"].split("-")
    return f"{day}/{month}/{year}"


def _post(client: DepartmentClient, body: dict[str, Any]) -> Call:
    def call() -> Awaitable[Answer]:
        return client.call(
            "POST",
            STUDENTS,
            "/verify-enrolment",
            json=body,
            purpose="kanyashree-eligibility",
        )

    return call


def _kanyashree_expectation(
    student: dict[str, Any] | None, consent: str
) -> Expectation:
    if consent != "active":
        return Expectation(f"consent {consent}", 403)
    if student is None:
        return Expectation("unknown id", 200, lambda a: a.json()["is_enrolled"] == "N")
    if student["enrolment_status"] != "enrolled":
        return Expectation(
            "not enrolled", 200, lambda a: a.json()["is_enrolled"] == "N"
        )

    def facts_match(answer: Answer) -> bool:
        doc = answer.json()
        if doc.get("is_enrolled") != "Y" or doc.get("dob_verified") != "Y":
            return False
        if set(doc) & {"religion", "minority", "bank_account", "aadhaar", "guardian"}:
            return False
        klass = ROMAN.get(student["class"])
        return klass is None or doc.get("studying_in_class") == klass

    if student["gender"] != "F":
        return Expectation("boy", 200, facts_match)
    if not kanyashree_eligible(student):
        return Expectation("outside age or class", 200, facts_match)
    return Expectation("eligible", 200, facts_match)


def saboojsathi_jobs(
    client: DepartmentClient, rosters: dict[str, int]
) -> list[tuple[str, Expectation, Call]]:
    """One job per school: the roster's size must equal the registry's count."""
    jobs: list[tuple[str, Expectation, Call]] = []
    for udise, count in rosters.items():

        def check(answer: Answer, count: int = count) -> bool:
            doc = answer.json()
            rows = doc.get("beneficiaries", [])
            leaked = any(set(row) - _ROSTER_FIELDS for row in rows)
            return len(rows) == count and not leaked

        def call(udise: str = udise) -> Awaitable[Answer]:
            return client.call(
                "GET", STUDENTS, f"/roster/{udise}", purpose="saboojsathi-roster"
            )

        jobs.append(("saboojsathi", Expectation("class IX roster", 200, check), call))
    return jobs


_ROSTER_FIELDS = {"uid", "beneficiary_name", "gender", "section", "category", "dob"}


def ifms_jobs(
    client: DepartmentClient, beneficiaries: list[tuple[dict[str, Any], bool]]
) -> list[tuple[str, Expectation, Call]]:
    """One job per beneficiary: (registry record, whether its account is right)."""
    jobs: list[tuple[str, Expectation, Call]] = []
    for student, right in beneficiaries:
        account = student["bank_account"]["account_number"]
        if not right:
            account = _wrong_account(account)
        body = {
            "beneficiaryId": student["student_id"],
            "bankAccountNo": account,
            "ifscCode": student["bank_account"]["ifsc"],
        }
        want = "Y" if right else "N"

        def check(answer: Answer, want: str = want) -> bool:
            return bool(answer.json().get("accountValidated") == want)

        def call(body: dict[str, Any] = body) -> Awaitable[Answer]:
            return client.call(
                "POST",
                STUDENTS,
                "/beneficiary-check",
                json=body,
                purpose="ifms-beneficiary-check",
            )

        case = "account matches" if right else "wrong account"
        jobs.append(("ifms", Expectation(case, 200, check), call))
    return jobs


def _wrong_account(account: str) -> str:
    last = (int(account[-1]) + 1) % 10
    return account[:-1] + str(last)


def hostile_jobs(
    kanyashree: DepartmentClient,
    saboojsathi: DepartmentClient,
    make_client: Callable[[ClientId, Any], DepartmentClient],
    some_student: str,
) -> list[tuple[str, Expectation, Call]]:
    """Requests that must be refused, each for its own reason."""
    stranger_key, _ = new_client_key("stranger-1")
    stranger = make_client(ClientId("WB", "GOV", "XYZ", "stranger"), stranger_key)
    impostor_key, _ = new_client_key("kanyashree-demo-1")
    impostor = make_client(KANYASHREE, impostor_key)
    replayed = kanyashree.assertion()
    body = {"applicant": {"registry_uid": some_student, "dob": "01/01/2012"}}

    def verify(client: DepartmentClient, **kwargs: Any) -> Call:
        def call() -> Awaitable[Answer]:
            return client.call(
                "POST",
                STUDENTS,
                "/verify-enrolment",
                json=body,
                purpose="kanyashree-eligibility",
                **kwargs,
            )

        return call

    def outside_rights() -> Awaitable[Answer]:
        return kanyashree.call("GET", STUDENTS, f"/{some_student}")

    def no_purpose() -> Awaitable[Answer]:
        return saboojsathi.call("GET", STUDENTS, "/roster/19110900503")

    def dot_segments() -> Awaitable[Answer]:
        # Encoded: httpx would resolve a literal "/../" before sending it.
        return kanyashree.call(
            "POST", STUDENTS, "/verify-enrolment/%2e%2e/export", json=body
        )

    first_use = verify(kanyashree, token=replayed)
    second_use = verify(kanyashree, token=replayed)
    return [
        ("hostile", Expectation("unknown client", 401), verify(stranger)),
        ("hostile", Expectation("bad signature", 401), verify(impostor)),
        ("hostile", Expectation("outside access rights", 403), outside_rights),
        ("hostile", Expectation("no purpose declared", 403), no_purpose),
        ("hostile", Expectation("encoded dot-segments to /export", 403), dot_segments),
        ("hostile", Expectation("assertion first use", 200), first_use),
        ("hostile", Expectation("assertion replayed", 401), second_use),
    ]


def shuffled(jobs: list[Any], seed: int = 7) -> list[Any]:
    copy = list(jobs)
    random.Random(seed).shuffle(copy)  # noqa: S311 (demo order)
    return copy
