"""A consent and its history as values: records, revisions and their hash chain.

A consent's every change is a revision whose hash is SHA-256 over the RFC 8785
canonical JSON of the revision without its hash; each carries the previous one's
hash and a snapshot of the record, so the history is a chain that
:func:`history_verifies` checks against the current record, with a signature on
every revision when a verifier is given (:mod:`policies.consentsign`). The stores
(:mod:`policies.consentdb`, :mod:`policies.consentpg`) keep these values.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import rfc8785
from stdnum import verhoeff

from policies.consentsign import RevisionSigner, sign_revision, signature_valid
from policies.purposes import LawfulBasis, Purpose

GENESIS = "0" * 64

ROLES = frozenset({"guardian", "student"})

_STUDENT_ID = re.compile(r"WB[0-9]{12}", re.ASCII)


class ConsentError(ValueError):
    """A grant or revocation that cannot be made: bad values, unknown or revoked id."""


@dataclass(frozen=True, slots=True)
class GrantedBy:
    role: str
    name: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """One consent; its repr leaves out the student id and the grantor's name."""

    consent_id: str
    subject: str = field(repr=False)
    client: str
    purpose_id: str
    purpose_version: int
    granted_by: GrantedBy
    valid_from: float
    valid_until: float
    state: str
    revoked_at: float | None = None
    revoked_by: str | None = None

    def covers(self, at: float) -> bool:
        """True if active and ``at`` lies in ``[valid_from, valid_until)``."""
        return self.state == "active" and self.valid_from <= at < self.valid_until

    def snapshot(self) -> dict[str, Any]:
        """The record as plain JSON values, as revisions store and hash it."""
        return {
            "consent_id": self.consent_id,
            "subject": self.subject,
            "client": self.client,
            "purpose_id": self.purpose_id,
            "purpose_version": self.purpose_version,
            "granted_by": {"role": self.granted_by.role, "name": self.granted_by.name},
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "state": self.state,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True, slots=True)
class ConsentRevision:
    """One link of a consent's history."""

    consent_id: str
    revision: int
    at: float
    actor: str
    state: str
    record: Mapping[str, Any] = field(repr=False)
    prev_hash: str
    hash: str
    kid: str | None = None
    signature: str | None = field(default=None, repr=False)


def is_plain_text(value: str) -> bool:
    """No control characters and no lone surrogates (undecodable command-line bytes).

    Names and actors are printed to officers' terminals and signed as UTF-8: an
    escape sequence could rewrite what the officer sees, a surrogate cannot be
    encoded at all.
    """
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


#: The longest grantor name or actor a store keeps (the consent API's cap).
MAX_NAME = 200


def revoking_actor(actor: str) -> str:
    """``actor`` without outer spaces; ConsentError if blank, too long or not
    plain text (see :func:`is_plain_text`)."""
    actor = actor.strip()
    if not actor:
        raise ConsentError("the actor is required")
    if len(actor) > MAX_NAME or not is_plain_text(actor):
        raise ConsentError(f"the actor must be plain text of at most {MAX_NAME}")
    return actor


def new_record(grant: Mapping[str, Any]) -> ConsentRecord:
    purpose: Purpose = grant["purpose"]
    subject, role = str(grant["subject"]), str(grant["granted_by_role"])
    name, actor = str(grant["granted_by_name"]).strip(), str(grant["actor"]).strip()
    valid_from, valid_until = float(grant["valid_from"]), float(grant["valid_until"])
    if purpose.lawful_basis is not LawfulBasis.CONSENT:
        raise ConsentError(f"purpose {purpose.id!r} does not rest on consent")
    if not is_student_id(subject):
        raise ConsentError("the subject is not a valid student id")
    if role not in ROLES:
        raise ConsentError("granted_by role must be 'guardian' or 'student'")
    if grant["subject_is_minor"] and role != "guardian":
        raise ConsentError("a minor's consent must be granted by a guardian")
    if not name or not actor:
        raise ConsentError("the grantor's name and the actor are required")
    if not (is_plain_text(name) and is_plain_text(actor)):
        raise ConsentError("the grantor's name and the actor must be plain text")
    if max(len(name), len(actor)) > MAX_NAME:
        raise ConsentError(f"the grantor's name and the actor are at most {MAX_NAME}")
    if not valid_from < valid_until:
        raise ConsentError("valid_until must be after valid_from")
    return ConsentRecord(
        consent_id=str(uuid.uuid4()),
        subject=subject,
        client=str(grant["client"]),
        purpose_id=purpose.id,
        purpose_version=purpose.version,
        granted_by=GrantedBy(role, name),
        valid_from=valid_from,
        valid_until=valid_until,
        state="active",
    )


def is_student_id(text: str) -> bool:
    """True for ``WB`` + year + serial + a Verhoeff check digit over the 11 digits."""
    return bool(_STUDENT_ID.fullmatch(text)) and bool(verhoeff.is_valid(text[2:]))


def history_verifies(
    current: ConsentRecord | None,
    revisions: list[ConsentRevision],
    verifier: RevisionSigner | None = None,
) -> bool:
    """True if ``revisions`` form an intact chain that ends at ``current``.

    The check :func:`verify_history` makes, on records already read from any store;
    it returns False rather than raise for a snapshot that cannot be canonicalised.
    """
    try:
        intact = bool(revisions) and _chain_intact(revisions)
    except ValueError:
        return False
    if current is None or not intact:
        return False
    if verifier is not None and not all(
        signature_valid(verifier, r.hash, r.kid, r.signature) for r in revisions
    ):
        return False
    return dict(revisions[-1].record) == current.snapshot()


def _chain_intact(revisions: list[ConsentRevision]) -> bool:
    prev_hash = GENESIS
    for number, revision in enumerate(revisions, start=1):
        if revision.revision != number or revision.prev_hash != prev_hash:
            return False
        if not isinstance(revision.record, dict):
            return False
        if revision.state != revision.record.get("state"):
            return False
        if _hash(_revision_body(revision)) != revision.hash:
            return False
        prev_hash = revision.hash
    return True


def seal_revision(
    record: ConsentRecord,
    *,
    number: int,
    prev_hash: str,
    at: float,
    actor: str,
    signer: RevisionSigner | None,
) -> ConsentRevision:
    """Revision ``number`` of ``record``, chained to ``prev_hash``, hashed and signed.

    Raises NodeError if ``signer`` has no key that may sign.
    """
    snapshot = record.snapshot()
    draft = ConsentRevision(
        record.consent_id, number, at, actor, record.state, snapshot, prev_hash, ""
    )
    digest = _hash(_revision_body(draft))
    kid, signature = (None, None) if signer is None else sign_revision(signer, digest)
    return replace(draft, hash=digest, kid=kid, signature=signature)


def _revision_body(revision: ConsentRevision) -> dict[str, Any]:
    """The revision as it is hashed: every member but ``hash``."""
    return {
        "consent_id": revision.consent_id,
        "revision": revision.revision,
        "at": revision.at,
        "actor": revision.actor,
        "state": revision.state,
        "record": dict(revision.record),
        "prev_hash": revision.prev_hash,
    }


def _hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()
