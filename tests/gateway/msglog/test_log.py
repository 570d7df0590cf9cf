"""The group-commit writer: ordering, durability, recovery, failing closed, sealing."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from gateway.errors import NodeError, Reason
from gateway.msglog import KeySigner, LogStore, MessageLog, RecordError, SqliteLogStore
from gateway.msglog.checkpoint import load_jwks, verify_signature
from gateway.msglog.records import SealedRecord, parse
from gateway.msglog.store import LogTail, SealFn, StoreError
from gateway.msglog.verify import verify_log
from tests.gateway.msglog.conftest import Backend, make_record

pytestmark = pytest.mark.anyio


class Flaky:
    """A store whose writes fail on demand, before or after committing."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.fail = False
        self.fail_after_commit = False
        self._append = store.append_sealing
        setattr(store, "append_sealing", self._flaky_append)  # noqa: B010

    async def _flaky_append(
        self, seal: SealFn, *, flush: bool = True
    ) -> list[SealedRecord]:
        if self.fail:
            raise StoreError("append")
        rows = await self._append(seal, flush=flush)
        if self.fail_after_commit:
            self.fail_after_commit = False
            raise StoreError("append")
        return rows


async def test_appends_get_contiguous_seqs_chained_by_hash(backend: Backend) -> None:
    log = MessageLog(backend.store())
    await log.start()
    receipts = [await log.append(make_record(i)) for i in range(3)]
    await log.close()

    assert [r.seq for r in receipts] == [0, 1, 2]
    store = backend.store()
    await store.open()
    rows = await store.get_range(0, 3)
    await store.close()
    assert [parse(r.canonical)["prev_hash"] for r in rows] == [
        "",
        *[r.hash for r in rows[:2]],
    ]


async def test_reopened_log_continues_seq_and_chain(
    backend: Backend, signer: KeySigner, jwks: dict[str, Any]
) -> None:
    first = MessageLog(backend.store())
    await first.start()
    last = [await first.append(make_record(i)) for i in range(5)][-1]
    await first.close()

    second = MessageLog(backend.store(), signer=signer)
    await second.start()
    receipt = await second.append(make_record(5))
    await second.close()

    store = backend.store()
    await store.open()
    (row,) = await store.get_range(5, 6)
    report = await verify_log(store, load_jwks(jwks))
    await store.close()
    assert receipt.seq == 5
    assert parse(row.canonical)["prev_hash"] == last.hash
    assert report.ok, report.problem


async def test_two_writers_share_one_log_and_only_the_sealer_reads_leaves(
    backend: Backend, signer: KeySigner, jwks: dict[str, Any]
) -> None:
    sealer_store, other_store = backend.store(), backend.store()
    reads: dict[str, int] = {"sealer": 0, "other": 0}
    for name, store in (("sealer", sealer_store), ("other", other_store)):
        leaves = store.iter_leaf_hashes

        def counted(*args: Any, _name: str = name, _leaves: Any = leaves) -> Any:
            reads[_name] += 1
            return _leaves(*args)

        setattr(store, "iter_leaf_hashes", counted)  # noqa: B010
    sealer = MessageLog(sealer_store, signer=signer, checkpoint_interval_s=3600)
    other = MessageLog(other_store)
    await sealer.start()
    await other.start()
    reads.update(sealer=0, other=0)  # start reads the stored leaves once

    for i in range(0, 40, 2):  # interleaved: each batch follows the other's
        await sealer.append(make_record(i))
        await other.append(make_record(i + 1))
    checkpoint = await sealer.checkpoint()
    sizes = (sealer.size, other.size)
    await other.close()
    await sealer.close()

    store = backend.store()
    await store.open()
    report = await verify_log(store, load_jwks(jwks))
    await store.close()
    assert reads["other"] == 0
    assert reads["sealer"] == 1  # once, when it sealed
    assert checkpoint is not None
    assert checkpoint.tree_size == 40
    assert sizes == (40, 40)
    assert report.ok, report.problem


async def test_concurrent_appends_share_transactions(backend: Backend) -> None:
    store = backend.store()
    log = MessageLog(store, group_commit_ms=20, group_commit_max=64)
    await log.start()
    receipts = await asyncio.gather(*(log.append(make_record(i)) for i in range(256)))
    await log.close()

    assert sorted(r.seq for r in receipts) == list(range(256))
    assert store.transactions <= 8


