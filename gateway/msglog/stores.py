"""Choosing the message log's store from ``log:`` in node.yaml."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import ConfigError
from gateway.msglog.bodies import load_officer_keys
from gateway.msglog.bodylog import BodyLog
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.sqlite import SqliteLogStore
from gateway.msglog.store import LogStore
from gateway.settings import LogSettings

if TYPE_CHECKING:
    from gateway.deployment import Deployment


def store_from_settings(
    settings: LogSettings, resolve: Callable[[str], Path]
) -> LogStore:
    """The SQLite store at ``sqlite_path`` (through ``resolve``), or PostgreSQL.

    Raises ConfigError if ``store: postgres`` has no ``postgres_dsn``.
    """
    if settings.store == "sqlite":
        return SqliteLogStore(resolve(settings.sqlite_path))
    if not settings.postgres_dsn:
        raise ConfigError("node.yaml", "log.store postgres needs log.postgres_dsn")
    return PostgresLogStore(settings.postgres_dsn)


@asynccontextmanager
async def reading_store(
    settings: LogSettings, resolve: Callable[[str], Path]
) -> AsyncIterator[LogStore]:
    """A store of its own for reading the log beside the node's writer (searches,
    verification, metrics), opened and closed around the block.

    A separate store keeps long reads off the writer's connection (SQLite's
    writer runs on one thread). Raises ConfigError or StoreError.
    """
    store = store_from_settings(settings, resolve)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def body_log_for(deployment: Deployment, store: LogStore) -> BodyLog | None:
    """The encrypted body log of the services with ``body_log: encrypted``.

    None if no service encrypts. Raises ConfigError if one does and the officer
    key directory holds no X25519 public key, or the store cannot keep bodies.
    """
    caps = {
        str(service.id): service.entry.max_body_bytes
        for service in deployment.directory.services()
        if service.entry.body_log == "encrypted"
    }
    if not caps:
        return None
    if not isinstance(store, SqliteLogStore | PostgresLogStore):
        raise ConfigError("node.yaml", "this log store cannot keep encrypted bodies")
    officers = load_officer_keys(
        deployment.path(deployment.settings.log.officer_keys_dir)
    )
    return BodyLog(officers, caps, store)
