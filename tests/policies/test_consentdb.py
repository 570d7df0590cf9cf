"""The consent store's SQLite layer: its schema, connections and single operations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from gateway.errors import NodeError, Reason
from policies import consentdb
from policies.consentrecords import GENESIS, ConsentError, ConsentRecord
from policies.purposes import Purpose
from tests.policies.test_consent import DAY, KANYASHREE, NOW, STUDENT, grant_args
from tests.policies.test_consentsign import Signer


class Unsigning:
    """A signer whose keyring has no key that may sign."""

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        raise NodeError(Reason.SIGNING_UNAVAILABLE, log_reason="no_active_key")

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool:
        return False


def clock() -> float:
    return NOW


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "consent.db"


@pytest.fixture
def db(path: Path) -> Iterator[sqlite3.Connection]:
    connection = consentdb.connect(path)
    try:
        yield connection
    finally:
        connection.close()


def grant(
    db: sqlite3.Connection, purpose: Purpose, signer: Any = None, **changes: Any
) -> ConsentRecord:
    return consentdb.grant_one(db, clock, grant_args(purpose, **changes), signer)


def revision_count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM consent_revisions").fetchone()[0])


# -- connections ---------------------------------------------------------------------


def test_connect_creates_the_directory_and_the_schema(tmp_path: Path) -> None:
    connection = consentdb.connect(tmp_path / "state" / "consent" / "consent.db")
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master")
            if not row[0].startswith("sqlite_")
        }
    finally:
        connection.close()

    assert tables == {"consents", "consents_by_subject", "consent_revisions"}


@pytest.mark.parametrize(
    ("pragma", "value"),
    [("journal_mode", "wal"), ("synchronous", 2), ("foreign_keys", 1)],
)
def test_the_writer_syncs_every_commit_and_checks_references(
    db: sqlite3.Connection, pragma: str, value: object
) -> None:
    """WAL with full sync: a granted or revoked consent survives a power cut."""
    assert db.execute(f"PRAGMA {pragma}").fetchone()[0] == value


def test_a_revision_must_belong_to_a_stored_consent(db: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute(
            "INSERT INTO consent_revisions (consent_id, revision, at, actor, state, "
            "record, prev_hash, hash) VALUES ('nope', 1, 0, 'a', 'active', '{}', "
            "'', '')"
        )


def test_a_store_from_before_signatures_gains_their_columns(
    path: Path, kanyashree: Purpose
) -> None:
    """A store made before revisions were signed opens and takes signed ones."""
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE consent_revisions (consent_id TEXT NOT NULL, revision INTEGER "
        "NOT NULL, at REAL NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL, "
        "record TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, "
        "PRIMARY KEY (consent_id, revision));"
    )
    old.close()

    db = consentdb.connect(path)
    try:
        granted = grant(db, kanyashree, Signer())
        (revision,) = consentdb.history(db, granted.consent_id)
    finally:
        db.close()

    assert revision.kid == "node-1"
    assert revision.signature


def test_reconnecting_leaves_the_store_as_it_is(
    path: Path, db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    granted = grant(db, kanyashree)

    again = consentdb.connect(path)
    try:
        assert consentdb.get(again, granted.consent_id) == granted
        assert consentdb.verify_history(again, granted.consent_id)
    finally:
        again.close()


def test_the_reader_sees_what_the_writer_committed(
    path: Path, db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    reader = consentdb.connect_reader(path)
    try:
        granted = grant(db, kanyashree)
        key = (STUDENT, str(KANYASHREE), kanyashree.id, kanyashree.version, NOW, NOW)

        assert consentdb.find_active(reader, key) == granted
    finally:
        reader.close()


def test_the_reader_cannot_write(path: Path, db: sqlite3.Connection) -> None:
    """The per-exchange lookup can never change a consent."""
    reader = consentdb.connect_reader(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            reader.execute("DELETE FROM consents")
    finally:
        reader.close()


def test_the_reader_does_not_create_a_missing_store(tmp_path: Path) -> None:
    path = tmp_path / "consent.db"

    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        consentdb.connect_reader(path)

    assert not path.exists()


# -- grant and revoke ----------------------------------------------------------------


def test_the_first_revision_snapshots_the_grant_after_genesis(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    granted = grant(db, kanyashree)

    (revision,) = consentdb.history(db, granted.consent_id)

    assert (revision.revision, revision.prev_hash) == (1, GENESIS)
    assert (revision.at, revision.actor, revision.state) == (
        NOW,
        "school-office",
        "active",
    )
    assert revision.record == granted.snapshot()
    assert (revision.kid, revision.signature) == (None, None)


def test_a_grant_that_cannot_be_signed_stores_nothing(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    with pytest.raises(NodeError, match="signing_unavailable"):
        grant(db, kanyashree, Unsigning())

    assert consentdb.list_for_subject(db, STUDENT) == []
    assert revision_count(db) == 0


def test_a_revocation_is_chained_to_the_grant(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    granted = grant(db, kanyashree)

    revoked = consentdb.revoke(db, granted.consent_id, "guardian-call", NOW + DAY)

    first, second = consentdb.history(db, granted.consent_id)
    assert (second.revision, second.prev_hash) == (2, first.hash)
    assert (second.at, second.actor) == (NOW + DAY, "guardian-call")
    assert second.record == revoked.snapshot()
    assert (revoked.revoked_at, revoked.revoked_by) == (NOW + DAY, "guardian-call")


def test_the_actor_is_stored_without_outer_spaces(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    """The revisions name the actor as the record does, for grant and revoke."""
    granted = grant(db, kanyashree, actor="  school-office ")

    revoked = consentdb.revoke(db, granted.consent_id, " guardian-call\t", NOW + DAY)

    first, second = consentdb.history(db, granted.consent_id)
    assert first.actor == "school-office"
    assert (revoked.revoked_by, second.actor) == ("guardian-call", "guardian-call")


@pytest.mark.parametrize("actor", ["", "   ", "\t\n"])
def test_a_revocation_needs_an_actor(
    db: sqlite3.Connection, kanyashree: Purpose, actor: str
) -> None:
    granted = grant(db, kanyashree)

    with pytest.raises(ConsentError, match="the actor is required"):
        consentdb.revoke(db, granted.consent_id, actor, NOW)

    assert consentdb.get(db, granted.consent_id) == granted
    assert revision_count(db) == 1


def test_a_revocation_that_cannot_be_signed_leaves_the_consent_active(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    """The state change and its revision commit together or not at all."""
    granted = grant(db, kanyashree)

    with pytest.raises(NodeError, match="signing_unavailable"):
        consentdb.revoke(db, granted.consent_id, "guardian-call", NOW, Unsigning())

    assert consentdb.get(db, granted.consent_id) == granted
    assert consentdb.verify_history(db, granted.consent_id)


def test_grant_many_stores_nothing_if_one_cannot_be_signed(
    path: Path, kanyashree: Purpose
) -> None:
    grants = [grant_args(kanyashree)] * 3

    with pytest.raises(NodeError):
        consentdb.grant_many_sync(path, grants, signer=Unsigning())

    db = consentdb.connect(path)
    try:
        assert consentdb.list_for_subject(db, STUDENT) == []
    finally:
        db.close()


# -- reads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "found"),
    [
        (NOW - DAY, True),  # valid_from is inclusive
        (NOW + 365 * DAY - 0.001, True),
        (NOW + 365 * DAY, False),  # valid_until is exclusive
        (NOW - DAY - 0.001, False),
    ],
)
def test_the_lookup_covers_the_window_from_start_to_before_end(
    db: sqlite3.Connection, kanyashree: Purpose, at: float, found: bool
) -> None:
    grant(db, kanyashree)
    key = (STUDENT, str(KANYASHREE), kanyashree.id, kanyashree.version, at, at)

    assert (consentdb.find_active(db, key) is not None) is found


def test_the_lookup_answers_with_the_consent_that_lasts_longest(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    grant(db, kanyashree, valid_until=NOW + 30 * DAY)
    longest = grant(db, kanyashree, valid_until=NOW + 90 * DAY)
    grant(db, kanyashree, valid_until=NOW + 60 * DAY)
    key = (STUDENT, str(KANYASHREE), kanyashree.id, kanyashree.version, NOW, NOW)

    assert consentdb.find_active(db, key) == longest


def test_consents_ending_together_are_listed_by_id(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    """Equal ends are ordered by id, so that a listing is the same every time."""
    granted = [grant(db, kanyashree) for _ in range(4)]

    listed = consentdb.list_for_subject(db, STUDENT)

    assert listed == sorted(granted, key=lambda record: record.consent_id)


def test_a_verifier_rejects_a_history_signed_by_another_key(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    """The same key id is not enough: the signature must be by the key itself."""
    signer = Signer()
    granted = grant(db, kanyashree, signer)

    assert consentdb.verify_history(db, granted.consent_id, signer)
    assert not consentdb.verify_history(db, granted.consent_id, Signer())


# -- rows ----------------------------------------------------------------------------


def test_a_revoked_record_reads_back_from_its_row(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    granted = grant(db, kanyashree)
    revoked = consentdb.revoke(db, granted.consent_id, "guardian-call", NOW)

    assert consentdb.record_of(consentdb.row_of(revoked)) == revoked


def test_a_snapshot_is_stored_as_canonical_json(
    db: sqlite3.Connection, kanyashree: Purpose
) -> None:
    """Both stores keep the same text, the bytes the revision hash covers."""
    granted = grant(db, kanyashree)
    (revision,) = consentdb.history(db, granted.consent_id)

    text = consentdb.revision_row(revision)[5]

    assert text == rfc8785.dumps(granted.snapshot()).decode()
    assert json.loads(text) == granted.snapshot()
