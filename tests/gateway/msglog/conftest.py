"""Fixtures of the message log tests: records, keys, logs on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.msglog import KeySigner, LogStore, MessageLog, SqliteLogStore, public_jwk
from gateway.msglog.bodylog import BodyLog
from gateway.msglog.postgres import PostgresLogStore


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


class Backend:
    """One log database under test: SQLite file or PostgreSQL schema.

    ``store()`` opens a new store on it; ``tamper`` runs SQL against it directly
    (``?`` placeholders), as someone with database access could.
    """

    def __init__(self, name: str, db_path: Path, dsn: str | None = None) -> None:
        self.name = name
        self.db_path = db_path
        self.dsn = dsn
        self.schema = f"msglog_test_{secrets.token_hex(6)}"

    def store(self) -> LogStore:
        if self.dsn is None:
            return SqliteLogStore(self.db_path)
        return PostgresLogStore(self.dsn, schema=self.schema)

    async def tamper(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        if self.dsn is None:
            tamper(self.db_path, *statements)
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"SET search_path TO {self.schema}")
            async with conn.transaction():
                for sql, params in statements:
                    await conn.execute(_dollars(sql), *params)
        finally:
            await conn.close()

    async def read_row(self, seq: int) -> tuple[str, bytes, bytes]:
        """The ``hash``, ``leaf_hash`` and ``canonical`` of one stored record."""
        store = self.store()
        await store.open()
        try:
            (row,) = await store.get_range(seq, seq + 1)
        finally:
            await store.close()
        return row.hash, row.leaf_hash, row.canonical

    async def drop(self) -> None:
        if self.dsn is None:
            return
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()


def _dollars(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], 1))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(
    request: pytest.FixtureRequest, db_path: Path
) -> AsyncIterator[Backend]:
    """Each test that takes it runs on SQLite and on PostgreSQL (own schema)."""
    dsn = (
        request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    )
    chosen = Backend(request.param, db_path, dsn)
    try:
        yield chosen
    finally:
        await chosen.drop()


async def build_sealed_log(store: LogStore, signer: KeySigner) -> None:
    """Write a closed log of 20 records sealed by checkpoints at 8, 13 and 20."""
    log = MessageLog(store, signer=signer, checkpoint_interval_s=3600)
    await log.start()
    for stop in (8, 13, 20):
        for i in range(log.size, stop):
            await log.append(make_record(i))
        await log.checkpoint()
    await log.close()


@pytest.fixture
async def sealed_log(backend: Backend, signer: KeySigner) -> Backend:
    """A closed log of 20 records sealed by checkpoints at 8, 13 and 20."""
    await build_sealed_log(backend.store(), signer)
    return backend


def tamper(db_path: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Run SQL against the log file directly, as someone with disk access could."""
    db = sqlite3.connect(db_path)
    try:
        with db:
            for sql, params in statements:
                db.execute(sql, params)
    finally:
        db.close()


DAY = 86400.0
#: 2023-11-14 00:00:00 UTC: day 0 of the dated logs.
DAY_ZERO = 1_699_920_000.0
#: The service whose bodies the dated logs keep encrypted.
STUDENTS = "WB/GOV/SED/banglarshiksha/students"


def dated_record(i: int, *, per_day: int = 5) -> dict[str, Any]:
    """:func:`make_record` ``i``, dated on day ``i // per_day`` after day 0."""
    return {**make_record(i), "ts": DAY_ZERO + (i // per_day) * DAY + i}


async def build_dated_log(
    store: LogStore,
    signer: KeySigner | None,
    count: int = 15,
    *,
    bodies: BodyLog | None = None,
) -> None:
    """Write ``count`` records, five a day from day 0, and seal them all if signed.

    With ``bodies`` each record's request and response bodies are logged too.
    """
    log = MessageLog(store, signer=signer, checkpoint_interval_s=3600, bodies=bodies)
    await log.start()
    for i in range(log.size, log.size + count):
        request, response = f"request {i}".encode(), f"response {i}".encode()
        record = {
            **dated_record(i),
            "request_body_sha256": hashlib.sha256(request).hexdigest(),
            "response_body_sha256": hashlib.sha256(response).hexdigest(),
        }
        await log.append(record, bodies=(request, response) if bodies else None)
    await log.close()


@pytest.fixture
async def pg(postgres_dsn: str, db_path: Path) -> AsyncIterator[Backend]:
    """A log in a fresh PostgreSQL schema; dropped after the test."""
    backend = Backend("postgres", db_path, postgres_dsn)
    try:
        yield backend
    finally:
        await backend.drop()


@pytest.fixture
async def other_pg(postgres_dsn: str, db_path: Path) -> AsyncIterator[Backend]:
    """A second log, in a schema of its own."""
    backend = Backend("postgres", db_path, postgres_dsn)
    try:
        yield backend
    finally:
        await backend.drop()


async def terminate_backend(admin_dsn: str, pid: int) -> None:
    """End one server session, as an operator or a crash would."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