async def test_without_a_wait_appends_during_a_commit_form_the_next_batch(
    backend: Backend,
) -> None:
    store = backend.store()
    log = MessageLog(store, group_commit_max=1000)  # the default: no wait
    await log.start()
    first = await log.append(make_record(0))  # an idle log commits at once
    alone = store.transactions

    # Each later wave arrives while the previous one is being committed.
    async def wave(start: int) -> None:
        await asyncio.gather(
            *(log.append(make_record(i)) for i in range(start, start + 50))
        )

    await asyncio.gather(*(wave(1 + 50 * n) for n in range(4)))
    await log.close()

    assert first.seq == 0
    assert alone == 1
    assert store.transactions - alone <= 4


async def test_a_batch_is_flushed_when_any_of_its_records_asks(
    backend: Backend,
) -> None:
    store = backend.store()
    flushes: list[bool] = []
    append = store.append_sealing

    async def recording(seal: SealFn, *, flush: bool = True) -> list[SealedRecord]:
        flushes.append(flush)
        return await append(seal, flush=flush)

    setattr(store, "append_sealing", recording)  # noqa: B010
    log = MessageLog(store)
    await log.start()
    await log.append(make_record(0), flush=False)  # a request record alone
    await asyncio.gather(  # a request and a response in one batch
        log.append(make_record(1), flush=False), log.append(make_record(2))
    )
    await log.append(make_record(3))
    await log.close()

    store = backend.store()
    await store.open()
    tail = await store.tail()
    await store.close()
    assert flushes == [False, True, True]
    assert tail.size == 4  # committed either way


async def test_sqlite_commits_unflushed_batches_without_syncing_the_log(
    tmp_path: Path,
) -> None:
    store = SqliteLogStore(tmp_path / "log.db")
    await store.open()
    modes: list[int] = []

    def mode(_tail: LogTail) -> list[SealedRecord]:
        modes.append(store._conn().execute("PRAGMA synchronous").fetchone()[0])
        return []

    await store.append_sealing(mode, flush=False)
    await store.append_sealing(mode)
    await store.append_sealing(mode, flush=False)
    await store.close()

    assert modes == [1, 2, 1]  # NORMAL, FULL, NORMAL


async def test_batch_never_exceeds_group_commit_max(backend: Backend) -> None:
    store = backend.store()
    log = MessageLog(store, group_commit_ms=50, group_commit_max=10)
    await log.start()
    await asyncio.gather(*(log.append(make_record(i)) for i in range(30)))
    await log.close()
    assert store.transactions == 3


async def test_failed_write_raises_log_unavailable(backend: Backend) -> None:
    flaky = Flaky(backend.store())
    store = flaky.store
    log = MessageLog(store)
    await log.start()
    flaky.fail = True

    with pytest.raises(NodeError) as caught:
        await log.append(make_record(0))
    await log.close()
    assert caught.value.reason is Reason.LOG_UNAVAILABLE


async def test_log_stays_unavailable_until_a_write_succeeds(backend: Backend) -> None:
    flaky = Flaky(backend.store())
    store = flaky.store
    log = MessageLog(store)
    await log.start()
    await log.append(make_record(0))
    flaky.fail = True
    with pytest.raises(NodeError):
        await log.append(make_record(1))
    unavailable = log.available

    flaky.fail = False
    receipt = await log.append(make_record(2))
    await log.close()
    assert unavailable is False
    assert receipt.seq == 1


async def test_a_probe_reopens_the_log_once_the_store_answers_again(
    backend: Backend,
) -> None:
    flaky = Flaky(backend.store())
    store = flaky.store
    probes: list[bool] = []
    failed_twice, answered = asyncio.Event(), asyncio.Event()
    probe = store.probe

    async def counted_probe() -> None:
        probes.append(flaky.fail)
        if flaky.fail:
            if len(probes) >= 2:
                failed_twice.set()
            raise StoreError("probe")
        await probe()
        answered.set()

    setattr(store, "probe", counted_probe)  # noqa: B010
    log = MessageLog(store, recovery_probe_s=0.01)
    await log.start()
    flaky.fail = True
    with pytest.raises(NodeError):
        await log.append(make_record(0))
    await failed_twice.wait()  # still down: the probes keep the log closed
    closed_while_down = not log.available

    flaky.fail = False
    await answered.wait()
    await asyncio.sleep(0)  # the recovery task marks the log available
    reopened = log.available
    await log.close()

    assert closed_while_down
    assert reopened
    assert probes[:2] == [True, True]
    assert probes[-1] is False


