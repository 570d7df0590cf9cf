"""Signed consent revisions: every revision signed, verified with the signer's keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from policies.consent import ConsentStore
from policies.consentsign import signature_valid, statement
from policies.purposes import Purpose
from tests.policies.test_consent import grant_args

pytestmark = pytest.mark.anyio


class Signer:
    """A one-key stand-in for the node's keyring."""

    def __init__(self, kid: str = "node-1") -> None:
        self.kid = kid
        self._key = ed25519.Ed25519PrivateKey.generate()

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        return self.kid, self._key.sign(data)

    def verify(self, kid: str, data: bytes, signature: bytes) -> bool:
        try:
            self._key.public_key().verify(signature, data)
        except Exception:  # noqa: BLE001 (any failure is "not valid")
            return False
        return kid == self.kid


async def _granted_and_revoked(
    path: Path, purpose: Purpose, signer: Signer | None
) -> str:
    store = await ConsentStore.open(path, signer=signer)
    try:
        granted = await store.grant(**grant_args(purpose))
        await store.revoke(granted.consent_id, actor="guardian")
    finally:
        await store.close()
    return granted.consent_id


async def test_every_revision_is_signed_and_verifies(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    signer = Signer()
    consent_id = await _granted_and_revoked(tmp_path / "c.db", kanyashree, signer)
    store = await ConsentStore.open(tmp_path / "c.db", signer=signer)
    try:
        revisions = await store.history(consent_id)
        assert await store.verify_history(consent_id)
    finally:
        await store.close()
    assert [r.kid for r in revisions] == ["node-1", "node-1"]
    assert all(signature_valid(signer, r.hash, r.kid, r.signature) for r in revisions)


@pytest.mark.parametrize(
    "statement_sql",
    [
        "UPDATE consent_revisions SET signature = NULL WHERE revision = 2",
        "UPDATE consent_revisions SET kid = 'other' WHERE revision = 1",
        "UPDATE consent_revisions SET signature = "
        "(SELECT signature FROM consent_revisions WHERE revision = 1) "
        "WHERE revision = 2",
    ],
)
async def test_a_missing_or_moved_signature_fails(
    tmp_path: Path, kanyashree: Purpose, statement_sql: str
) -> None:
    signer = Signer()
    consent_id = await _granted_and_revoked(tmp_path / "c.db", kanyashree, signer)
    with sqlite3.connect(tmp_path / "c.db") as raw:
        raw.execute(statement_sql)
    raw.close()
    store = await ConsentStore.open(tmp_path / "c.db", signer=signer)
    try:
        assert not await store.verify_history(consent_id)
    finally:
        await store.close()


async def test_unsigned_history_fails_a_signed_check(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    consent_id = await _granted_and_revoked(tmp_path / "c.db", kanyashree, None)
    store = await ConsentStore.open(tmp_path / "c.db", signer=Signer())
    try:
        assert not await store.verify_history(consent_id)
    finally:
        await store.close()


def test_the_signed_statement_is_domain_separated() -> None:
    assert statement("ab").startswith(b"shiksha-mediator consent-revision v1\n")
    assert statement("ab") != b"ab"


async def test_an_old_store_gains_signature_columns(
    tmp_path: Path, kanyashree: Purpose
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as raw:
        raw.executescript(
            "CREATE TABLE consent_revisions (consent_id TEXT NOT NULL, "
            "revision INTEGER NOT NULL, at REAL NOT NULL, actor TEXT NOT NULL, "
            "state TEXT NOT NULL, record TEXT NOT NULL, prev_hash TEXT NOT NULL, "
            "hash TEXT NOT NULL, PRIMARY KEY (consent_id, revision));"
        )
    raw.close()
    consent_id = await _granted_and_revoked(path, kanyashree, Signer())
    assert consent_id
