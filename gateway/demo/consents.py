"""Guardians' consents for the demo's applicants, signed as the node signs them.

Every applicant whose state is ``active`` or ``revoked`` gets a consent granted by a
guardian for the current version of the scheme's purpose; the revoked ones are then
revoked. Grants go through the consent store's own grant, in one transaction per
scheme, and every revision (grant and revocation) is hash-chained and signed with
the node's keyring, exactly as the consent API and ``mediator consent`` record them:
``mediator consent verify`` and the API's history verify a seeded consent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from gateway.demo.setup import DemoDeployment
from gateway.demo.traffic import KANYASHREE
from gateway.identifiers import ClientId
from gateway.keyring import Keyring
from policies import consentdb, load_policies
from policies.consent import ConsentStore, grant_many_sync

PURPOSE = "kanyashree-eligibility"

#: (student id, registry record or None, consent state: active, revoked or none).
Applicant = tuple[str, dict[str, Any] | None, str]


def node_keyring(demo: DemoDeployment) -> Keyring:
    """The node's keyring, opened with the deployment's passphrase."""
    return Keyring.load(demo.state_dir / "keyring", demo.passphrase)


def record_consents(
    demo: DemoDeployment,
    applicants: list[Applicant],
    *,
    client: ClientId = KANYASHREE,
    purpose_id: str = PURPOSE,
    actor: str = "kanyashree-portal",
    keyring: Keyring | None = None,
) -> dict[str, str]:
    """Grant (and revoke) the applicants' consents; return consent ids by student.

    Raises LookupError if the purpose is not configured, ConsentError for a grant
    the store refuses (then nothing is stored).
    """
    purpose = load_policies(demo.config_dir).purposes.get(purpose_id)
    if purpose is None:
        raise LookupError(f"purpose {purpose_id} is not configured")
    signer = keyring or node_keyring(demo)
    now = time.time()
    grants = [
        {
            "subject": student_id,
            "client": client,
            "purpose": purpose,
            "granted_by_role": "guardian",
            "granted_by_name": _guardian(student),
            "subject_is_minor": True,
            "valid_from": now - 86_400,
            "valid_until": now + 365 * 86_400,
            "actor": actor,
        }
        for student_id, student, state in applicants
        if state in ("active", "revoked")
    ]
    path = demo.state_dir / "consent.db"
    records = grant_many_sync(path, grants, signer=signer)
    granted = {record.subject: record.consent_id for record in records}
    revoked = [granted[sid] for sid, _doc, state in applicants if state == "revoked"]
    connection = consentdb.connect(path)
    try:
        for consent_id in revoked:
            consentdb.revoke(connection, consent_id, "guardian", time.time(), signer)
    finally:
        connection.close()
    return granted


async def revoke_consents(
    demo: DemoDeployment, consent_ids: Iterable[str], keyring: Keyring
) -> None:
    """Revoke each consent now, as its guardian, with a signed revision."""
    store = await ConsentStore.open(demo.state_dir / "consent.db", signer=keyring)
    try:
        for consent_id in consent_ids:
            await store.revoke(consent_id, actor="guardian")
    finally:
        await store.close()


def _guardian(student: dict[str, Any] | None) -> str:
    if student is None:
        return "Guardian of applicant"
    return str(student.get("guardian", {}).get("name") or "Guardian")