async def test_recovery_after_failure_leaves_no_gap_or_duplicate(
    backend: Backend,
) -> None:
    flaky = Flaky(backend.store())
    store = flaky.store
    log = MessageLog(store)
    await log.start()
    await asyncio.gather(*(log.append(make_record(i)) for i in range(4)))
    flaky.fail = True
    failed = await asyncio.gather(
        *(log.append(make_record(i)) for i in range(4, 8)), return_exceptions=True
    )
    flaky.fail = False
    await asyncio.gather(*(log.append(make_record(i)) for i in range(8, 12)))
    await log.close()

    assert all(isinstance(r, NodeError) for r in failed)
    await store.open()
    report = await verify_log(store, {})
    await store.close()
    assert report.ok, report.problem
    assert report.records == 8


async def test_write_that_failed_after_commit_is_not_reused(backend: Backend) -> None:
    flaky = Flaky(backend.store())
    store = flaky.store
    log = MessageLog(store)
    await log.start()
    flaky.fail_after_commit = True
    with pytest.raises(NodeError):
        await log.append(make_record(0))
    receipt = await log.append(make_record(1))
    await log.close()

    await store.open()
    report = await verify_log(store, {})
    await store.close()
    assert receipt.seq == 1
    assert report.ok, report.problem


async def test_unloggable_record_fails_alone(backend: Backend) -> None:
    log = MessageLog(backend.store(), group_commit_ms=20)
    await log.start()
    bad = {**make_record(1), "status": float("nan")}
    results = await asyncio.gather(
        log.append(make_record(0)),
        log.append(bad),
        log.append(make_record(2)),
        return_exceptions=True,
    )
    await log.close()

    assert isinstance(results[1], RecordError)
    assert [r.seq for r in (results[0], results[2])] == [0, 1]  # type: ignore[union-attr]


async def test_append_after_close_raises_log_unavailable(backend: Backend) -> None:
    log = MessageLog(backend.store())
    await log.start()
    await log.close()
    with pytest.raises(NodeError, match="log_unavailable"):
        await log.append(make_record(0))


async def test_checkpoint_is_signed_over_committed_records(
    backend: Backend, signer: KeySigner, signing_key: Ed25519PrivateKey
) -> None:
    log = MessageLog(backend.store(), signer=signer, origin="node-a")
    await log.start()
    for i in range(3):
        await log.append(make_record(i))
    checkpoint = await log.checkpoint()
    await log.close()

    assert checkpoint is not None
    assert (checkpoint.origin, checkpoint.tree_size, checkpoint.key_id) == (
        "node-a",
        3,
        "node-a-2024",
    )
    assert verify_signature(checkpoint, signer._key.public_key())


async def test_checkpoint_with_nothing_new_is_none(
    backend: Backend, signer: KeySigner
) -> None:
    log = MessageLog(backend.store(), signer=signer)
    await log.start()
    await log.append(make_record(0))
    await log.checkpoint()
    again = await log.checkpoint()
    await log.close()
    assert again is None


async def test_no_checkpoint_without_signer(backend: Backend) -> None:
    log = MessageLog(backend.store())
    await log.start()
    await log.append(make_record(0))
    checkpoint = await log.checkpoint()
    await log.close()
    assert checkpoint is None


async def test_sealer_seals_periodically(backend: Backend, signer: KeySigner) -> None:
    store = backend.store()
    log = MessageLog(store, signer=signer, checkpoint_interval_s=0.02)
    await log.start()
    await log.append(make_record(0))
    await asyncio.sleep(0.1)
    sealed = await store.latest_checkpoint()
    await log.close()
    assert sealed is not None
    assert sealed.tree_size == 1


async def test_close_commits_pending_and_seals(
    backend: Backend, signer: KeySigner
) -> None:
    store = backend.store()
    log = MessageLog(
        store, signer=signer, group_commit_ms=1000, checkpoint_interval_s=60
    )
    await log.start()
    pending = [asyncio.ensure_future(log.append(make_record(i))) for i in range(5)]
    await asyncio.sleep(0)
    await log.close()

    assert [p.result().seq for p in pending] == list(range(5))
    await store.open()
    latest = await store.latest_checkpoint()
    await store.close()
    assert latest is not None
    assert latest.tree_size == 5


async def test_start_refuses_a_log_with_a_gap(backend: Backend) -> None:
    log = MessageLog(backend.store())
    await log.start()
    for i in range(3):
        await log.append(make_record(i))
    await log.close()
    await backend.tamper(("DELETE FROM records WHERE seq = 1", ()))

    with pytest.raises(NodeError) as caught:
        await MessageLog(backend.store()).start()
    assert caught.value.reason is Reason.LOG_UNAVAILABLE


