"""The demo's Aikyashree traffic: every case answered as the registry's record says."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.client import Answer
from gateway.demo import aikyashree
from gateway.demo.consents import node_keyring, record_consents, revoke_consents
from gateway.demo.traffic import run_all
from registry_stub.seed import sample_students
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio


def _answer(body: bytes) -> Answer:
    return Answer(200, httpx.Headers(), body, 1.0, True)


@pytest.fixture
def plan(harness: Harness) -> aikyashree.Plan:
    """One applicant of every case, with consents recorded as the demo does."""
    full = aikyashree.plan(harness.demo.registry_db, random.Random(5))
    one_each: dict[str, aikyashree.Applicant] = {}
    for applicant in full.applicants:
        case = aikyashree.expectation(*applicant).case
        one_each.setdefault(case, applicant)
    return aikyashree.Plan(list(one_each.values()), full.revoked_in_run)


async def test_every_case_is_answered_as_expected(
    harness: Harness, plan: aikyashree.Plan
) -> None:
    record_consents(
        harness.demo,
        [(sid, doc, state) for sid, doc, state, _dob in plan.consented()],
        client=aikyashree.AIKYASHREE,
        purpose_id=aikyashree.PURPOSE,
    )
    client = harness.client(aikyashree.AIKYASHREE)

    outcomes = await run_all(aikyashree.jobs(client, plan.applicants), concurrency=1)

    assert sorted(o.case for o in outcomes) == sorted(
        [
            "birth date none",
            "birth date wrong",
            "consent none",
            "consent revoked",
            "minority, last exam",
            "minority, no exam yet",
            "not a minority",
            "not enrolled",
            "unknown id",
        ]
    )
    assert [o.case for o in outcomes if not o.as_expected] == []
    assert Counter(o.status for o in outcomes) == {200: 7, 403: 2}


async def test_a_revocation_refuses_the_very_next_request(
    harness: Harness, plan: aikyashree.Plan
) -> None:
    applicant = plan.revoked_in_run
    granted = record_consents(
        harness.demo,
        [applicant[:3]],
        client=aikyashree.AIKYASHREE,
        purpose_id=aikyashree.PURPOSE,
    )
    keyring = node_keyring(harness.demo)

    async def revoke() -> None:
        await revoke_consents(harness.demo, [granted[applicant[0]]], keyring)

    client = harness.client(aikyashree.AIKYASHREE)
    jobs = aikyashree.revocation_jobs(client, applicant, revoke)
    outcomes = await run_all(jobs, concurrency=1)

    assert [(o.case, o.status, o.as_expected) for o in outcomes] == [
        ("before revocation", 200, True),
        ("after revocation", 403, True),
    ]


def test_an_answer_naming_the_religion_is_not_as_expected(registry_db: Path) -> None:
    (student,) = sample_students(registry_db, minority=True, classes=[9], limit=1)
    expected = aikyashree.expectation(
        student["student_id"], student, "active", aikyashree.DOB_RIGHT
    )
    exam = aikyashree.last_exam(student["last_exam"])
    right = {
        "studentUid": student["student_id"],
        "enrolled": "Y",
        "dobMatched": "Y",
        "studentName": student["name"]["en"],
        "minorityCommunity": "Y",
        "currentClass": 9,
        "schoolUdise": student["udise_code"],
        "schoolName": student["school_name"],
        "session": student["academic_year"],
        **({} if exam is None else {"lastExam": exam}),
    }
    leaked = {**right, "religion": student["religion"]}

    assert expected.check(_answer(orjson.dumps(right)))
    assert not expected.check(_answer(orjson.dumps(leaked)))
