"""The security officer's operations as plain async functions, for any front end.

The CLI (``mediator log``) and the admin API (issue 8, which owns routes and the
security-officer role) call these; none of them checks who is asking. Results are
JSON-ready dicts. A student id is never stored or returned: :func:`search` takes
it, hashes it with the deployment's subject key and searches the keyed hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.msglog.checkpoint import PublicKey
from gateway.msglog.evidence import export_evidence
from gateway.msglog.records import parse
from gateway.msglog.store import LogStore, SearchQuery
from gateway.msglog.verify import verify_log
from gateway.subjects import SubjectHasher


async def search(
    store: LogStore,
    query: SearchQuery,
    *,
    student_id: str | None = None,
    subjects: SubjectHasher | None = None,
) -> list[dict[str, Any]]:
    """Records matching ``query`` (and the student, if given), newest first.

    Each result is the stored record with its ``seq``. Raises ValueError if a
    ``student_id`` is given without ``subjects``, NodeError(LOG_UNAVAILABLE) if
    the store fails.
    """
    if student_id is not None:
        if subjects is None:
            raise ValueError("searching by student needs the subject key")
        query = _with_subject(query, subjects.hash(student_id))
    rows = await store.search(query)
    return [{**parse(row.canonical), "seq": row.seq} for row in rows]


async def verify_summary(
    store: LogStore,
    public_keys: Mapping[str, PublicKey],
    *,
    revoked_at: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Verify the whole log; the verdict and counts, and the first problem if any.

    Raises NodeError(LOG_UNAVAILABLE) if the store fails; a damaged log is a
    verdict (``ok`` false), not an error.
    """
    report = await verify_log(store, public_keys, revoked_at=revoked_at)
    problem = report.problem
    return {
        "ok": report.ok,
        "records": report.records,
        "checkpoints": report.checkpoints,
        "signatures_verified": report.signatures_verified,
        "consistency_verified": report.consistency_verified,
        "archived": report.archived,
        "problem": None
        if problem is None
        else {
            "kind": problem.kind,
            "seq": problem.seq,
            "checkpoint": problem.checkpoint,
            "detail": problem.detail,
            "text": str(problem),
        },
    }


async def export(
    store: LogStore, message_id: str, jwks: Mapping[str, Any], out: Path
) -> dict[str, Any]:
    """Write the evidence bundle of ``message_id`` to ``out``.

    Raises EvidenceError if the message is not logged or not sealed yet.
    """
    seqs = await export_evidence(store, message_id, jwks, out)
    return {"message_id": message_id, "records": seqs, "path": str(out)}


def _with_subject(query: SearchQuery, subject_hash: str) -> SearchQuery:
    return dataclasses.replace(query, subject_hash=subject_hash)
