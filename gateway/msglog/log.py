"""The message log writer: group commit, sealing, and failing closed.

Every append waits until the transaction that holds its record has committed. A
forwarded exchange appends twice: its request record before it leaves the node,
committed but not yet flushed to stable storage (``flush=False``), and its
response record before the answer, flushed, which makes both durable. A store
that cannot take the request record raises, so nothing is forwarded; a node that
dies between the two sent no answer. One writer task owns the log's state: it takes the
pending records (up to ``group_commit_max``), assigns each its ``seq`` and
``prev_hash``, writes the batch in one transaction and only then
advances the Merkle frontier and answers the waiting appends. Because one task does
all of this, the order of ``seq`` is exactly the order of the chain and the tree.

Batches form by themselves: records that arrive while a commit is running make up
the next one, so an idle log commits at once and a busy one commits in large
batches. ``group_commit_ms`` adds a wait for more records before each commit; it
is 0 by default, because the wait only adds latency when commits already batch.

Sequence numbers come from the database: the store seals each batch after the
stored tail inside the transaction that excludes other writers, so several nodes
can write one PostgreSQL log. After a commit the frontier takes the batch's leaves
if they extend it; if other nodes committed in between, it stays behind until a
checkpoint catches it up from the store.

If a write fails, every append in that batch raises ``NodeError(LOG_UNAVAILABLE)``
and :attr:`MessageLog.available` is false until a later write succeeds or the store
answers one of the probes a recovery task sends every ``recovery_probe_s``; nothing
is half-assigned, so the next record takes the seq the failed batch would have used.
Availability is a hint for refusing early: what keeps the node closed is that an
exchange's request record must be durable before the exchange leaves the node.

A checkpoint seals only committed, contiguous records: the frontier catches up to
the store's tail, and the checkpoint is built from it. Only the elected sealer
(:meth:`LogStore.claim_sealer`) seals, and never below a stored checkpoint's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.errors import NodeError, Reason
from gateway.msglog.bodylog import BodyLog
from gateway.msglog.checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    CheckpointSigner,
    make_checkpoint,
)
from gateway.msglog.merkle import CompactRange
from gateway.msglog.records import RecordError, SealedRecord, seal
from gateway.msglog.store import LogStore, LogTail, StoreError

logger = structlog.get_logger(__name__)

_Pending = tuple[dict[str, Any], "asyncio.Future[Receipt]", bytes | None, bool]
#: The request body as received and the response body as sent.
Bodies = tuple[bytes | None, bytes | None]


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
        group_commit_ms: float = 0.0,
        group_commit_max: int = 256,
        checkpoint_interval_s: float = 5.0,
        signer: CheckpointSigner | None = None,
        origin: str = DEFAULT_ORIGIN,
        clock: Callable[[], float] = time.time,
        bodies: BodyLog | None = None,
        recovery_probe_s: float = 0.5,
    ) -> None:
        self._store = store
        self._recovery_probe_s = recovery_probe_s
        self._recovery: asyncio.Task[None] | None = None
        self._bodies = bodies
        self._window = group_commit_ms / 1000
        self._max = max(1, group_commit_max)
        self._interval = checkpoint_interval_s
        self._signer = signer
        self._origin = origin
        self._clock = clock

        # Interior nodes completed since the last checkpoint, stored with it so
        # that proofs read O(log n) rows. Only collected when checkpoints are made.
        self._nodes: list[tuple[int, int, bytes]] | None = (
            [] if signer is not None else None
        )
        self._tree = CompactRange(self._nodes)
        #: The size of the log after the last batch this node committed.
        self._committed = 0
        self._available = False
        self._closing = False
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._seal_lock = asyncio.Lock()
        self._tree_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._sealer: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False before start, after close, and after a failed write until one works."""
        return self._available and self._writer is not None and not self._closing

    @property
    def size(self) -> int:
        """The number of committed records this node knows of."""
        return max(self._tree.size, self._committed)

    async def start(self) -> None:
        """Open the store and rebuild the frontier from the stored leaves.

        Raises NodeError(LOG_UNAVAILABLE) if the store cannot be read or its records
        are not contiguous.
        """
        await self._store.open()
        try:
            await self._reload()
        except NodeError:
            await self._store.close()
            raise

        self._closing = False
        self._available = True
        self._writer = asyncio.create_task(self._write_loop(), name="msglog-writer")
        if self._signer is not None:
            self._sealer = asyncio.create_task(self._seal_loop(), name="msglog-sealer")
            self._sealer.add_done_callback(_log_task_end)

    async def append(
        self,
        record: Mapping[str, Any],
        *,
        bodies: Bodies | None = None,
        flush: bool = True,
    ) -> Receipt:
        """Log one record; returns once its transaction has committed.

        With ``flush`` (the default) the record is on stable storage when this
        returns. Without it the record is committed, so a store that cannot take
        it still raises, but it reaches stable storage with the next flushed
        batch; a batch is flushed if any record in it asks for that.

        For a service whose bodies are logged encrypted, ``bodies`` are encrypted
        and stored beside the record in the same transaction, and the record gets
        their digest. Raises RecordError if the record is not valid or not
        canonical JSON (it is not stored), and NodeError(LOG_UNAVAILABLE) if the
        log is not running, the data key cannot be stored or the write failed.
        """
        if self._writer is None or self._closing:
            raise NodeError(Reason.LOG_UNAVAILABLE, log_reason="log_not_running")

        row, stored = dict(record), None
        if bodies is not None and self._bodies is not None:
            row, stored = await self._seal_bodies(self._bodies, row, bodies)
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending.append((row, future, stored, flush))
        self._wakeup.set()
        if len(self._pending) >= self._max:
            self._full.set()
        return await future

    async def _seal_bodies(
        self, body_log: BodyLog, row: dict[str, Any], bodies: Bodies
    ) -> tuple[dict[str, Any], bytes | None]:
        service_id, message_id = row.get("service_id"), row.get("message_id")
        if not body_log.encrypts(service_id) or not isinstance(message_id, str):
            return row, None
        key = await body_log.key()
        sealed = body_log.seal(key, str(service_id), message_id, bodies)
        return {**row, **sealed.fields}, sealed.stored

    async def checkpoint(self) -> Checkpoint | None:
        """Seal the committed records now; None if unsigned or nothing is new.

        Raises NodeError(SIGNING_UNAVAILABLE) if signing fails and
        NodeError(LOG_UNAVAILABLE) if the checkpoint cannot be stored.
        """
        if self._signer is None:
            return None
        async with self._seal_lock:
            if not await self._store.claim_sealer():
                return None
            async with self._tree_lock:
                await self._catch_up((await self._store.tail()).size)
                size, root = self._tree.size, self._tree.root()
                nodes = list(self._nodes or ())
            await self._save_nodes(nodes)
            latest = await self._store.latest_checkpoint()
            if size == 0 or (latest is not None and latest.tree_size >= size):
                return None
            checkpoint = await self._sign(size, root)
            await self._store.save_checkpoint(checkpoint)
            return checkpoint

    async def _save_nodes(self, nodes: list[tuple[int, int, bytes]]) -> None:
        """Store the collected interior nodes, then forget the ones stored."""
        if not nodes or self._nodes is None:
            return
        await self._store.save_nodes(nodes)
        # Only ever appended to (or replaced on reload): the first ones are stored.
        if self._nodes[: len(nodes)] == nodes:
            del self._nodes[: len(nodes)]

    async def close(self) -> None:
        """Commit what is pending, seal a final checkpoint, close the store.

        The sealer and recovery tasks are stopped first; however they end, the
        final checkpoint is tried and the store closed (a task that failed is
        logged as it ends, by the type of its error).
        """
        if self._writer is None:
            return
        self._closing = True
        self._wakeup.set()
        self._full.set()
        # Shielded: a close() cancelled here leaves the writer to answer its
        # batch, and a later close() finishes the work.
        await asyncio.shield(self._writer)
        tasks = [task for task in (self._recovery, self._sealer) if task is not None]
        self._recovery = self._sealer = None
        for task in tasks:
            task.cancel()
        if tasks:
            # Waits without raising what a task ended with: a driver cancelled in
            # the middle of a call may end it with its own error, not CancelledError.
            await asyncio.wait(tasks)

        try:
            await self.checkpoint()
        except NodeError as exc:
            logger.warning("msglog_final_checkpoint_failed", reason=exc.log_reason)
        finally:
            await self._store.close()
            self._writer = None

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
        sealed: list[tuple[SealedRecord, asyncio.Future[Receipt]]] = []
        failed: list[tuple[asyncio.Future[Receipt], RecordError]] = []

        def seal_after(tail: LogTail) -> list[SealedRecord]:
            # May run on the store's thread: only builds lists, touches no future.
            sealed[:], failed[:] = _seal_batch(batch, tail)
            return [row for row, _ in sealed]

        flush = any(wants_flush for *_, wants_flush in batch)
        try:
            rows = await self._store.append_sealing(seal_after, flush=flush)
        except Exception as exc:  # noqa: BLE001 - every store failure must fail closed
            self._available = False
            logger.warning("msglog_write_failed", error=type(exc).__name__)
            _fail_all([pending[1] for pending in batch], "log_write_failed")
            self._recover()
            return
        finally:
            for future, error in failed:
                if not future.done():
                    future.set_exception(error)

        self._available = True
        await self._advance(rows)
        for row, future in sealed:
            if not future.done():
                future.set_result(Receipt(row.seq, row.hash, row.leaf_hash))

    def _recover(self) -> None:
        """Probe the store until it answers, then let exchanges try again."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(
                self._probe_until_back(), name="msglog-recovery"
            )
            self._recovery.add_done_callback(_log_task_end)

    async def _probe_until_back(self) -> None:
        while not self._available and not self._closing:
            await asyncio.sleep(self._recovery_probe_s)
            try:
                await self._store.probe()
            except Exception as exc:  # noqa: BLE001 - still down: probe again
                logger.debug("msglog_probe_failed", error=type(exc).__name__)
                continue
            if not self._closing:
                logger.info("msglog_recovered")
                self._available = True

    async def _advance(self, rows: list[SealedRecord]) -> None:
        """Add committed rows to the frontier if they extend it.

        When other writers committed in between (several nodes on one log), the
        frontier is left behind: only a checkpoint needs it, and the checkpoint
        catches up from the store in one pass. Catching up after every batch cost
        each node a read of every other node's leaves.
        """
        if not rows:
            return
        async with self._tree_lock:
            self._committed = max(self._committed, rows[-1].seq + 1)
            # A checkpoint may already have read these rows back from the store
            # while this batch waited for the lock: add only the ones it has not.
            done = self._tree.size - rows[0].seq
            if done < 0:
                return
            for row in rows[done:]:
                self._tree.append(row.leaf_hash)

    async def _catch_up(self, size: int) -> None:
        """Extend the frontier with stored leaves up to ``size`` (tree lock held).

        Raises NodeError(LOG_UNAVAILABLE) if the store fails or is not contiguous.
        """
        if self._tree.size >= size:
            return
        leaves = self._store.iter_leaf_hashes(self._tree.size)
        async with contextlib.aclosing(leaves) as chunks:
            async for chunk in chunks:
                for leaf in chunk[: size - self._tree.size]:
                    self._tree.append(leaf)
                if self._tree.size >= size:
                    return
        raise StoreError("catch_up_not_contiguous")

    async def _reload(self) -> None:
        """Rebuild the frontier from the store (start, or after it went stale).

        Raises NodeError(LOG_UNAVAILABLE) if the stored records are not contiguous.
        """
        if self._nodes is not None:
            self._nodes.clear()
        tree = CompactRange(self._nodes)
        async with contextlib.aclosing(self._store.iter_leaf_hashes()) as chunks:
            async for chunk in chunks:
                for leaf in chunk:
                    tree.append(leaf)
        tail = await self._store.tail()
        if tail.size != tree.size:
            raise StoreError("recover_not_contiguous")
        self._tree = tree

    # -- the sealer task ---------------------------------------------------------------

    async def _seal_loop(self) -> None:
        # Checked as well as cancelled: a store may turn the cancellation of a
        # checkpoint into a StoreError, which must not keep the loop going.
        while not self._closing:
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


def _seal_batch(
    batch: list[_Pending], tail: LogTail
) -> tuple[
    list[tuple[SealedRecord, asyncio.Future[Receipt]]],
    list[tuple[asyncio.Future[Receipt], RecordError]],
]:
    """Seal after ``tail``; a record that cannot be sealed fails alone."""
    sealed: list[tuple[SealedRecord, asyncio.Future[Receipt]]] = []
    failed: list[tuple[asyncio.Future[Receipt], RecordError]] = []
    seq, prev_hash = tail.size, tail.last_hash
    for record, future, bodies, _ in batch:
        try:
            row = seal(record, seq, prev_hash)
            if bodies is not None:
                row = dataclasses.replace(row, bodies=bodies)
        except RecordError as exc:
            failed.append((future, exc))
            continue
        sealed.append((row, future))
        seq, prev_hash = seq + 1, row.hash
    return sealed, failed


def _log_task_end(task: asyncio.Task[None]) -> None:
    """Retrieve how a background task ended, and log a failure by its type alone.

    The error's text may hold the store's DSN, so it is not logged. Retrieving it
    here also keeps asyncio from reporting it as never retrieved.
    """
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.warning(
            "msglog_task_failed", task=task.get_name(), error=type(error).__name__
        )


def _fail_all(futures: list[asyncio.Future[Receipt]], log_reason: str) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(
                NodeError(Reason.LOG_UNAVAILABLE, log_reason=log_reason)
            )
