"""Batched SQLite inserts for writer threads that share the interpreter lock.

Python's ``sqlite3`` lets go of the interpreter lock around every statement it
steps and takes it back afterwards. A writer thread that runs ``executemany``
steps once per row, and while the event loop's thread is busy each take waits
for it to let go: under load a batch of a few hundred rows could wait seconds.
One multi-row ``INSERT`` per chunk steps once per chunk.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

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
