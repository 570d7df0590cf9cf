"""Verifying a whole message log from its store and the node's public keys alone.

The records are streamed in seq order, so memory stays flat however long the log.
For each record, in this order:

1. the row's seq continues the previous one (else a record is missing);
2. the SHA-256 of the stored canonical bytes is the stored ``hash`` and their RFC
   9162 leaf hash is the stored leaf (else the record was changed), and the
   columns searches use (time, message id, client, service, decision, subject
   hash) hold the record's own values (else a search would show an altered log
   that the hashes alone do not reveal);
3. the ``seq`` inside the record is its position (else records were reordered,
   removed or inserted);
4. its ``prev_hash`` is the hash of the record before (else one of the two was
   changed);
5. its leaf joins the rebuilt tree.

When the rebuilt tree reaches a checkpoint's size, the checkpoint's key must be
known (retired keys included), not revoked at the checkpoint's time, its signature
valid, its root the rebuilt root, and an RFC 9162 consistency
proof from the previous checkpoint, built from the records, must verify. The
report names the first problem found and stops there.

Records moved to archive files (see :mod:`gateway.msglog.archive`) left only their
seq, hash and leaf hash behind. That prefix is verified by hash only: the kept
leaves must be contiguous from seq 0, they join the tree like any leaf (so an
altered one gives another root at the next checkpoint), a checkpoint must cover
all of them, and the first live record must chain to the last kept hash.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.keytypes import parse_metadata
from gateway.msglog import merkle
from gateway.msglog.checkpoint import Checkpoint, PublicKey, verify_signature
from gateway.msglog.records import parse, record_hash, search_columns
from gateway.msglog.store import (
    SEARCH_COLUMNS,
    ArchivedLeaf,
    LogStore,
    StoredCheckpoint,
    StoredRecord,
)

HASH_MISMATCH = "hash mismatch"
MISSING_RECORD = "missing record"
REORDERED = "reordered"
INSERTED_RECORD = "inserted record"
ROOT_MISMATCH = "checkpoint root mismatch"
BAD_SIGNATURE = "bad checkpoint signature"
UNKNOWN_KEY = "unknown key id"
REVOKED_KEY = "signed by revoked key"
BACKDATED = "checkpoint time goes backwards"
UNSEALED_ARCHIVE = "archived records not sealed"
SEARCH_COLUMN_MISMATCH = "search column mismatch"
UNSEALED_RECORDS = "records not sealed"


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing found wrong: its kind, where, and a plain explanation."""

    kind: str
    detail: str
    seq: int | None = None
    checkpoint: int | None = None

    def __str__(self) -> str:
        kind = (
            f"{self.kind} (gap at seq {self.seq})"
            if self.kind == MISSING_RECORD
            else self.kind
        )
        where = []
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.checkpoint is not None:
            where.append(f"checkpoint #{self.checkpoint}")
        return f"{kind} at {', '.join(where)}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What was checked and the first problem, if any."""

    records: int
    checkpoints: int
    signatures_verified: int
    consistency_verified: int
    problem: Problem | None
    #: How many of ``records`` are archived, verified by their kept hashes only.
    archived: int = 0
    #: Records after the last checkpoint: intact as far as the chain shows, but
    #: not yet proved by a signed root.
    unsealed: int = 0
    #: The time of the oldest unsealed record, if any.
    unsealed_since: float | None = None

    @property
    def ok(self) -> bool:
        """True if the log is intact."""
        return self.problem is None


