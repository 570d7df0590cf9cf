"""Fixtures of the message log tests: records, keys and a log on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import KeySigner, MessageLog, SqliteLogStore, public_jwk


def make_record(i: int, *, message_id: str | None = None) -> dict[str, Any]:
    """A valid exchange record; ``i`` varies its ids and time."""
    return {
        "ts": 1_700_000_000.0 + i / 10,
        "message_id": message_id or f"msg-{i}",
        "request_id": f"req-{i}",
        "node_id": "node-a",
        "client_id": "WB/GOV/SED/ifms",
        "service_id": "WB/GOV/SED/banglarshiksha/students",
        "method": "GET",
        "path": f"/students/{i}",
        "decision": "forwarded" if i % 3 else "denied",
        "status": 200 if i % 3 else 403,
        "reason": None if i % 3 else "access_denied",
        "step": None if i % 3 else "allow",
        "upstream_called": bool(i % 3),
        "request_body_sha256": "",
        "response_body_sha256": "ab" * 32,
    }


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(signing_key: Ed25519PrivateKey) -> KeySigner:
    return KeySigner("node-a-2024", signing_key)


@pytest.fixture
def jwks(signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    return {"keys": [public_jwk("node-a-2024", signing_key.public_key())]}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "messagelog.db"


async def build_sealed_log(db_path: Path, signer: KeySigner) -> Path:
    """Write a closed log of 20 records sealed by checkpoints at 8, 13 and 20."""
    log = MessageLog(SqliteLogStore(db_path), signer=signer, checkpoint_interval_s=3600)
    await log.start()
    for stop in (8, 13, 20):
        for i in range(log.size, stop):
            await log.append(make_record(i))
        await log.checkpoint()
    await log.close()
    return db_path


@pytest.fixture
async def sealed_log(db_path: Path, signer: KeySigner) -> Path:
    """A closed log of 20 records sealed by checkpoints at 8, 13 and 20."""
    return await build_sealed_log(db_path, signer)


def tamper(db_path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Run SQL against the log file directly, as someone with disk access could."""
    db = sqlite3.connect(db_path)
    try:
        with db:
            for sql, params in statements:
                db.execute(sql, params)
    finally:
        db.close()


def read_row(db_path: Path, seq: int) -> tuple[str, bytes, bytes]:
    """The ``hash``, ``leaf_hash`` and ``canonical`` of one stored record."""
    db = sqlite3.connect(db_path)
    try:
        row = db.execute(
            "SELECT hash, leaf_hash, canonical FROM records WHERE seq = ?", (seq,)
        ).fetchone()
    finally:
        db.close()
    return str(row[0]), bytes(row[1]), bytes(row[2])
