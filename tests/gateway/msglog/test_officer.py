"""The security officer's operations: search by student, verify, export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import NodeError, Reason
from gateway.msglog import (
    KeySigner,
    LogStore,
    MessageLog,
    SqliteLogStore,
    load_jwks,
    officer,
)
from gateway.msglog.evidence import EvidenceError, verify_evidence
from gateway.msglog.store import SearchQuery, StoreError
from gateway.subjects import SubjectHasher
from tests.gateway.msglog.conftest import make_record, tamper

pytestmark = pytest.mark.anyio

STUDENT = "WB201900012342"
OTHER = "WB201900056785"
SUBJECTS = SubjectHasher(b"k" * 32)
#: The records of each student; records 0 and 3 are denied (see ``make_record``).
OF_STUDENT = {1: STUDENT, 3: STUDENT, 4: STUDENT, 5: OTHER}


@pytest.fixture
async def store(db_path: Path, signer: KeySigner) -> AsyncIterator[LogStore]:
    """An open store of six records, sealed by one checkpoint."""
    log = MessageLog(SqliteLogStore(db_path), signer=signer, checkpoint_interval_s=3600)
    await log.start()
    for i in range(6):
        subject = OF_STUDENT.get(i)
        extra = {} if subject is None else {"subject_hash": SUBJECTS.hash(subject)}
        await log.append({**make_record(i), **extra})
    await log.checkpoint()
    await log.close()
    reader = SqliteLogStore(db_path)
    await reader.open()
    try:
        yield reader
    finally:
        await reader.close()


def seqs(found: list[dict[str, Any]]) -> list[int]:
    return [record["seq"] for record in found]


# -- search --------------------------------------------------------------------------


async def test_a_student_search_finds_only_their_records_newest_first(
    store: LogStore,
) -> None:
    found = await officer.search(
        store, SearchQuery(), student_id=STUDENT, subjects=SUBJECTS
    )

    assert seqs(found) == [4, 3, 1]


@pytest.mark.parametrize(
    "typed", [STUDENT.lower(), f"  {STUDENT} "], ids=["lower-case", "spaced"]
)
async def test_a_student_id_is_found_however_it_is_typed(
    store: LogStore, typed: str
) -> None:
    found = await officer.search(
        store, SearchQuery(), student_id=typed, subjects=SUBJECTS
    )

    assert seqs(found) == [4, 3, 1]


async def test_a_student_search_keeps_the_other_filters(store: LogStore) -> None:
    query = SearchQuery(decision="denied")

    found = await officer.search(store, query, student_id=STUDENT, subjects=SUBJECTS)

    assert seqs(found) == [3]


@pytest.mark.parametrize("student_id", ["", "WB201900099999"], ids=["empty", "unknown"])
async def test_a_student_search_never_widens_to_every_record(
    store: LogStore, student_id: str
) -> None:
    """An empty or unknown id is searched for as given, and finds nothing."""
    found = await officer.search(
        store, SearchQuery(), student_id=student_id, subjects=SUBJECTS
    )

    assert found == []


async def test_a_student_search_needs_the_subject_key(store: LogStore) -> None:
    with pytest.raises(ValueError, match="searching by student needs the subject key"):
        await officer.search(store, SearchQuery(), student_id=STUDENT)


async def test_a_student_search_under_another_key_finds_nothing(
    store: LogStore,
) -> None:
    """Only the deployment's subject key links an id to its records."""
    found = await officer.search(
        store,
        SearchQuery(),
        student_id=STUDENT,
        subjects=SubjectHasher(b"x" * 32),
    )

    assert found == []


async def test_results_hold_no_student_id(store: LogStore) -> None:
    found = await officer.search(
        store, SearchQuery(), student_id=STUDENT, subjects=SUBJECTS
    )

    assert STUDENT not in orjson.dumps(found).decode()
    assert found[0]["subject_hash"] == SUBJECTS.hash(STUDENT)


async def test_each_result_is_the_stored_record_with_its_seq(store: LogStore) -> None:
    (found,) = await officer.search(store, SearchQuery(message_id="msg-2"))
    (row,) = await store.get_range(2, 3)

    assert found == {**orjson.loads(row.canonical), "seq": 2}


