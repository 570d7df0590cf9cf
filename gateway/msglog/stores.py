"""Choosing the message log's store from ``log:`` in node.yaml."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.errors import ConfigError
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.store import LogStore, SqliteLogStore
from gateway.settings import LogSettings


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
