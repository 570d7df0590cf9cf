"""The consent store's SQLite layer: the schema, and each operation as one call.

Every function here takes an open connection and runs synchronously; the async
:class:`policies.consent.ConsentStore` runs them in a worker thread. Each change
appends a revision to the consent's hash chain (:mod:`policies.consentrecords`),
signed when the store has a signer (the node's keyring), and
:func:`verify_history` checks a stored history against the current row.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rfc8785

from gateway.privatefiles import create_private_file
from policies.consentrecords import (
    GENESIS,
    ConsentError,
    ConsentRecord,
    ConsentRevision,
    GrantedBy,
    history_verifies,
    new_record,
    revoking_actor,
    seal_revision,
)
from policies.consentsign import RevisionSigner

_SCHEMA = """
CREATE TABLE IF NOT EXISTS consents (
    consent_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    client TEXT NOT NULL,
    purpose_id TEXT NOT NULL,
    purpose_version INTEGER NOT NULL,
    granted_by_role TEXT NOT NULL,
    granted_by_name TEXT NOT NULL,
    valid_from REAL NOT NULL,
    valid_until REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    revoked_at REAL,
    revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS consents_by_subject
    ON consents (subject, client, purpose_id, purpose_version);
CREATE TABLE IF NOT EXISTS consent_revisions (
    consent_id TEXT NOT NULL REFERENCES consents (consent_id),
    revision INTEGER NOT NULL,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    state TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    kid TEXT,
    signature TEXT,
    PRIMARY KEY (consent_id, revision)
);
"""

#: The consents table's columns, in the order records are built from (both stores).
CONSENT_COLUMNS = (
    "consent_id, subject, client, purpose_id, purpose_version, granted_by_role, "
    "granted_by_name, valid_from, valid_until, state, revoked_at, revoked_by"
)
_PLACES = ", ".join("?" * 12)
_INSERT_CONSENT = f"INSERT INTO consents ({CONSENT_COLUMNS}) VALUES ({_PLACES})"  # noqa: S608 (constants)
_INSERT_REVISION = (
    "INSERT INTO consent_revisions (consent_id, revision, at, actor, state, "
    "record, prev_hash, hash, kid, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def grant_many_sync(
    path: Path,
    grants: Iterable[Mapping[str, Any]],
    *,
    clock: Callable[[], float] = time.time,
    signer: RevisionSigner | None = None,
) -> list[ConsentRecord]:
    """Grant many consents in one transaction, for seeding demos.

    Each mapping holds the keyword arguments of :meth:`ConsentStore.grant`. Raises
    ConsentError for the first bad grant, and then nothing is stored.
    """
    connection = connect(path)
    try:
        with _transaction(connection):
            return [_insert(connection, clock, grant, signer) for grant in grants]
    finally:
        connection.close()


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store at ``path`` in WAL mode, schema created."""
    create_private_file(path)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("PRAGMA busy_timeout=5000")
    connection.executescript(_SCHEMA)
    _add_signature_columns(connection)
    return connection


def _add_signature_columns(connection: sqlite3.Connection) -> None:
    """Bring a store made before revisions were signed up to the current schema."""
    columns = {
        row[1] for row in connection.execute("PRAGMA table_info(consent_revisions)")
    }
    for column in ("kid", "signature"):
        if column not in columns:
            connection.execute(
                f"ALTER TABLE consent_revisions ADD COLUMN {column} TEXT"
            )


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing store, for the per-exchange lookup."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=1000")
    connection.execute("PRAGMA query_only=ON")
    return connection


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    with connection:
        yield


# -- operations ----------------------------------------------------------------------


def grant_one(
    connection: sqlite3.Connection,
    clock: Callable[[], float],
    grant: Mapping[str, Any],
    signer: RevisionSigner | None = None,
) -> ConsentRecord:
    """Grant one consent in its own transaction; raise ConsentError.

    With a ``signer``, NodeError if it has no key that may sign (nothing is stored).
    """
    with _transaction(connection):
        return _insert(connection, clock, grant, signer)


def _insert(
    connection: sqlite3.Connection,
    clock: Callable[[], float],
    grant: Mapping[str, Any],
    signer: RevisionSigner | None,
) -> ConsentRecord:
    record = new_record(grant)
    connection.execute(
        _INSERT_CONSENT,
        row_of(record),
    )
    _append_revision(connection, record, clock(), str(grant["actor"]).strip(), signer)
    return record


