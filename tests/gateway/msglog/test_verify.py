"""Verifying a log on a real SQLite file, and naming how it was tampered with."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import MessageLog, SqliteLogStore, load_jwks, merkle
from gateway.msglog.checkpoint import KeySigner, make_checkpoint
from gateway.msglog.records import seal
from gateway.msglog.verify import VerifyReport, verify_log
from tests.gateway.msglog.conftest import make_record, read_row, tamper

pytestmark = pytest.mark.anyio


async def _verify(db_path: Path, jwks: dict[str, Any]) -> VerifyReport:
    store = SqliteLogStore(db_path)
    await store.open()
    try:
        return await verify_log(store, load_jwks(jwks))
    finally:
        await store.close()


def _forged(seq: int, prev_hash: str) -> tuple[Any, ...]:
    row = seal(make_record(900 + seq), seq, prev_hash)
    return (
        row.seq,
        row.hash,
        row.leaf_hash,
        row.canonical,
        row.ts,
        row.message_id,
        row.client_id,
        row.service_id,
        row.decision,
    )


INSERT = "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


async def test_intact_log_verifies(sealed_log: Path, jwks: dict[str, Any]) -> None:
    report = await _verify(sealed_log, jwks)
    assert report.ok, report.problem
    assert (report.records, report.checkpoints, report.signatures_verified) == (
        20,
        3,
        3,
    )
    assert report.consistency_verified == 2


async def test_progress_reports_records_checked(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    seen: list[int] = []
    store = SqliteLogStore(sealed_log)
    await store.open()
    await verify_log(store, load_jwks(jwks), progress=seen.append)
    await store.close()
    assert seen[-1] == 20


async def test_flipped_byte_is_hash_mismatch(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    _, _, canonical = read_row(sealed_log, 10)
    flipped = canonical.replace(b'"GET"', b'"PUT"')
    tamper(sealed_log, ("UPDATE records SET canonical = ? WHERE seq = 10", (flipped,)))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("hash mismatch", 10)


async def test_rehashed_change_is_found_by_the_chain(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    _, _, canonical = read_row(sealed_log, 10)
    changed = canonical.replace(b'"GET"', b'"PUT"')
    new_hash = hashlib.sha256(changed).hexdigest()
    tamper(
        sealed_log,
        (
            "UPDATE records SET canonical = ?, hash = ?, leaf_hash = ? WHERE seq = 10",
            (changed, new_hash, merkle.leaf_hash(changed)),
        ),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("hash mismatch", 10)
    assert "changed" in problem.detail


async def test_deleted_record_is_a_gap(sealed_log: Path, jwks: dict[str, Any]) -> None:
    tamper(sealed_log, ("DELETE FROM records WHERE seq = 10", ()))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert str(problem).startswith("missing record (gap at seq 10)")


async def test_swapped_records_are_reordered(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    tamper(
        sealed_log,
        ("UPDATE records SET seq = -1 WHERE seq = 10", ()),
        ("UPDATE records SET seq = 10 WHERE seq = 11", ()),
        ("UPDATE records SET seq = 11 WHERE seq = -1", ()),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("reordered", 10)


async def test_inserted_record_is_named(sealed_log: Path, jwks: dict[str, Any]) -> None:
    previous_hash, _, _ = read_row(sealed_log, 9)
    tamper(
        sealed_log,
        ("UPDATE records SET seq = seq + 1000 WHERE seq >= 10", ()),
        ("UPDATE records SET seq = seq - 999 WHERE seq >= 1000", ()),
        (INSERT, _forged(10, previous_hash)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("inserted record", 10)


async def test_replaced_checkpoint_has_bad_signature(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    tamper(
        sealed_log,
        (
            "UPDATE checkpoints SET body = replace(body, '\"tree_size\":13', "
            "'\"tree_size\":12') WHERE number = 2",
            (),
        ),
        ("UPDATE checkpoints SET tree_size = 12 WHERE number = 2", ()),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("bad checkpoint signature", 2)


async def test_checkpoint_by_unknown_key_is_reported(sealed_log: Path) -> None:
    problem = (await _verify(sealed_log, {"keys": []})).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("unknown key id", 1)


async def test_validly_signed_wrong_root_is_root_mismatch(
    sealed_log: Path, jwks: dict[str, Any], signer: KeySigner
) -> None:
    forged = make_checkpoint("shiksha-mediator", 13, b"\x07" * 32, 2.0, signer)
    tamper(
        sealed_log,
        ("UPDATE checkpoints SET body = ? WHERE number = 2", (forged.to_json(),)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("checkpoint root mismatch", 2)


async def test_truncated_log_is_a_gap_before_the_checkpoint(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    tamper(sealed_log, ("DELETE FROM records WHERE seq >= 15", ()))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert str(problem).startswith("missing record (gap at seq 15)")
    assert problem.checkpoint == 3


async def test_truncated_and_regrown_log_is_root_mismatch(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    tamper(sealed_log, ("DELETE FROM records WHERE seq >= 15", ()))
    log = MessageLog(SqliteLogStore(sealed_log))
    await log.start()
    for i in range(15, 20):
        await log.append(make_record(500 + i))
    await log.close()

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("checkpoint root mismatch", 3)


async def test_checkpoint_that_shrinks_is_reordered(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    signer = KeySigner("node-a-2024", Ed25519PrivateKey.generate())
    older = make_checkpoint("shiksha-mediator", 5, b"\x00" * 32, 9.0, signer)
    tamper(
        sealed_log,
        ("INSERT INTO checkpoints (tree_size, body) VALUES (5, ?)", (older.to_json(),)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("reordered", 4)


async def test_unreadable_checkpoint_is_reported(
    sealed_log: Path, jwks: dict[str, Any]
) -> None:
    tamper(sealed_log, ("UPDATE checkpoints SET body = x'00' WHERE number = 3", ()))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("bad checkpoint signature", 3)