class _Verifier:
    def __init__(
        self,
        checkpoints: list[StoredCheckpoint],
        keys: Mapping[str, PublicKey],
        revoked_at: Mapping[str, float],
    ):
        self.keys = keys
        self.revoked_at = revoked_at
        self.tree = merkle.CompactRange()
        self.prev_hash = ""
        self.queue = sorted(checkpoints, key=_size_of)
        self.total_checkpoints = len(checkpoints)
        self.checked = 0
        self.signatures = 0
        self.consistency = 0
        self.last_sealed: Checkpoint | None = None
        self.builder: merkle.ConsistencyProofBuilder | None = None
        self.archived = 0
        #: The size the largest checkpoint claims: records from there on are unsealed.
        self.sealed_size = max(map(_size_of, checkpoints), default=0)
        self.unsealed_since: float | None = None

    def archived_leaf(self, kept: ArchivedLeaf) -> Problem | None:
        """Add the kept hashes of an archived record (they must be contiguous)."""
        p = self.tree.size
        if kept.seq != p:
            detail = f"the next archived leaf is seq {kept.seq}"
            return Problem(MISSING_RECORD, detail, seq=p)
        self.tree.append(kept.leaf_hash)
        if self.builder is not None:
            self.builder.add(kept.leaf_hash)
        self.prev_hash = kept.hash
        self.archived += 1
        return self.sealed()

    def archive_sealed(self) -> Problem | None:
        """Whether a checkpoint covers every archived leaf (else they are unproved)."""
        sizes = [_size_of(stored) for stored in self.queue]
        if self.last_sealed is not None:
            sizes.append(self.last_sealed.tree_size)
        if self.archived == 0 or max(sizes, default=0) >= self.archived:
            return None
        detail = f"no checkpoint covers the {self.archived} archived leaves"
        return Problem(UNSEALED_ARCHIVE, detail, seq=self.archived - 1)

    def record(self, row: StoredRecord, after: StoredRecord | None) -> Problem | None:
        p = self.tree.size
        leaf = merkle.leaf_hash(row.canonical)
        value = _parsed(row.canonical)
        claimed, prev_hash = _fields_of(value)
        problem = (
            self._row_problem(p, row, leaf, value)
            or self._position_problem(p, claimed, after)
            or self._chain_problem(p, prev_hash, row, after)
        )
        if problem is not None:
            return problem

        if p == self.sealed_size and value is not None:
            self.unsealed_since = _time_of(value)
        # step 5: the leaf joins the tree
        self.tree.append(leaf)
        if self.builder is not None:
            self.builder.add(leaf)
        self.prev_hash = row.hash
        return self.sealed()

    def _row_problem(
        self, p: int, row: StoredRecord, leaf: bytes, value: dict[str, Any] | None
    ) -> Problem | None:
        # step 1: the rows are contiguous
        if row.seq != p:
            detail = f"the next stored record is seq {row.seq}"
            return Problem(MISSING_RECORD, detail, seq=p)

        # step 2: the stored bytes are what was hashed
        if record_hash(row.canonical) != row.hash:
            detail = "the stored bytes do not match its hash"
            return Problem(HASH_MISMATCH, detail, seq=p)
        if leaf != row.leaf_hash:
            detail = "the stored leaf hash is not its leaf"
            return Problem(HASH_MISMATCH, detail, seq=p)
        column = _altered_column(row, value)
        if column is not None:
            detail = f"the stored {column} is not the record's"
            return Problem(SEARCH_COLUMN_MISMATCH, detail, seq=p)
        return None

    def _position_problem(
        self, p: int, claimed: int | None, after: StoredRecord | None
    ) -> Problem | None:
        # step 3: the record is where it says it is
        if claimed is None:
            detail = "the record is not a sealed log record"
            return Problem(HASH_MISMATCH, detail, seq=p)
        if claimed < p:
            detail = f"a second record claims seq {claimed}"
            return Problem(INSERTED_RECORD, detail, seq=claimed)
        if claimed == p:
            return None
        if after is not None and _fields(after)[0] == p:
            detail = f"seq {claimed} is stored before seq {p}"
            return Problem(REORDERED, detail, seq=p)
        return Problem(MISSING_RECORD, f"the next record claims seq {claimed}", seq=p)

    def _chain_problem(
        self,
        p: int,
        prev_hash: str | None,
        row: StoredRecord,
        after: StoredRecord | None,
    ) -> Problem | None:
        # step 4: the chain is unbroken
        if prev_hash == self.prev_hash:
            return None
        return self._broken_chain(p, row, after)

    def _broken_chain(
        self, p: int, row: StoredRecord, after: StoredRecord | None
    ) -> Problem:
        # If the record after this one still chains to it, this one is intact and
        # the record before it was changed; otherwise this one was.
        if after is not None and _fields(after)[1] == row.hash:
            detail = f"seq {p}'s prev_hash does not match it: it was changed"
            return Problem(HASH_MISMATCH, detail, seq=p - 1)
        return Problem(
            HASH_MISMATCH, f"its prev_hash does not match seq {p - 1}", seq=p
        )

    def sealed(self) -> Problem | None:
        while self.queue and _size_of(self.queue[0]) == self.tree.size:
            stored = self.queue.pop(0)
            problem = self._checkpoint_problem(stored)
            if problem is not None:
                return problem
        return None

    def _checkpoint_problem(self, stored: StoredCheckpoint) -> Problem | None:
        checkpoint, number = stored.checkpoint, stored.number
        self.checked += 1
        if checkpoint is None:
            return Problem(
                BAD_SIGNATURE, "the checkpoint is unreadable", checkpoint=number
            )
        problem = self._key_problem(checkpoint, number)
        if problem is not None:
            return problem
        self.signatures += 1

        root = self.tree.root()
        if not hmac.compare_digest(checkpoint.root_hash, root.hex()):
            detail = f"the records give another root at size {checkpoint.tree_size}"
            return Problem(ROOT_MISMATCH, detail, checkpoint=number)
        if not self._consistent(checkpoint):
            detail = "no consistency proof from the previous checkpoint verifies"
            return Problem(ROOT_MISMATCH, detail, checkpoint=number)

        self.last_sealed = checkpoint
        self.builder = None
        if self.queue and self.queue[0].checkpoint is not None:
            self.builder = merkle.ConsistencyProofBuilder(
                self.tree.copy(), _size_of(self.queue[0])
            )
        return None

    def _key_problem(self, checkpoint: Checkpoint, number: int) -> Problem | None:
        key = self.keys.get(checkpoint.key_id)
        if key is None:
            return Problem(
                UNKNOWN_KEY, "no public key has its key id", checkpoint=number
            )
        if not verify_signature(checkpoint, key):
            return Problem(
                BAD_SIGNATURE, "the signature does not verify", checkpoint=number
            )
        revoked = self.revoked_at.get(checkpoint.key_id)
        if revoked is not None and checkpoint.timestamp >= revoked:
            detail = f"key {checkpoint.key_id} was revoked before the checkpoint's time"
            return Problem(REVOKED_KEY, detail, checkpoint=number)
        return None

    def _consistent(self, checkpoint: Checkpoint) -> bool:
        previous, builder = self.last_sealed, self.builder
        if previous is None or builder is None:
            return True
        proof = builder.proof()
        self.consistency += 1
        return merkle.verify_consistency(
            previous.tree_size,
            checkpoint.tree_size,
            bytes.fromhex(previous.root_hash),
            bytes.fromhex(checkpoint.root_hash),
            proof,
        )

    def unsealed_tail(self, stale_before: float | None) -> Problem | None:
        if self.queue:
            stored = self.queue[0]
            detail = f"checkpoint #{stored.number} covers {_size_of(stored)} records"
            return Problem(
                MISSING_RECORD, detail, seq=self.tree.size, checkpoint=stored.number
            )
        since = self.unsealed_since
        if stale_before is None or since is None or since >= stale_before:
            return None
        unsealed = self.tree.size - self.sealed_size
        detail = (
            f"{unsealed} records after the last checkpoint are older than a "
            "running node leaves them unsealed: checkpoints are missing"
        )
        return Problem(UNSEALED_RECORDS, detail, seq=self.sealed_size)

    def report(self, problem: Problem | None) -> VerifyReport:
        return VerifyReport(
            records=self.tree.size,
            checkpoints=self.checked,
            signatures_verified=self.signatures,
            consistency_verified=self.consistency,
            problem=problem,
            archived=self.archived,
            unsealed=max(0, self.tree.size - self.sealed_size),
            unsealed_since=self.unsealed_since,
        )


