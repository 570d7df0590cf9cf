"""Microseconds per policy decision: access, purpose, subject, consent and release.

Run: ``.venv/bin/python bench/bench_policies.py``. Uses the deployment's own
``config/`` and a throwaway consent store of 10,000 grants in a temporary directory;
no Redis, no network. Each figure is the best of a few rounds.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from stdnum import verhoeff

from gateway.identifiers import ClientId, ServiceId
from policies import Policies, check_consent, check_purpose, load_policies, subject_of
from policies.consent import ConsentStore, grant_many_sync

CONFIG = Path(__file__).resolve().parents[1] / "config"
STUDENTS = ServiceId.parse("WB/GOV/SED/banglarshiksha/students")
KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")
PURPOSE = "kanyashree-eligibility"
GRANTS = 10_000


def student_id(serial: int) -> str:
    digits = f"2019{serial:07d}"
    return f"WB{digits}{verhoeff.calc_check_digit(digits)}"


BODY = {"student_id": student_id(4242), "date_of_birth": "2012-03-05"}
RESPONSE = {
    "student_id": BODY["student_id"],
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


def per_call_us(call: Callable[[], object], rounds: int = 100_000) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(rounds):
            call()
        best = min(best, (time.perf_counter_ns() - start) / rounds / 1000)
    return best


async def per_await_us(call: Callable[[], Awaitable[object]], rounds: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        for _ in range(rounds):
            await call()
        best = min(best, (time.perf_counter_ns() - start) / rounds / 1000)
    return best


def decide(policies: Policies) -> tuple[Any, str | None]:
    """Steps 4 and 6 without consent: the purpose and the subject."""
    found = policies.access.match(KANYASHREE, STUDENTS, "POST", "/verify-enrolment")
    purpose = check_purpose(found.rule, PURPOSE, policies.purposes)
    if purpose is None:
        raise SystemExit("the rule has no purpose")
    return purpose, subject_of(purpose, found.params, BODY)


def seed(path: Path, policies: Policies) -> None:
    now = time.time()
    grant_many_sync(
        path,
        (
            {
                "subject": student_id(n),
                "client": KANYASHREE,
                "purpose": policies.purposes.get(PURPOSE),
                "granted_by_role": "guardian",
                "granted_by_name": "Guardian",
                "subject_is_minor": True,
                "valid_from": now - 60,
                "valid_until": now + 86400,
                "actor": "bench",
            }
            for n in range(1, GRANTS + 1)
        ),
    )


async def consent_figures(path: Path, policies: Policies) -> None:
    store = await ConsentStore.open(path)

    async def full() -> object:
        purpose, subject = decide(policies)
        return await check_consent(store, purpose, subject, KANYASHREE, time.time())

    figure = await per_await_us(full, 5000)
    await store.close()
    print(f"+ consent lookup    {figure:7.2f} us  (SQLite, {GRANTS} grants, no hop)")


def main() -> None:
    policies = load_policies(CONFIG)
    purpose, _ = decide(policies)
    access = policies.access

    def check() -> object:
        return access.check(KANYASHREE, STUDENTS, "POST", "/verify-enrolment")

    print(f"access check        {per_call_us(check):7.2f} us")
    print(f"+ purpose, subject  {per_call_us(lambda: decide(policies)):7.2f} us")
    release = purpose.release
    print(f"release             {per_call_us(lambda: release.apply(RESPONSE)):7.2f} us")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "consent.db"
        seed(path, policies)
        anyio.run(consent_figures, path, policies)


if __name__ == "__main__":
    main()