async def test_a_search_without_a_student_applies_the_query_alone(
    store: LogStore,
) -> None:
    found = await officer.search(store, SearchQuery(limit=2))

    assert seqs(found) == [5, 4]


# -- verify_summary ------------------------------------------------------------------


async def test_an_intact_log_is_summarised_without_a_problem(
    store: LogStore, jwks: dict[str, Any]
) -> None:
    summary = await officer.verify_summary(store, load_jwks(jwks))

    assert summary == {
        "ok": True,
        "records": 6,
        "checkpoints": 1,
        "signatures_verified": 1,
        "consistency_verified": 0,
        "archived": 0,
        "problem": None,
    }


async def test_a_damaged_log_is_a_verdict_naming_the_first_problem(
    db_path: Path, store: LogStore, jwks: dict[str, Any]
) -> None:
    tamper(db_path, ("UPDATE records SET canonical = ? WHERE seq = 2", (b"{}",)))

    summary = await officer.verify_summary(store, load_jwks(jwks))

    problem = summary["problem"]
    assert summary["ok"] is False
    assert (problem["kind"], problem["seq"], problem["checkpoint"]) == (
        "hash mismatch",
        2,
        None,
    )
    assert problem["text"] == f"hash mismatch at seq 2: {problem['detail']}"


async def test_a_checkpoint_by_an_unknown_key_is_a_problem(store: LogStore) -> None:
    summary = await officer.verify_summary(store, {})

    assert summary["ok"] is False
    assert (summary["problem"]["kind"], summary["problem"]["checkpoint"]) == (
        "unknown key id",
        1,
    )


async def test_the_revocation_times_are_applied(
    store: LogStore, jwks: dict[str, Any]
) -> None:
    """A key revoked before it sealed the checkpoint no longer vouches for it."""
    summary = await officer.verify_summary(
        store, load_jwks(jwks), revoked_at={"node-a-2024": 0.0}
    )

    assert summary["problem"]["kind"] == "signed by revoked key"


async def test_the_summary_is_plain_json(
    db_path: Path, store: LogStore, jwks: dict[str, Any]
) -> None:
    """The admin API serves it as it is, a problem included."""
    tamper(db_path, ("UPDATE records SET canonical = ? WHERE seq = 2", (b"{}",)))

    summary = await officer.verify_summary(store, load_jwks(jwks))

    assert orjson.loads(orjson.dumps(summary)) == summary


# -- export --------------------------------------------------------------------------


async def test_export_writes_the_bundle_and_says_what_it_holds(
    store: LogStore, jwks: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "bundle.zip"

    written = await officer.export(store, "msg-4", jwks, out)

    assert written == {"message_id": "msg-4", "records": [4], "path": str(out)}
    assert verify_evidence(out).ok


async def test_export_of_an_unlogged_message_writes_nothing(
    store: LogStore, jwks: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "bundle.zip"

    with pytest.raises(EvidenceError, match="no record has this message id"):
        await officer.export(store, "msg-99", jwks, out)

    assert not out.exists()


async def test_export_of_an_unsealed_message_is_refused(
    store: LogStore, db_path: Path, tmp_path: Path
) -> None:
    """A record after the latest checkpoint cannot be proved yet."""
    unsigned = MessageLog(SqliteLogStore(db_path))
    await unsigned.start()
    await unsigned.append(make_record(6))
    await unsigned.close()

    with pytest.raises(EvidenceError, match="not yet sealed"):
        await officer.export(store, "msg-6", {"keys": []}, tmp_path / "bundle.zip")


# -- store failures ------------------------------------------------------------------


async def test_a_failing_store_is_log_unavailable(db_path: Path) -> None:
    closed = SqliteLogStore(db_path)

    with pytest.raises(StoreError) as caught:
        await officer.search(closed, SearchQuery())

    assert isinstance(caught.value, NodeError)
    assert caught.value.reason is Reason.LOG_UNAVAILABLE
