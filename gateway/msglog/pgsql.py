"""The PostgreSQL message log's tables and the statements that write and read them.

The store (:mod:`gateway.msglog.postgres`) runs them; the tables are those of
the SQLite store, in PostgreSQL's types. Every name in them is this module's own:
no statement is built from input.
"""

from __future__ import annotations

from gateway.msglog.store import RECORD_COLUMNS, RECORD_INDEXES

DDL = f"""
CREATE TABLE IF NOT EXISTS records (
    seq          BIGINT PRIMARY KEY,
    hash         TEXT NOT NULL,
    leaf_hash    BYTEA NOT NULL,
    canonical    BYTEA NOT NULL,
    ts           DOUBLE PRECISION NOT NULL,
    message_id   TEXT NOT NULL,
    client_id    TEXT,
    service_id   TEXT,
    decision     TEXT NOT NULL,
    subject_hash TEXT
);
{RECORD_INDEXES}CREATE TABLE IF NOT EXISTS checkpoints (
    number      BIGSERIAL PRIMARY KEY,
    tree_size   BIGINT NOT NULL,
    body        BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
    height      INTEGER NOT NULL,
    idx         BIGINT NOT NULL,
    hash        BYTEA NOT NULL,
    PRIMARY KEY (height, idx)
);
CREATE TABLE IF NOT EXISTS bodies (
    seq         BIGINT PRIMARY KEY,
    entries     BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS body_keys (
    label       TEXT PRIMARY KEY,
    envelope    BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS archived_leaves (
    seq         BIGINT PRIMARY KEY,
    hash        TEXT NOT NULL,
    leaf_hash   BYTEA NOT NULL,
    message_id  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_leaves_message_id
    ON archived_leaves (message_id);
CREATE TABLE IF NOT EXISTS archives (
    name        TEXT NOT NULL,
    period      TEXT NOT NULL,
    period_end  DOUBLE PRECISION NOT NULL,
    first_seq   BIGINT PRIMARY KEY,
    end_seq     BIGINT NOT NULL,
    tree_size   BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    created     DOUBLE PRECISION NOT NULL
);
"""

SAVE_NODES = """
INSERT INTO nodes (height, idx, hash)
SELECT * FROM unnest($1::integer[], $2::bigint[], $3::bytea[])
ON CONFLICT DO NOTHING
"""
READ_NODES = """
SELECT n.height, n.idx, n.hash FROM nodes n
JOIN unnest($1::integer[], $2::bigint[]) AS k(height, idx)
  ON n.height = k.height AND n.idx = k.idx
"""
READ_LEAVES = (
    "SELECT seq, leaf_hash FROM archived_leaves WHERE seq = ANY($1::bigint[]) "
    "UNION ALL SELECT seq, leaf_hash FROM records WHERE seq = ANY($1::bigint[])"
)
ARCHIVED_SIZE = "SELECT max(seq) FROM archived_leaves"
KEEP_ARCHIVED = (
    "INSERT INTO archived_leaves (seq, hash, leaf_hash, message_id) "
    "SELECT seq, hash, leaf_hash, message_id FROM records WHERE seq >= $1 AND seq < $2"
)
ARCHIVED_MESSAGE = (
    "SELECT l.seq, a.name FROM archived_leaves AS l JOIN archives AS a "
    "ON l.seq >= a.first_seq AND l.seq < a.end_seq "
    "WHERE l.message_id = $1 ORDER BY l.seq"
)
INSERT_ARCHIVE = (
    "INSERT INTO archives (name, period, period_end, first_seq, end_seq, "
    "tree_size, sha256, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)

# The column names are the module's own constants, never input.
INSERT_RECORDS = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    "$1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::float8[], "
    "$6::text[], $7::text[], $8::text[], $9::text[], $10::text[])"
)
INSERT_BODIES = (
    "INSERT INTO bodies (seq, entries) SELECT * FROM unnest($1::bigint[], $2::bytea[])"
)
#: The writers' transaction lock, taken as the transaction begins (one round
#: trip, in the simple protocol: the key is the store's own integer). Unflushed,
#: the transaction also commits before its WAL is flushed (``SET LOCAL``).
BEGIN_LOCKED = "BEGIN; SELECT pg_advisory_xact_lock({key})"
BEGIN_LOCKED_UNFLUSHED = (
    "BEGIN; SELECT set_config('synchronous_commit', 'off', true), "
    "pg_advisory_xact_lock({key})"
)