async def verify_log(
    store: LogStore,
    public_keys: Mapping[str, PublicKey],
    *,
    progress: Callable[[int], None] | None = None,
    revoked_at: Mapping[str, float] | None = None,
    stale_before: float | None = None,
) -> VerifyReport:
    """Verify every record and checkpoint of ``store``; see the module's steps.

    ``public_keys`` should hold every key that ever signed (retired and revoked
    ones too, e.g. from :func:`keys_from_keyring`); ``revoked_at`` maps a revoked
    key id to its revocation time, from which on its checkpoints are flagged.
    ``progress`` is called with the number of records checked so far. Records
    after the last checkpoint are counted in the report; with ``stale_before``
    (a time), unsealed records older than it are a problem: a running node seals
    within its checkpoint interval, so such records lost their checkpoints (or
    their node stopped without sealing). Store failures raise
    NodeError(LOG_UNAVAILABLE); a damaged log is a report, not an error.
    """
    checkpoints = await store.checkpoints()
    verifier = _Verifier(checkpoints, public_keys, revoked_at or {})
    problem = _checkpoint_order(checkpoints)
    if problem is not None:
        return verifier.report(problem)

    problem = verifier.sealed() or await _archived_prefix(store, verifier)
    if problem is not None:
        return verifier.report(problem)

    live = _with_next(store, progress, verifier.archived)
    async with contextlib.aclosing(live) as pairs:
        async for row, after in pairs:
            problem = verifier.record(row, after)
            if problem is not None:
                return verifier.report(problem)
    return verifier.report(verifier.unsealed_tail(stale_before))


