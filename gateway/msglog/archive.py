"""Retention: moving the records of old periods out of the database into archive files.

:func:`archive_log` takes the oldest live records a period at a time. A period is a
UTC month (or day) that ends by the cutoff; its archive holds the contiguous run of
records from the first live one up to the first record dated in a later period (a
record committed late keeps its place in seq order and goes to the next archive).
For each period, in order:

1. a readable checkpoint, signed by a key that was not revoked by then, must cover
   every record of the run, or archiving stops there;
2. the file (see :mod:`gateway.msglog.archivefile`) is written under a temporary
   name, synced to disk and renamed;
3. the file is verified with the node's keys, exactly as ``archive-verify`` would;
4. only then are the records and their bodies deleted from the database, in one
   transaction that keeps their seq, hash and leaf hash, so proofs and ``log
   verify`` still work over the pruned range.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

import orjson

from gateway.errors import NodeError, Reason
from gateway.msglog import proofs
from gateway.msglog.archivefile import (
    BODIES,
    BODY_KEYS,
    CHECKPOINT,
    FORMAT,
    JWKS,
    MANIFEST,
    PROOFS,
    RECORDS,
    verify_archive,
)
from gateway.msglog.bodylog import stored_label
from gateway.msglog.checkpoint import Checkpoint, PublicKey, public_jwk
from gateway.msglog.evidence import EvidenceError, streamed_inclusion_paths
from gateway.msglog.records import parse
from gateway.msglog.store import CHUNK, ArchiveEntry, LogStore
from gateway.privatefiles import create_private_file

PeriodKind = Literal["month", "day"]


class ArchiveError(NodeError):
    """An archive could not be made safely; nothing was pruned.

    ``log_reason`` is ``archive_failed``; the message names the period and why.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.LOG_UNAVAILABLE, log_reason="archive_failed")
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Period:
    """A span of UTC time that one archive file covers, ``start <= ts < end``."""

    name: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class ArchiveRun:
    """What :func:`archive_log` did: the files made, and why it stopped."""

    made: list[ArchiveEntry]
    stopped: str


@dataclass(frozen=True, slots=True)
class _Run:
    """The records of one period: ``first <= seq < end``, and its chain ends."""

    period: Period
    first: int
    end: int
    prev_hash: str
    last_hash: str


def period_at(ts: float, kind: PeriodKind) -> Period:
    """The UTC month (``YYYY-MM``) or day (``YYYY-MM-DD``) holding ``ts``."""
    moment = datetime.fromtimestamp(ts, UTC)
    if kind == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Period(
            start.strftime("%Y-%m-%d"),
            start.timestamp(),
            (start + timedelta(days=1)).timestamp(),
        )
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return Period(start.strftime("%Y-%m"), start.timestamp(), following.timestamp())


async def archive_log(
    store: LogStore,
    out_dir: Path,
    *,
    cutoff: float,
    kind: PeriodKind,
    keys: Mapping[str, PublicKey],
    revoked_at: Mapping[str, float] | None = None,
    clock: Callable[[], float] = time.time,
) -> ArchiveRun:
    """Archive and prune every complete period that ends by ``cutoff``, oldest first.

    ``keys`` are the node's public keys (retired ones too), trusted to check the
    checkpoints. Raises ArchiveError if a file exists already or does not verify
    (the database is then unchanged for that period), NodeError(LOG_UNAVAILABLE)
    if the store fails.
    """
    made: list[ArchiveEntry] = []
    while True:
        run, stopped = await _next_run(store, cutoff, kind)
        if run is None:
            return ArchiveRun(made, stopped)
        checkpoint = await _sealing(store, run, keys, revoked_at or {})
        if checkpoint is None:
            stopped = (
                f"no checkpoint by a known key covers period {run.period.name} yet"
            )
            return ArchiveRun(made, stopped)
        entry = await _archive(
            store, run, checkpoint=checkpoint, out_dir=out_dir, keys=keys, clock=clock
        )
        made.append(entry)


async def _next_run(
    store: LogStore, cutoff: float, kind: PeriodKind
) -> tuple[_Run | None, str]:
    """The oldest live period if it ends by ``cutoff``; else None and why not."""
    first = await store.archived_size()
    head = await store.get_range(first, first + 1)
    if not head:
        return None, "no live records"
    previous = await store.archives()
    begin = _ts(head[0].canonical, first)
    if previous:
        begin = max(begin, previous[-1].period_end)
    period = period_at(begin, kind)
    if period.end > cutoff:
        return None, f"period {period.name} ends after the cutoff"

    prev_hash = str(parse(head[0].canonical).get("prev_hash", ""))
    end, last_hash = first, ""
    async with contextlib.aclosing(store.iter_records(first)) as chunks:
        async for chunk in chunks:
            for row in chunk:
                if _ts(row.canonical, row.seq) >= period.end:
                    return _Run(period, first, end, prev_hash, last_hash), ""
                end, last_hash = row.seq + 1, row.hash
    return _Run(period, first, end, prev_hash, last_hash), ""


async def _sealing(
    store: LogStore,
    run: _Run,
    keys: Mapping[str, PublicKey],
    revoked_at: Mapping[str, float],
) -> Checkpoint | None:
    """The first checkpoint covering the run, by a key valid when it signed."""
    for stored in await store.checkpoints():
        checkpoint = stored.checkpoint
        if checkpoint is None or checkpoint.tree_size < run.end:
            continue
        revoked = revoked_at.get(checkpoint.key_id)
        if checkpoint.key_id in keys and (
            revoked is None or checkpoint.timestamp < revoked
        ):
            return checkpoint
    return None


