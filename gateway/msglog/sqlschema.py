"""The embedded message log's tables, and the SQL its store runs on them.

:data:`SCHEMA` creates every table and index if missing; :func:`migrate` first
adds what a log written by an earlier version lacks. The statements here take
``?`` parameters only: no value is ever put into SQL text.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.msglog.store import (
    RECORD_INDEXES,
    SELECT_RECORDS,
    ArchiveEntry,
    SearchQuery,
    StoreError,
    search_clauses,
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    leaf_hash   BLOB NOT NULL,
    canonical   BLOB NOT NULL,
    ts          REAL NOT NULL,
    message_id  TEXT NOT NULL,
    client_id   TEXT,
    service_id  TEXT,
    decision    TEXT NOT NULL,
    subject_hash TEXT
);
{RECORD_INDEXES}CREATE TABLE IF NOT EXISTS checkpoints (
    number      INTEGER PRIMARY KEY AUTOINCREMENT,
    tree_size   INTEGER NOT NULL,
    body        BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    height      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    hash        BLOB NOT NULL,
    PRIMARY KEY (height, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bodies (
    seq         INTEGER PRIMARY KEY,
    entries     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS body_keys (
    label       TEXT PRIMARY KEY,
    envelope    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_leaves (
    seq         INTEGER PRIMARY KEY,
    hash        TEXT NOT NULL,
    leaf_hash   BLOB NOT NULL,
    message_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_leaves_message_id
    ON archived_leaves (message_id);
CREATE TABLE IF NOT EXISTS archives (
    name        TEXT NOT NULL,
    period      TEXT NOT NULL,
    period_end  REAL NOT NULL,
    first_seq   INTEGER PRIMARY KEY,
    end_seq     INTEGER NOT NULL,
    tree_size   INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created     REAL NOT NULL
);
"""

READ_BODIES = (
    "SELECT seq, entries FROM bodies WHERE seq IN (SELECT value FROM json_each(?))"
)
READ_LEAVES = (
    "SELECT seq, leaf_hash FROM archived_leaves "
    "WHERE seq IN (SELECT value FROM json_each(?)) "
    "UNION ALL SELECT seq, leaf_hash FROM records "
    "WHERE seq IN (SELECT value FROM json_each(?))"
)
READ_NODES = (
    "SELECT idx, hash FROM nodes "
    "WHERE height = ? AND idx IN (SELECT value FROM json_each(?))"
)

ARCHIVED_SIZE = "SELECT max(seq) FROM archived_leaves"
KEEP_ARCHIVED = (
    "INSERT INTO archived_leaves (seq, hash, leaf_hash, message_id) "
    "SELECT seq, hash, leaf_hash, message_id FROM records WHERE seq >= ? AND seq < ?"
)
ARCHIVED_MESSAGE = (
    "SELECT l.seq, a.name FROM archived_leaves AS l JOIN archives AS a "
    "ON l.seq >= a.first_seq AND l.seq < a.end_seq "
    "WHERE l.message_id = ? ORDER BY l.seq"
)
INSERT_ARCHIVE = (
    "INSERT INTO archives (name, period, period_end, first_seq, end_seq, "
    "tree_size, sha256, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def migrate(db: sqlite3.Connection) -> None:
    """Add the columns a log written by an earlier version lacks."""
    have = {row[1] for row in db.execute("PRAGMA table_info(records)")}
    if have and "subject_hash" not in have:
        db.execute("ALTER TABLE records ADD COLUMN subject_hash TEXT")


def keep_archived(db: sqlite3.Connection, entry: ArchiveEntry) -> None:
    """Copy the hashes of ``entry``'s records to ``archived_leaves``.

    Raises StoreError unless the range starts at the first live record and every
    record of it is stored.
    """
    last = db.execute(ARCHIVED_SIZE).fetchone()[0]
    if (0 if last is None else last + 1) != entry.first_seq:
        raise StoreError("prune_not_at_start")
    span = (entry.first_seq, entry.end_seq)
    moved = db.execute(KEEP_ARCHIVED, span).rowcount
    if moved != entry.end_seq - entry.first_seq:
        raise StoreError("prune_not_contiguous")


def search_sql(query: SearchQuery) -> tuple[str, list[Any]]:
    """The newest-first SELECT for ``query`` and its parameters."""
    clauses, params = search_clauses(query, lambda _: "?")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(query.limit)
    return f"{SELECT_RECORDS}{where} ORDER BY seq DESC LIMIT ?", params