def revoke(
    connection: sqlite3.Connection,
    consent_id: str,
    actor: str,
    at: float,
    signer: RevisionSigner | None = None,
) -> ConsentRecord:
    """Revoke one consent at ``at``; raise ConsentError if it is unknown or already
    revoked, or if ``actor`` is blank (it is stored without outer spaces)."""
    actor = revoking_actor(actor)
    with _transaction(connection):
        current = get(connection, consent_id)
        if current is None:
            raise ConsentError("no consent has this id")
        if current.state != "active":
            raise ConsentError("the consent is already revoked")
        connection.execute(
            "UPDATE consents SET state = 'revoked', revoked_at = ?, revoked_by = ? "
            "WHERE consent_id = ?",
            (at, actor, consent_id),
        )
        revoked = get(connection, consent_id)
        if revoked is None:
            raise ConsentError("no consent has this id")
        _append_revision(connection, revoked, at, actor, signer)
        return revoked


def find_active(
    connection: sqlite3.Connection, key: tuple[str, str, str, int, float, float]
) -> ConsentRecord | None:
    """The active consent for (subject, client, purpose, version) covering ``at``."""
    row = connection.execute(
        f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject = ? AND client = ? "  # noqa: S608 (fixed column list)
        "AND purpose_id = ? AND purpose_version = ? AND state = 'active' "
        "AND valid_from <= ? AND valid_until > ? ORDER BY valid_until DESC LIMIT 1",
        key,
    ).fetchone()
    return None if row is None else record_of(row)


def get(connection: sqlite3.Connection, consent_id: str) -> ConsentRecord | None:
    """One consent by id, or None."""
    row = connection.execute(
        f"SELECT {CONSENT_COLUMNS} FROM consents WHERE consent_id = ?",  # noqa: S608 (fixed column list)
        (consent_id,),
    ).fetchone()
    return None if row is None else record_of(row)


def list_for_subject(
    connection: sqlite3.Connection, subject: str
) -> list[ConsentRecord]:
    """Every consent of one student, latest ``valid_until`` first."""
    rows = connection.execute(
        f"SELECT {CONSENT_COLUMNS} FROM consents WHERE subject = ? "  # noqa: S608 (fixed column list)
        "ORDER BY valid_until DESC, consent_id",
        (subject,),
    ).fetchall()
    return [record_of(row) for row in rows]


def history(connection: sqlite3.Connection, consent_id: str) -> list[ConsentRevision]:
    """The revisions of one consent, oldest first."""
    rows = connection.execute(
        "SELECT consent_id, revision, at, actor, state, record, prev_hash, hash, "
        "kid, signature FROM consent_revisions WHERE consent_id = ? ORDER BY revision",
        (consent_id,),
    ).fetchall()
    return [
        ConsentRevision(
            row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), *row[6:]
        )
        for row in rows
    ]


def verify_history(
    connection: sqlite3.Connection,
    consent_id: str,
    verifier: RevisionSigner | None = None,
) -> bool:
    """True if the revisions form an intact chain that ends at the current row.

    With a ``verifier``, every revision must also carry a valid node signature over
    its hash. A revision whose stored snapshot is not a JSON object, or cannot be
    canonicalised, makes the history fail to verify rather than raise.
    """
    current = get(connection, consent_id)
    try:
        revisions = history(connection, consent_id)
    except ValueError:
        return False
    return history_verifies(current, revisions, verifier)


def _append_revision(
    connection: sqlite3.Connection,
    record: ConsentRecord,
    at: float,
    actor: str,
    signer: RevisionSigner | None,
) -> None:
    last = connection.execute(
        "SELECT revision, hash FROM consent_revisions WHERE consent_id = ? "
        "ORDER BY revision DESC LIMIT 1",
        (record.consent_id,),
    ).fetchone()
    number, prev_hash = (1, GENESIS) if last is None else (last[0] + 1, last[1])
    revision = seal_revision(
        record, number=number, prev_hash=prev_hash, at=at, actor=actor, signer=signer
    )
    connection.execute(_INSERT_REVISION, revision_row(revision))


def revision_row(revision: ConsentRevision) -> tuple[Any, ...]:
    """The stored columns of a revision, its snapshot as canonical JSON text."""
    return (
        revision.consent_id,
        revision.revision,
        revision.at,
        revision.actor,
        revision.state,
        rfc8785.dumps(dict(revision.record)).decode(),
        revision.prev_hash,
        revision.hash,
        revision.kid,
        revision.signature,
    )


def row_of(record: ConsentRecord) -> tuple[Any, ...]:
    return (
        record.consent_id,
        record.subject,
        record.client,
        record.purpose_id,
        record.purpose_version,
        record.granted_by.role,
        record.granted_by.name,
        record.valid_from,
        record.valid_until,
        record.state,
        record.revoked_at,
        record.revoked_by,
    )


def record_of(row: tuple[Any, ...]) -> ConsentRecord:
    return ConsentRecord(
        consent_id=row[0],
        subject=row[1],
        client=row[2],
        purpose_id=row[3],
        purpose_version=row[4],
        granted_by=GrantedBy(row[5], row[6]),
        valid_from=row[7],
        valid_until=row[8],
        state=row[9],
        revoked_at=row[10],
        revoked_by=row[11],
    )
