"""Guardians' consents for the demo's Kanyashree applicants.

Every applicant whose state is ``active`` or ``revoked`` gets a consent granted by a
guardian for the current version of ``kanyashree-eligibility``; the revoked one is
then revoked through the store, so its revision history shows both steps.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.demo.setup import DemoDeployment
from gateway.demo.traffic import KANYASHREE
from policies import load_policies
from policies.consent import ConsentStore, grant_many_sync

PURPOSE = "kanyashree-eligibility"


def record_consents(
    demo: DemoDeployment,
    applicants: list[tuple[str, dict[str, Any] | None, str]],
) -> None:
    purpose = load_policies(demo.config_dir).purposes.get(PURPOSE)
    if purpose is None:
        raise LookupError(f"purpose {PURPOSE} is not configured")
    now = time.time()
    grants = [
        {
            "subject": student_id,
            "client": KANYASHREE,
            "purpose": purpose,
            "granted_by_role": "guardian",
            "granted_by_name": _guardian(student),
            "subject_is_minor": True,
            "valid_from": now - 86_400,
            "valid_until": now + 365 * 86_400,
            "actor": "kanyashree-portal",
        }
        for student_id, student, state in applicants
        if state in ("active", "revoked")
    ]
    path = demo.state_dir / "consent.db"
    records = grant_many_sync(path, grants)
    revoked = {sid for sid, _doc, state in applicants if state == "revoked"}
    to_revoke = [r.consent_id for r in records if r.subject in revoked]
    asyncio.run(_revoke(demo, to_revoke))


async def _revoke(demo: DemoDeployment, consent_ids: list[str]) -> None:
    store = await ConsentStore.open(demo.state_dir / "consent.db")
    try:
        for consent_id in consent_ids:
            await store.revoke(consent_id, actor="guardian")
    finally:
        await store.close()


def _guardian(student: dict[str, Any] | None) -> str:
    if student is None:
        return "Guardian of applicant"
    return str(student.get("guardian", {}).get("name") or "Guardian")
