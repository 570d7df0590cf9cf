"""Batched inserts: every row stored, in order, one statement per chunk."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from gateway.sqlitebatch import ROWS_PER_INSERT, WriterThread, insert_rows


def test_rows_go_in_with_few_statements_of_few_shapes() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a INTEGER, b TEXT, c BLOB)")
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    stored: list[tuple[int, str, bytes]] = []

    for count in range(1, 2 * ROWS_PER_INSERT + 2):
        rows = [(i, f"row {i}", bytes([i % 256])) for i in range(count)]
        insert_rows(db, "t", ("a", "b", "c"), rows)
        stored += rows

    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len({s.count("), (") + 1 for s in inserts}) == ROWS_PER_INSERT.bit_length()
    assert max(s.count("), (") + 1 for s in inserts) == ROWS_PER_INSERT
    assert db.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall() == stored


def test_no_rows_is_no_statement() -> None:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a INTEGER)")
    statements: list[str] = []
    db.set_trace_callback(statements.append)

    insert_rows(db, "t", ("a",), [])

    assert statements == []


def test_a_writer_thread_runs_every_call_on_one_thread_of_its_own() -> None:
    thread = WriterThread("test-writer")

    async def calls() -> list[str]:
        names = [await thread.run(lambda: threading.current_thread().name)]
        names += await asyncio.gather(
            *(thread.run(lambda: threading.current_thread().name) for _ in range(5))
        )
        thread.stop()
        names.append(await thread.run(lambda: threading.current_thread().name))
        thread.stop()
        return names

    names = asyncio.run(calls())

    assert len(set(names[:6])) == 1
    assert all(name.startswith("test-writer") for name in names)
    assert threading.current_thread().name not in names


def test_what_a_call_raises_is_raised_to_its_caller() -> None:
    thread = WriterThread("test-writer")

    def fails() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async def call() -> str:
        try:
            await thread.run(fails)
        except sqlite3.OperationalError as exc:
            return str(exc)
        finally:
            thread.stop()
        return "no error"

    assert asyncio.run(call()) == "disk I/O error"


def test_a_call_cancelled_before_the_thread_reaches_it_is_skipped() -> None:
    thread = WriterThread("test-writer")
    release = threading.Event()
    ran: list[str] = []

    async def calls() -> None:
        busy = asyncio.ensure_future(thread.run(release.wait, 5))
        await asyncio.sleep(0.05)  # the thread now waits in the first call
        queued = asyncio.ensure_future(thread.run(ran.append, "queued"))
        await asyncio.sleep(0)
        queued.cancel()
        release.set()
        await busy
        await thread.run(ran.append, "after")
        thread.stop()

    asyncio.run(calls())

    assert ran == ["after"]


def test_stop_waits_for_the_calls_handed_over() -> None:
    thread = WriterThread("test-writer")
    ran: list[int] = []

    async def calls() -> None:
        pending = [asyncio.ensure_future(thread.run(ran.append, i)) for i in range(20)]
        await asyncio.sleep(0)  # every call is on the queue
        thread.stop()
        await asyncio.gather(*pending)

    asyncio.run(calls())

    assert ran == list(range(20))