def _checkpoint_order(checkpoints: list[StoredCheckpoint]) -> Problem | None:
    """Checkpoints are saved as the log grows and time passes: neither goes back.

    A checkpoint dated before an earlier one was backdated, for instance signed
    with a revoked key under a time before its revocation.
    """
    largest, latest = 0, float("-inf")
    for stored in checkpoints:
        if stored.checkpoint is None:
            continue
        size, moment = stored.checkpoint.tree_size, stored.checkpoint.timestamp
        if size < largest:
            detail = f"its size {size} is below an earlier checkpoint's {largest}"
            return Problem(REORDERED, detail, checkpoint=stored.number)
        if moment < latest:
            detail = "it is dated before an earlier checkpoint"
            return Problem(BACKDATED, detail, checkpoint=stored.number)
        largest, latest = size, moment
    return None


def keys_from_keyring(
    document: Any, source: str
) -> tuple[dict[str, PublicKey], dict[str, float]]:
    """Every key of a ``keyring.json`` document, and revocation times by key id.

    Needs only the public metadata, no passphrase. Raises ConfigError naming
    ``source`` if the document is not a keyring.
    """
    entries = parse_metadata(document, source)
    keys = {kid: entry.public_key for kid, entry in entries.items()}
    revoked = {
        kid: float(entry.revoked_at)
        for kid, entry in entries.items()
        if entry.revoked_at is not None
    }
    return keys, revoked


async def _archived_prefix(store: LogStore, verifier: _Verifier) -> Problem | None:
    """Feed the kept hashes of archived records; the first problem, if any."""
    async with contextlib.aclosing(store.iter_archived_leaves()) as chunks:
        async for chunk in chunks:
            for kept in chunk:
                problem = verifier.archived_leaf(kept)
                if problem is not None:
                    return problem
    return verifier.archive_sealed()


async def _with_next(
    store: LogStore, progress: Callable[[int], None] | None, done: int = 0
) -> AsyncGenerator[tuple[StoredRecord, StoredRecord | None], None]:
    """Each record with the one after it, streaming chunk by chunk.

    ``progress`` gets the records checked so far, ``done`` of them before these.
    """
    held: StoredRecord | None = None
    async with contextlib.aclosing(store.iter_records()) as chunks:
        async for chunk in chunks:
            for row in chunk:
                if held is not None:
                    yield held, row
                held = row
            done += len(chunk)
            if progress is not None:
                progress(done)
    if held is not None:
        yield held, None


def _parsed(canonical: bytes) -> dict[str, Any] | None:
    try:
        return parse(canonical)
    except ValueError:
        return None


def _fields(row: StoredRecord) -> tuple[int | None, str | None]:
    """The record's own ``seq`` and ``prev_hash``; None if it has no valid ones."""
    return _fields_of(_parsed(row.canonical))


def _fields_of(value: dict[str, Any] | None) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    seq, prev_hash = value.get("seq"), value.get("prev_hash")
    if (
        isinstance(seq, bool)
        or not isinstance(seq, int)
        or not isinstance(prev_hash, str)
    ):
        return None, None
    return seq, prev_hash


def _altered_column(row: StoredRecord, value: dict[str, Any] | None) -> str | None:
    """The first search column whose stored value is not the record's, if any.

    A record whose bytes match its hash but cannot be read is judged by the
    later steps (its seq and prev_hash), not here.
    """
    if not row.search or value is None:
        return None
    try:
        derived = search_columns(value)
    except (KeyError, TypeError, ValueError):
        return None
    for name, stored, own in zip(SEARCH_COLUMNS, row.search, derived, strict=True):
        if stored != own or type(stored) is not type(own):
            return name
    return None


def _time_of(value: dict[str, Any]) -> float | None:
    ts = value.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    return float(ts)


def _size_of(stored: StoredCheckpoint) -> int:
    # An unreadable checkpoint is judged first, at size 0.
    return stored.checkpoint.tree_size if stored.checkpoint is not None else 0