async def test_checkpoints_racing_commits_never_rescan_the_whole_log(
    backend: Backend, signer: KeySigner
) -> None:
    store = backend.store()
    log = MessageLog(store, signer=signer, checkpoint_interval_s=3600)
    rescans: list[int] = []
    scan = store.iter_leaf_hashes

    def counting(start: int = 0) -> Any:
        if start == 0 and log.size > 0:
            rescans.append(log.size)
        return scan(start)

    setattr(store, "iter_leaf_hashes", counting)  # noqa: B010
    await log.start()

    async def seal_often() -> None:
        for _ in range(40):
            await log.checkpoint()
            await asyncio.sleep(0)

    await asyncio.gather(
        seal_often(), *(log.append(make_record(i)) for i in range(400))
    )
    await log.close()

    assert rescans == []


# -- closing, however the background tasks ended ---------------------------------


class FailingClaim:
    """A store whose first sealer claim raises ``error``.

    With ``on_cancel`` the claim first hangs until it is cancelled, as a driver
    that turns its cancellation into its own error. The claim after it (the final
    checkpoint's) loses; a third would mean that the sealer went on after close
    began, and raises. ``closed`` counts the store's closes.
    """

    def __init__(
        self, store: LogStore, error: Exception, *, on_cancel: bool = True
    ) -> None:
        self.store = store
        self.error = error
        self.on_cancel = on_cancel
        self.claims = 0
        self.closed = 0
        self.claiming = asyncio.Event()
        self._close = store.close
        setattr(store, "claim_sealer", self._claim)  # noqa: B010
        setattr(store, "close", self._counted_close)  # noqa: B010

    async def _claim(self) -> bool:
        self.claims += 1
        if self.claims > 2:
            raise RuntimeError("the sealer claimed again after close")
        if self.claims == 2:
            return False
        self.claiming.set()
        if not self.on_cancel:
            raise self.error
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise self.error from None
        return False

    async def _counted_close(self) -> None:
        self.closed += 1
        await self._close()


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler ("never retrieved")."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        yield reported
    finally:
        loop.set_exception_handler(previous)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("unexpected connection_lost() call"),
        OSError("could not reach postgresql://mediator:secret@db/log"),
    ],
    ids=["connection_error", "os_error"],
)
async def test_close_closes_the_store_when_the_cancelled_sealer_fails(
    backend: Backend,
    signer: KeySigner,
    loop_errors: list[dict[str, Any]],
    error: Exception,
) -> None:
    failing = FailingClaim(backend.store(), error)
    log = MessageLog(failing.store, signer=signer, checkpoint_interval_s=0)
    await log.start()
    await failing.claiming.wait()

    with capture_logs() as logs:
        await log.close()
    gc.collect()

    assert failing.closed == 1
    assert failing.claims == 2  # the final checkpoint was still tried
    assert {
        "event": "msglog_task_failed",
        "task": "msglog-sealer",
        "error": type(error).__name__,
        "log_level": "warning",
    } in logs
    assert "secret" not in repr(logs)
    assert loop_errors == []


async def test_a_sealer_whose_cancellation_became_a_store_error_stops_at_close(
    tmp_path: Path, signer: KeySigner
) -> None:
    store = SqliteLogStore(tmp_path / "log.db")
    failing = FailingClaim(store, StoreError("claim_sealer"))
    log = MessageLog(store, signer=signer, checkpoint_interval_s=0)
    await log.start()
    await failing.claiming.wait()

    await log.close()

    assert failing.closed == 1
    assert failing.claims == 2


async def test_a_sealer_that_fails_is_logged_as_it_ends_and_close_still_closes(
    tmp_path: Path, signer: KeySigner, loop_errors: list[dict[str, Any]]
) -> None:
    store = SqliteLogStore(tmp_path / "log.db")
    error = RuntimeError("sealer broke at postgresql://mediator:secret@db")
    failing = FailingClaim(store, error, on_cancel=False)
    log = MessageLog(store, signer=signer, checkpoint_interval_s=0)
    with capture_logs() as logs:
        await log.start()
        sealer = log._sealer
        assert sealer is not None
        # The log's own done callback was added first, so it has run by the time
        # this wait, whose callback comes after it, returns.
        await asyncio.wait([sealer])
    await log.close()
    gc.collect()

    assert logs == [
        {
            "event": "msglog_task_failed",
            "task": "msglog-sealer",
            "error": "RuntimeError",
            "log_level": "warning",
        }
    ]
    assert failing.closed == 1
    assert failing.claims == 2  # the final checkpoint was still tried
    assert loop_errors == []
