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
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Rows per INSERT statement: well under SQLite's 32,766 bound parameters for
#: the tables here (at most a few dozen columns).
ROWS_PER_INSERT: Final = 500


def insert_rows(
    db: sqlite3.Connection,
    table: str,
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Insert ``rows`` (values in the order of ``names``) into ``table``.

    ``table`` and ``names`` are the caller's own identifiers, never input.
    """
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        values = [value for row in chunk for value in row]
        db.execute(_insert_sql(table, tuple(names), len(chunk)), values)


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, names: tuple[str, ...], count: int) -> str:
    row = "(" + ", ".join("?" * len(names)) + ")"
    columns = ", ".join(names)
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row] * count)  # noqa: S608 - our own names


class WriterThread:
    """One thread of its own: calls run there one at a time, in order.

    The thread starts with the first call and ends with :meth:`stop`; a call
    after that starts it again.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the thread; what it raises is raised here."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(func, *args)
        )

    def stop(self) -> None:
        """Wait for the running call, if any, and end the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
