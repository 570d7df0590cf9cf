"""The message log writer: group commit, sealing, and failing closed.

Every exchange appends one record and waits until the transaction that holds it is
durable. One writer task owns the log's state: it takes the pending records (up to
``group_commit_max``, waiting at most ``group_commit_ms`` for more), assigns each
its ``seq`` and ``prev_hash``, writes the batch in one transaction and only then
advances the Merkle frontier and answers the waiting appends. Because one task does
all of this, the order of ``seq`` is exactly the order of the chain and the tree.

If a write fails, every append in that batch raises ``NodeError(LOG_UNAVAILABLE)``
and :attr:`MessageLog.available` is false until a later write succeeds; nothing is
half-assigned, so the next record takes the seq the failed batch would have used.

A checkpoint seals only committed records: it is built from the frontier, which
moves only after a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.errors import NodeError, Reason
from gateway.msglog.checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    CheckpointSigner,
    make_checkpoint,
)
from gateway.msglog.merkle import CompactRange
from gateway.msglog.records import RecordError, SealedRecord, seal
from gateway.msglog.store import LogStore, StoreError

logger = structlog.get_logger(__name__)

_Pending = tuple[dict[str, Any], "asyncio.Future[Receipt]"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a committed record sits in the log."""

    seq: int
    hash: str
    leaf_hash: bytes