async def _archive(
    store: LogStore,
    run: _Run,
    *,
    checkpoint: Checkpoint,
    out_dir: Path,
    keys: Mapping[str, PublicKey],
    clock: Callable[[], float],
) -> ArchiveEntry:
    """Steps 2 to 4 for one period."""
    name = f"messagelog-{run.period.name}-{run.first}.zip"
    path = out_dir / name
    if path.exists():
        raise ArchiveError(f"{path} exists already: move it away or verify it")
    partial = out_dir / f".{name}.part"
    try:
        await _write(
            store, run, checkpoint=checkpoint, keys=keys, path=partial, created=clock()
        )
        _sync(partial)
        partial.replace(path)
        _sync(out_dir)
    finally:
        partial.unlink(missing_ok=True)

    report = verify_archive(path, keys)
    if not report.ok or (report.first_seq, report.end_seq) != (run.first, run.end):
        path.unlink(missing_ok=True)
        problem = report.problem or "it does not hold the period's records"
        raise ArchiveError(f"archive of {run.period.name} does not verify: {problem}")

    entry = ArchiveEntry(
        name=name,
        period=run.period.name,
        period_end=run.period.end,
        first_seq=run.first,
        end_seq=run.end,
        tree_size=checkpoint.tree_size,
        sha256=_file_sha256(path),
        created=clock(),
    )
    await store.prune(entry)
    return entry


async def _write(
    store: LogStore,
    run: _Run,
    *,
    checkpoint: Checkpoint,
    keys: Mapping[str, PublicKey],
    path: Path,
    created: float,
) -> None:
    manifest = {
        "format": FORMAT,
        "period": run.period.name,
        "period_start": run.period.start,
        "period_end": run.period.end,
        "first_seq": run.first,
        "end_seq": run.end,
        "records": run.end - run.first,
        "prev_hash": run.prev_hash,
        "last_hash": run.last_hash,
        "tree_size": checkpoint.tree_size,
        "created": created,
    }
    jwks = {"keys": [public_jwk(checkpoint.key_id, keys[checkpoint.key_id])]}
    create_private_file(path)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open(RECORDS, "w", force_zip64=True) as out:
            await _write_records(store, run, out)
        with archive.open(PROOFS, "w", force_zip64=True) as out:
            await _write_proofs(store, run, checkpoint, out)
        with archive.open(BODIES, "w", force_zip64=True) as out:
            labels = await _write_bodies(store, run, out)
        envelopes = {label: await store.body_key(label) for label in sorted(labels)}
        archive.writestr(
            BODY_KEYS,
            orjson.dumps(
                {k: orjson.loads(v) for k, v in envelopes.items() if v is not None}
            ),
        )
        archive.writestr(CHECKPOINT, checkpoint.to_json())
        archive.writestr(JWKS, orjson.dumps(jwks, option=orjson.OPT_INDENT_2))
        archive.writestr(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


async def _write_records(store: LogStore, run: _Run, out: IO[bytes]) -> None:
    async with contextlib.aclosing(store.iter_records(run.first)) as chunks:
        async for chunk in chunks:
            for row in chunk:
                if row.seq >= run.end:
                    return
                out.write(row.canonical + b"\n")


async def _write_proofs(
    store: LogStore, run: _Run, checkpoint: Checkpoint, out: IO[bytes]
) -> None:
    """Each record's audit path, from the stored nodes a chunk at a time."""
    size, root = checkpoint.tree_size, bytes.fromhex(checkpoint.root_hash)
    position = run.first
    async with contextlib.aclosing(store.iter_leaf_hashes(run.first)) as chunks:
        async for chunk in chunks:
            leaves = chunk[: run.end - position]
            seqs = list(range(position, position + len(leaves)))
            paths = await proofs.checked_inclusion_proofs(
                store, seqs, size, leaves, root
            )
            if paths is None:
                # A stored node was altered: build from every leaf instead.
                try:
                    paths = await streamed_inclusion_paths(store, seqs, size)
                except EvidenceError as exc:
                    raise ArchiveError(str(exc)) from exc
            for seq, leaf, path in zip(seqs, leaves, paths, strict=True):
                line = {
                    "seq": seq,
                    "leaf_hash": leaf.hex(),
                    "inclusion_path": [node.hex() for node in path],
                }
                out.write(orjson.dumps(line) + b"\n")
            position += len(leaves)
            if position >= run.end:
                return


async def _write_bodies(store: LogStore, run: _Run, out: IO[bytes]) -> set[str]:
    """The encrypted body entries of the run; returns their data key labels."""
    labels: set[str] = set()
    for start in range(run.first, run.end, CHUNK):
        seqs = list(range(start, min(start + CHUNK, run.end)))
        for seq, entries in sorted((await store.bodies(seqs)).items()):
            line = {"seq": seq, "entries": entries.decode()}
            out.write(orjson.dumps(line) + b"\n")
            label = stored_label(entries)
            if label is not None:
                labels.add(label)
    return labels


def _ts(canonical: bytes, seq: int) -> float:
    try:
        ts = parse(canonical).get("ts")
    except ValueError:
        ts = None
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ArchiveError(f"record seq {seq} has no readable time")
    return float(ts)


def _sync(path: Path) -> None:
    """fsync a file or a directory (so a rename is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
