"""The embedded log's tables: created once, migrated, and searched by parameters."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from gateway.msglog.sqlschema import (
    SCHEMA,
    keep_archived,
    migrate,
    search_sql,
)
from gateway.msglog.store import ArchiveEntry, SearchQuery, StoreError


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    try:
        yield connection
    finally:
        connection.close()


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def record(db: sqlite3.Connection, seq: int, message_id: str = "m") -> None:
    db.execute(
        "INSERT INTO records (seq, hash, leaf_hash, canonical, ts, message_id, "
        "decision) VALUES (?, 'h', x'00', x'00', 0, ?, 'forwarded')",
        (seq, message_id),
    )


def entry(first_seq: int, end_seq: int) -> ArchiveEntry:
    return ArchiveEntry(
        name="a.zip",
        period="2023-11",
        period_end=0.0,
        first_seq=first_seq,
        end_seq=end_seq,
        tree_size=end_seq,
        sha256="cd" * 32,
        created=0.0,
    )


def test_the_schema_can_be_applied_again(db: sqlite3.Connection) -> None:
    """Every open runs it: it creates what is missing and changes nothing else."""
    db.executescript(SCHEMA)
    record(db, 0)

    db.executescript(SCHEMA)

    assert db.execute("SELECT count(*) FROM records").fetchone() == (1,)


def test_an_earlier_log_gains_the_subject_hash_column(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE records (seq INTEGER PRIMARY KEY, hash TEXT)")

    migrate(db)
    migrate(db)  # once only

    assert columns(db, "records") == ["seq", "hash", "subject_hash"]


def test_a_new_log_is_left_to_the_schema(db: sqlite3.Connection) -> None:
    migrate(db)

    assert columns(db, "records") == []


def test_archived_records_must_start_at_the_first_live_one(
    db: sqlite3.Connection,
) -> None:
    db.executescript(SCHEMA)
    for seq in range(4):
        record(db, seq)

    with pytest.raises(StoreError, match="prune_not_at_start"):
        keep_archived(db, entry(1, 3))
    keep_archived(db, entry(0, 2))
    with pytest.raises(StoreError, match="prune_not_at_start"):
        keep_archived(db, entry(3, 4))

    assert db.execute("SELECT seq FROM archived_leaves").fetchall() == [(0,), (1,)]


def test_archived_records_must_all_be_stored(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    record(db, 0)
    record(db, 2)

    with pytest.raises(StoreError, match="prune_not_contiguous"):
        keep_archived(db, entry(0, 3))


def test_a_search_binds_every_value_as_a_parameter() -> None:
    """A hostile value never enters the SQL text; the newest come first."""
    hostile = "x' OR '1'='1"

    sql, params = search_sql(SearchQuery(message_id=hostile, limit=5))

    assert hostile not in sql
    assert sql.endswith("ORDER BY seq DESC LIMIT ?")
    assert params == [hostile, 5]