class MessageLog:
    """The append-only, tamper-evident message log of one node.

    Without a ``signer`` no checkpoints are sealed. ``origin`` names the log in its
    checkpoints (the node id).
    """

    def __init__(
        self,
        store: LogStore,
        *,
        group_commit_ms: float = 2.0,
        group_commit_max: int = 256,
        checkpoint_interval_s: float = 5.0,
        signer: CheckpointSigner | None = None,
        origin: str = DEFAULT_ORIGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._window = group_commit_ms / 1000
        self._max = max(1, group_commit_max)
        self._interval = checkpoint_interval_s
        self._signer = signer
        self._origin = origin
        self._clock = clock

        self._tree = CompactRange()
        self._last_hash = ""
        self._sealed_size = 0
        self._available = False
        self._needs_resync = False
        self._closing = False
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._seal_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._sealer: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False before start, after close, and after a failed write until one works."""
        return self._available and self._writer is not None and not self._closing

    @property
    def size(self) -> int:
        """The number of committed records."""
        return self._tree.size

    async def start(self) -> None:
        """Open the store and rebuild the frontier from the stored leaves.

        Raises NodeError(LOG_UNAVAILABLE) if the store cannot be read or its records
        are not contiguous.
        """
        await self._store.open()
        try:
            await self._reload()
            latest = await self._store.latest_checkpoint()
        except NodeError:
            await self._store.close()
            raise
        self._sealed_size = latest.tree_size if latest is not None else 0

        self._closing = False
        self._available = True
        self._writer = asyncio.create_task(self._write_loop(), name="msglog-writer")
        if self._signer is not None:
            self._sealer = asyncio.create_task(self._seal_loop(), name="msglog-sealer")

    async def append(self, record: Mapping[str, Any]) -> Receipt:
        """Log one exchange record; returns once its transaction has committed.

        Raises RecordError if the record is not valid or not canonical JSON (it is
        not stored), and NodeError(LOG_UNAVAILABLE) if the log is not running or the
        write failed.
        """
        if self._writer is None or self._closing:
            raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="log_not_running")

        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending.append((dict(record), future))
        self._wakeup.set()
        if len(self._pending) >= self._max:
            self._full.set()
        return await future

    async def checkpoint(self) -> Checkpoint | None:
        """Seal the committed records now; None if unsigned or nothing is new.

        Raises NodeError(SIGNING_UNAVAILABLE) if signing fails and
        NodeError(LOG_UNAVAILABLE) if the checkpoint cannot be stored.
        """
        if self._signer is None:
            return None
        async with self._seal_lock:
            size = self._tree.size
            if size in (0, self._sealed_size):
                return None
            checkpoint = await self._sign(size, self._tree.root())
            await self._store.save_checkpoint(checkpoint)
            self._sealed_size = size
            return checkpoint

    async def close(self) -> None:
        """Commit what is pending, seal a final checkpoint, close the store."""
        if self._writer is None:
            return
        self._closing = True
        self._wakeup.set()
        self._full.set()
        await self._writer
        if self._sealer is not None:
            self._sealer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sealer

        try:
            await self.checkpoint()
        except NodeError as exc:
            logger.warning("msglog_final_checkpoint_failed", reason=exc.log_reason)
        await self._store.close()
        self._writer = self._sealer = None

    # -- the writer task ---------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue

            await self._gather()
            batch = self._pending[: self._max]
            del self._pending[: self._max]
            if len(self._pending) < self._max:
                self._full.clear()
            await self._commit(batch)

    async def _gather(self) -> None:
        """Wait up to the group commit window for the batch to fill."""
        if len(self._pending) >= self._max or self._closing or self._window <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._window):
                await self._full.wait()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            if self._needs_resync:
                await self._resync()
        except Exception:  # noqa: BLE001 - translated: the batch fails closed
            _fail_all([future for _, future in batch], "log_resync_failed")
            return

        rows, futures = self._seal_batch(batch)
        if not rows:
            return
        try:
            await self._store.append_batch(rows)
        except Exception as exc:  # noqa: BLE001 - every store failure must fail closed
            self._available = False
            self._needs_resync = True
            logger.warning("msglog_write_failed", error=type(exc).__name__)
            _fail_all(futures, "log_write_failed")
            return

        for row in rows:
            self._tree.append(row.leaf_hash)
        self._last_hash = rows[-1].hash
        self._available = True
        for row, future in zip(rows, futures, strict=True):
            if not future.done():
                future.set_result(Receipt(row.seq, row.hash, row.leaf_hash))

    def _seal_batch(
        self, batch: list[_Pending]
    ) -> tuple[list[SealedRecord], list[asyncio.Future[Receipt]]]:
        """Assign seq and prev_hash; a record that cannot be sealed fails alone."""
        rows: list[SealedRecord] = []
        futures: list[asyncio.Future[Receipt]] = []
        seq, prev_hash = self._tree.size, self._last_hash
        for record, future in batch:
            try:
                row = seal(record, seq, prev_hash)
            except RecordError as exc:
                if not future.done():
                    future.set_exception(exc)
                continue
            rows.append(row)
            futures.append(future)
            seq, prev_hash = seq + 1, row.hash
        return rows, futures

    async def _resync(self) -> None:
        """After a failed write, make sure the store holds what the frontier says.

        A commit can fail after it became durable; then the store is ahead and the
        frontier is rebuilt from it, so no seq is used twice.
        """
        tail = await self._store.tail()
        if tail.size == self._tree.size and tail.last_hash == self._last_hash:
            self._needs_resync = False
            return
        await self._reload()

    async def _reload(self) -> None:
        """Rebuild the frontier and chain head from the store (start, after a failure).

        Raises NodeError(LOG_UNAVAILABLE) if the stored records are not contiguous.
        """
        tree = CompactRange()
        async with contextlib.aclosing(self._store.iter_leaf_hashes()) as chunks:
            async for chunk in chunks:
                for leaf in chunk:
                    tree.append(leaf)
        tail = await self._store.tail()
        if tail.size != tree.size:
            raise StoreError("recover_not_contiguous")

        self._tree, self._last_hash = tree, tail.last_hash
        self._needs_resync = False

    # -- the sealer task ---------------------------------------------------------------

    async def _seal_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.checkpoint()
            except NodeError as exc:
                logger.warning("msglog_checkpoint_failed", reason=exc.log_reason)

    async def _sign(self, size: int, root: bytes) -> Checkpoint:
        signer = self._signer
        if signer is None:
            raise NodeError(
                Reason.SIGNING_UNAVAILABLE, log_reason="no_checkpoint_signer"
            )
        try:
            return await asyncio.to_thread(
                make_checkpoint, self._origin, size, root, self._clock(), signer
            )
        except NodeError:
            raise
        except Exception as exc:
            raise NodeError(
                Reason.SIGNING_UNAVAILABLE, log_reason="checkpoint_sign_failed"
            ) from exc


def _fail_all(futures: list[asyncio.Future[Receipt]], log_reason: str) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(
                NodeError(Reason.LOG_UNAVAILABLE, log_reason=log_reason)
            )
