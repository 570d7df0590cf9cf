"""SQLite writer threads that share the interpreter lock with the event loop.

A writer owns its connection on a thread of its own (:class:`WriterThread`), so
that its statements run in order and never on whichever thread of the loop's
shared pool is free, and it inserts in batches (:func:`insert_rows`).

Python's ``sqlite3`` lets go of the interpreter lock around every statement it
steps and takes it back afterwards. A writer thread that runs ``executemany``
steps once per row, and while the event loop's thread is busy each take waits
for it to let go: under load a batch of a few hundred rows could wait seconds.
One multi-row ``INSERT`` per chunk steps once per chunk.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Rows in the largest INSERT statement: well under SQLite's 32,766 bound
#: parameters for the tables here (at most a few dozen columns).
ROWS_PER_INSERT: Final = 256


def insert_rows(
    db: sqlite3.Connection,
    table: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Insert ``rows`` (values in the order of ``names``) into ``table``.

    Rows go in chunks of a power of two (256, then the binary digits of what
    is left), so a table has at most nine INSERT statements. The connection
    keeps each statement it prepared, and a 100-row statement is a program of
    tens of kilobytes: one statement per batch size kept tens of megabytes.
    ``table`` and ``names`` are the caller's own identifiers, never input.
    """
    columns = tuple(names)
    start = 0
    while start < len(rows):
        size = min(ROWS_PER_INSERT, 1 << ((len(rows) - start).bit_length() - 1))
        chunk = rows[start : start + size]
        values = [value for row in chunk for value in row]
        db.execute(_insert_sql(table, columns, size), values)
        start += size


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, names: tuple[str, ...], count: int) -> str:
    row = "(" + ", ".join("?" * len(names)) + ")"
    columns = ", ".join(names)
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * count)  # noqa: S608 - our own names


class WriterThread:
    """One thread of its own: calls run there one at a time, in order.

    The thread starts with the first call and ends with :meth:`stop`; a call
    after that starts it again. A call hands over through a queue and comes back
    with ``call_soon_threadsafe``: half the CPU of ``run_in_executor``'s
    concurrent future and callbacks, which a writer pays once per commit.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] | None = None
        self._thread: threading.Thread | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the thread; what it raises is raised here.

        A call whose caller was cancelled before the thread reached it is skipped.
        """
        calls = self._calls
        if calls is None:
            calls = self._calls = queue.SimpleQueue()
            # A daemon: a writer never stopped must not hold the interpreter open.
            self._thread = threading.Thread(
                target=_serve, args=(calls,), name=self._name, daemon=True
            )
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        calls.put((loop, future, func, args))
        return await future

    def stop(self) -> None:
        """Wait for the calls handed over so far, and end the thread."""
        if self._calls is not None and self._thread is not None:
            self._calls.put(None)
            self._thread.join()
        self._calls = self._thread = None


_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], Any]


def _serve(calls: queue.SimpleQueue[_Call | None]) -> None:
    while (call := calls.get()) is not None:
        loop, future, func, args = call
        if future.cancelled():
            continue
        try:
            outcome: tuple[Any, BaseException | None] = (func(*args), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(_settle, future, *outcome)
        except RuntimeError:  # the loop has closed: nobody waits any more
            continue


def _settle(
    future: asyncio.Future[Any], result: Any, error: BaseException | None
) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
