"""Retention: old periods move to archive files, the database keeps their hashes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.msglog import KeySigner, LogStore, MessageLog, load_jwks
from gateway.msglog.archive import ArchiveError, ArchiveRun, archive_log, period_at
from gateway.msglog.archivefile import verify_archive
from gateway.msglog.bodylog import BodyLog, open_stored
from gateway.msglog.evidence import export_evidence, verify_evidence
from gateway.msglog.verify import (
    HASH_MISMATCH,
    MISSING_RECORD,
    ROOT_MISMATCH,
    UNSEALED_ARCHIVE,
    VerifyReport,
    verify_log,
)
from tests.gateway.msglog.conftest import (
    DAY,
    DAY_ZERO,
    STUDENTS,
    Backend,
    build_dated_log,
    dated_record,
)

pytestmark = pytest.mark.anyio

#: The end of day 2: days 0 and 1 (records 0 to 9) may be archived.
CUTOFF = DAY_ZERO + 2 * DAY


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[LogStore]:
    opened = backend.store()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def dated(backend: Backend, signer: KeySigner) -> Backend:
    """Fifteen records, five a day on days 0 to 2, sealed by one checkpoint."""
    await build_dated_log(backend.store(), signer)
    return backend


async def _archive(
    store: LogStore, out: Path, jwks: dict[str, Any], cutoff: float = CUTOFF
) -> ArchiveRun:
    return await archive_log(
        store, out, cutoff=cutoff, kind="day", keys=load_jwks(jwks)
    )


async def _verify(store: LogStore, jwks: dict[str, Any]) -> VerifyReport:
    return await verify_log(store, load_jwks(jwks))


def test_periods_are_utc_months_or_days() -> None:
    assert period_at(DAY_ZERO + 5, "day").name == "2023-11-14"
    month = period_at(DAY_ZERO, "month")
    assert (month.name, period_at(month.end, "month").name) == ("2023-11", "2023-12")
    assert period_at(month.end - 1, "month").name == "2023-11"


async def test_each_complete_period_gets_a_file_and_leaves_the_database(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    run = await _archive(store, tmp_path, jwks)

    assert [(e.period, e.first_seq, e.end_seq) for e in run.made] == [
        ("2023-11-14", 0, 5),
        ("2023-11-15", 5, 10),
    ]
    assert run.stopped == "period 2023-11-16 ends after the cutoff"
    assert await store.get_range(0, 15) == await store.get_range(10, 15)
    assert await store.archived_size() == 10
    for entry in run.made:
        report = verify_archive(tmp_path / entry.name, load_jwks(jwks))
        assert report.ok, report.problem
        assert report.records == 5
        # The records moved out of the database stay as private as they were.
        assert (tmp_path / entry.name).stat().st_mode & 0o077 == 0


async def test_the_log_verifies_with_the_pruned_prefix_by_hash(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)

    report = await _verify(store, jwks)

    assert report.ok, report.problem
    assert (report.records, report.archived) == (15, 10)


async def test_a_period_no_checkpoint_covers_stays(
    backend: Backend, signer: KeySigner, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await build_dated_log(backend.store(), signer, 3)
    await build_dated_log(backend.store(), None, 12)
    store = backend.store()
    await store.open()
    try:
        run = await _archive(store, tmp_path, jwks)
        assert run.made == []
        assert (
            run.stopped == "no checkpoint by a known key covers period 2023-11-14 yet"
        )
        assert await store.archived_size() == 0
        assert not any(name.endswith(".zip") for name in os.listdir(tmp_path))
    finally:
        await store.close()


async def test_a_pruned_log_keeps_growing_where_it_left_off(
    dated: Backend, signer: KeySigner, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    store = dated.store()
    await store.open()
    await _archive(store, tmp_path, jwks, cutoff=DAY_ZERO + 30 * DAY)
    await store.close()

    log = MessageLog(dated.store(), signer=signer, checkpoint_interval_s=3600)
    await log.start()
    receipt = await log.append(dated_record(15))
    await log.close()

    assert receipt.seq == 15
    store = dated.store()
    await store.open()
    try:
        report = await _verify(store, jwks)
    finally:
        await store.close()
    assert report.ok, report.problem
    assert (report.records, report.archived) == (16, 15)


async def test_evidence_of_a_live_record_still_proves_after_pruning(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)
    out = tmp_path / "bundle.zip"

    assert await export_evidence(store, "msg-12", jwks, out) == [12]
    assert verify_evidence(out).ok
    assert await store.archived_message("msg-3") == [(3, "messagelog-2023-11-14-0.zip")]


async def test_an_existing_file_is_never_overwritten(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    (tmp_path / "messagelog-2023-11-14-0.zip").write_bytes(b"earlier")

    with pytest.raises(ArchiveError, match="exists already"):
        await _archive(store, tmp_path, jwks)
    assert await store.archived_size() == 0


async def test_a_checkpoint_by_an_untrusted_key_archives_nothing(
    dated: Backend, store: LogStore, tmp_path: Path
) -> None:
    run = await _archive(store, tmp_path, {"keys": []})

    assert run.made == []
    assert await store.archived_size() == 0


# -- tampering with the kept hashes -------------------------------------------------


async def test_an_altered_kept_leaf_hash_gives_another_root(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)
    await dated.tamper(
        ("UPDATE archived_leaves SET leaf_hash = ? WHERE seq = 3", (b"\x00" * 32,))
    )

    report = await _verify(store, jwks)

    assert report.problem is not None
    assert report.problem.kind == ROOT_MISMATCH


async def test_a_deleted_kept_leaf_is_a_gap(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)
    await dated.tamper(("DELETE FROM archived_leaves WHERE seq = 4", ()))

    report = await _verify(store, jwks)

    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (MISSING_RECORD, 4)


async def test_an_altered_last_kept_hash_breaks_the_chain(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)
    await dated.tamper(("UPDATE archived_leaves SET hash = ? WHERE seq = 9", ("0",)))

    report = await _verify(store, jwks)

    assert report.problem is not None
    assert report.problem.kind == HASH_MISMATCH


async def test_kept_leaves_beyond_every_checkpoint_are_unsealed(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    await _archive(store, tmp_path, jwks)
    await dated.tamper(("DELETE FROM checkpoints", ()))

    report = await _verify(store, jwks)

    assert report.problem is not None
    assert report.problem.kind == UNSEALED_ARCHIVE


# -- encrypted bodies ---------------------------------------------------------------


async def test_bodies_move_to_the_archive_and_still_open(
    backend: Backend, signer: KeySigner, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    import zipfile

    import orjson

    officer = X25519PrivateKey.generate()
    store = backend.store()
    await store.open()
    try:
        bodies = BodyLog(
            {"so-1": officer.public_key()}, {STUDENTS: None}, store, clock=lambda: 0
        )
        await build_dated_log(backend.store(), signer, bodies=bodies)
        await _archive(store, tmp_path, jwks)
        assert await store.bodies(list(range(10))) == {}
        assert set(await store.bodies(list(range(15)))) == set(range(10, 15))
    finally:
        await store.close()

    with zipfile.ZipFile(tmp_path / "messagelog-2023-11-14-0.zip") as archive:
        lines = archive.read("bodies.jsonl").splitlines()
        keys = orjson.loads(archive.read("body_keys.json"))
    first = orjson.loads(lines[0])
    (envelope,) = keys.values()
    opened = open_stored(first["entries"].encode(), envelope, officer)
    assert (len(lines), opened["request"]) == (5, b"request 0")


async def test_the_officer_summary_counts_the_archived_records(
    dated: Backend, store: LogStore, tmp_path: Path, jwks: dict[str, Any]
) -> None:
    from gateway.msglog import officer

    await _archive(store, tmp_path, jwks)

    summary = await officer.verify_summary(store, load_jwks(jwks))

    assert (summary["ok"], summary["records"], summary["archived"]) == (True, 15, 10)
