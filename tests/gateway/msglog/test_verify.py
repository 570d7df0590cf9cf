"""Verifying a log on a real SQLite file (and PostgreSQL), and naming how it was
tampered with."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import MessageLog, load_jwks, merkle
from gateway.msglog.checkpoint import Checkpoint, KeySigner, make_checkpoint
from gateway.msglog.records import seal
from gateway.msglog.verify import VerifyReport, verify_log
from tests.gateway.msglog.conftest import Backend, build_sealed_log, make_record

pytestmark = pytest.mark.anyio


async def _verify(
    backend: Backend, jwks: dict[str, Any], *, stale_before: float | None = None
) -> VerifyReport:
    store = backend.store()
    await store.open()
    try:
        return await verify_log(store, load_jwks(jwks), stale_before=stale_before)
    finally:
        await store.close()


async def _checkpoints(backend: Backend) -> list[Checkpoint]:
    store = backend.store()
    await store.open()
    stored = await store.checkpoints()
    await store.close()
    return [s.checkpoint for s in stored if s.checkpoint is not None]


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


INSERT = (
    "INSERT INTO records (seq, hash, leaf_hash, canonical, ts, message_id, "
    "client_id, service_id, decision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def test_intact_log_verifies(sealed_log: Backend, jwks: dict[str, Any]) -> None:
    report = await _verify(sealed_log, jwks)
    assert report.ok, report.problem
    assert (report.records, report.checkpoints, report.signatures_verified) == (
        20,
        3,
        3,
    )
    assert report.consistency_verified == 2


async def test_a_sealed_log_has_no_unsealed_records(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    report = await _verify(sealed_log, jwks, stale_before=2e9)

    assert report.ok, report.problem
    assert (report.unsealed, report.unsealed_since) == (0, None)


async def test_records_after_the_last_checkpoint_are_counted(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    """Checkpoints at 8 and 13 left: seq 13 on are intact but not yet sealed."""
    await sealed_log.tamper(("DELETE FROM checkpoints WHERE tree_size = 20", ()))

    report = await _verify(sealed_log, jwks)

    assert report.ok, report.problem
    assert report.unsealed == 7
    assert report.unsealed_since == make_record(13)["ts"]


@pytest.mark.parametrize("kept", [0, 2])
async def test_unsealed_records_older_than_a_node_leaves_them_are_a_problem(
    sealed_log: Backend, jwks: dict[str, Any], kept: int
) -> None:
    """Checkpoints removed (all, or the last): the tail can no longer be proved."""
    sizes = {0: (8, 13, 20), 2: (20,)}[kept]
    for size in sizes:
        await sealed_log.tamper(
            ("DELETE FROM checkpoints WHERE tree_size = ?", (size,))
        )
    first = 0 if kept == 0 else 13
    stale_before = make_record(first)["ts"] + 1

    problem = (await _verify(sealed_log, jwks, stale_before=stale_before)).problem

    assert problem is not None
    assert problem.kind == "records not sealed"
    assert problem.seq == first
    assert problem.detail.startswith(f"{20 - first} records after the last checkpoint")


async def test_a_recent_unsealed_tail_is_not_a_problem(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    """A running node seals its newest records at its next checkpoint."""
    await sealed_log.tamper(("DELETE FROM checkpoints WHERE tree_size = 20", ()))

    report = await _verify(sealed_log, jwks, stale_before=make_record(13)["ts"])

    assert report.ok, report.problem
    assert report.unsealed == 7


async def test_progress_reports_records_checked(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    seen: list[int] = []
    store = sealed_log.store()
    await store.open()
    await verify_log(store, load_jwks(jwks), progress=seen.append)
    await store.close()
    assert seen[-1] == 20


async def test_flipped_byte_is_hash_mismatch(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    _, _, canonical = await sealed_log.read_row(10)
    flipped = canonical.replace(b'"GET"', b'"PUT"')
    await sealed_log.tamper(
        ("UPDATE records SET canonical = ? WHERE seq = 10", (flipped,))
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("hash mismatch", 10)


async def test_rehashed_change_is_found_by_the_chain(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    _, _, canonical = await sealed_log.read_row(10)
    changed = canonical.replace(b'"GET"', b'"PUT"')
    new_hash = hashlib.sha256(changed).hexdigest()
    await sealed_log.tamper(
        (
            "UPDATE records SET canonical = ?, hash = ?, leaf_hash = ? WHERE seq = 10",
            (changed, new_hash, merkle.leaf_hash(changed)),
        ),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("hash mismatch", 10)
    assert "changed" in problem.detail


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("decision", "denied"),
        ("ts", 1_700_000_000.0),
        ("message_id", "msg-3"),
        ("client_id", "WB/GOV/WCD/kanyashree"),
        ("client_id", None),
        ("service_id", "WB/GOV/SED/banglarshiksha/teachers"),
        ("subject_hash", "cd" * 32),
    ],
)
async def test_an_edited_search_column_is_named(
    sealed_log: Backend, jwks: dict[str, Any], column: str, value: object
) -> None:
    """The hashes still match, but a search would show another log."""
    await sealed_log.tamper(
        (f"UPDATE records SET {column} = ? WHERE seq = 7", (value,))
    )

    problem = (await _verify(sealed_log, jwks)).problem

    assert problem is not None
    assert str(problem) == (
        f"search column mismatch at seq 7: the stored {column} is not the record's"
    )


async def test_deleted_record_is_a_gap(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    await sealed_log.tamper(("DELETE FROM records WHERE seq = 10", ()))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert str(problem).startswith("missing record (gap at seq 10)")


async def test_swapped_records_are_reordered(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    await sealed_log.tamper(
        ("UPDATE records SET seq = -1 WHERE seq = 10", ()),
        ("UPDATE records SET seq = 10 WHERE seq = 11", ()),
        ("UPDATE records SET seq = 11 WHERE seq = -1", ()),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("reordered", 10)


async def test_inserted_record_is_named(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    previous_hash, _, _ = await sealed_log.read_row(9)
    await sealed_log.tamper(
        ("UPDATE records SET seq = seq + 1000 WHERE seq >= 10", ()),
        ("UPDATE records SET seq = seq - 999 WHERE seq >= 1000", ()),
        (INSERT, _forged(10, previous_hash)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("inserted record", 10)


async def test_replaced_checkpoint_has_bad_signature(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    body = (await _checkpoints(sealed_log))[1]
    changed = body.to_json().replace(b'"tree_size":13', b'"tree_size":12')
    await sealed_log.tamper(
        ("UPDATE checkpoints SET body = ? WHERE number = 2", (changed,)),
        ("UPDATE checkpoints SET tree_size = 12 WHERE number = 2", ()),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("bad checkpoint signature", 2)


async def test_checkpoint_by_unknown_key_is_reported(sealed_log: Backend) -> None:
    problem = (await _verify(sealed_log, {"keys": []})).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("unknown key id", 1)


async def test_validly_signed_wrong_root_is_root_mismatch(
    sealed_log: Backend, jwks: dict[str, Any], signer: KeySigner
) -> None:
    original = (await _checkpoints(sealed_log))[1]
    forged = make_checkpoint(
        "shiksha-mediator", 13, b"\x07" * 32, original.timestamp, signer
    )
    await sealed_log.tamper(
        ("UPDATE checkpoints SET body = ? WHERE number = 2", (forged.to_json(),)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("checkpoint root mismatch", 2)


async def test_truncated_log_is_a_gap_before_the_checkpoint(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    await sealed_log.tamper(("DELETE FROM records WHERE seq >= 15", ()))

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert str(problem).startswith("missing record (gap at seq 15)")
    assert problem.checkpoint == 3


async def test_truncated_and_regrown_log_is_root_mismatch(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    await sealed_log.tamper(("DELETE FROM records WHERE seq >= 15", ()))
    log = MessageLog(sealed_log.store())
    await log.start()
    for i in range(15, 20):
        await log.append(make_record(500 + i))
    await log.close()

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("checkpoint root mismatch", 3)


async def test_checkpoint_that_shrinks_is_reordered(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    signer = KeySigner("node-a-2024", Ed25519PrivateKey.generate())
    older = make_checkpoint("shiksha-mediator", 5, b"\x00" * 32, 9.0, signer)
    await sealed_log.tamper(
        ("INSERT INTO checkpoints (tree_size, body) VALUES (5, ?)", (older.to_json(),)),
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("reordered", 4)


async def test_unreadable_checkpoint_is_reported(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    await sealed_log.tamper(
        ("UPDATE checkpoints SET body = ? WHERE number = 3", (b"\x00",))
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("bad checkpoint signature", 3)


async def test_checkpoint_by_retired_key_verifies_after_rotation(
    backend: Backend, signer: KeySigner, jwks: dict[str, Any]
) -> None:
    new_key = Ed25519PrivateKey.generate()
    await build_sealed_log(backend.store(), signer)
    log = MessageLog(backend.store(), signer=KeySigner("node-a-2025", new_key))
    await log.start()
    await log.append(make_record(20))
    await log.close()

    keys = {**load_jwks(jwks), "node-a-2025": new_key.public_key()}
    store = backend.store()
    await store.open()
    report = await verify_log(store, keys)
    await store.close()
    assert report.ok, report.problem
    assert report.signatures_verified == 4


async def test_checkpoint_by_key_after_its_revocation_is_flagged(
    sealed_log: Backend, jwks: dict[str, Any]
) -> None:
    third = (await _checkpoints(sealed_log))[2]
    store = sealed_log.store()
    await store.open()
    report = await verify_log(
        store, load_jwks(jwks), revoked_at={"node-a-2024": third.timestamp}
    )
    await store.close()
    problem = report.problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("signed by revoked key", 3)
    assert report.signatures_verified == 2


async def test_backdated_checkpoint_is_flagged(
    sealed_log: Backend, jwks: dict[str, Any], signer: KeySigner
) -> None:
    first = (await _checkpoints(sealed_log))[0]
    store = sealed_log.store()
    await store.open()
    root = (await store.checkpoints())[2].checkpoint
    await store.close()
    assert root is not None
    backdated = make_checkpoint(
        "shiksha-mediator",
        20,
        bytes.fromhex(root.root_hash),
        first.timestamp - 1,
        signer,
    )
    await sealed_log.tamper(
        (
            "INSERT INTO checkpoints (tree_size, body) VALUES (20, ?)",
            (backdated.to_json(),),
        )
    )

    problem = (await _verify(sealed_log, jwks)).problem
    assert problem is not None
    assert (problem.kind, problem.checkpoint) == ("checkpoint time goes backwards", 4)
