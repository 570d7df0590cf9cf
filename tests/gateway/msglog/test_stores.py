"""Choosing the log store from ``log:`` in node.yaml, and the encrypted body log."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.deployment import Deployment, load_deployment
from gateway.errors import ConfigError
from gateway.msglog.bodies import PeriodKey
from gateway.msglog.postgres import PostgresLogStore
from gateway.msglog.records import parse
from gateway.msglog.sqlite import SqliteLogStore
from gateway.msglog.store import LogStore, LogTail, StoreError
from gateway.msglog.stores import body_log_for, reading_store, store_from_settings
from gateway.settings import LogSettings

pytestmark = pytest.mark.anyio

CONFIG = Path(__file__).resolve().parents[3] / "config"
STUDENTS = "WB/GOV/SED/banglarshiksha/students"
SCHOOLS = "WB/GOV/SED/banglarshiksha/schools"
DSN = "postgresql://mediator@127.0.0.1:5432/mediator"


def under(root: Path) -> Callable[[str], Path]:
    """A ``resolve`` that puts relative paths under ``root``."""

    def resolve(relative: str) -> Path:
        return root / relative

    return resolve


def deployment(
    tmp_path: Path,
    *,
    encrypted: str = "",
    officer: bytes | None = None,
) -> Deployment:
    """The repository's deployment; ``encrypted`` is added to the students service."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    directory = config / "directory.yaml"
    marker = "          - code: students\n"
    directory.write_text(directory.read_text().replace(marker, marker + encrypted, 1))
    state = tmp_path / "state"
    if officer is not None:
        (state / "officers").mkdir(parents=True)
        (state / "officers" / "so-1.pem").write_bytes(officer)
    return load_deployment(config, state)


ENCRYPTED = "            body_log: encrypted\n            max_body_bytes: 16\n"


def officer_pem() -> bytes:
    return (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


# -- store_from_settings -------------------------------------------------------------


def test_the_sqlite_store_is_at_the_resolved_path(tmp_path: Path) -> None:
    settings = LogSettings(sqlite_path="logs/messages.db")

    store = store_from_settings(settings, under(tmp_path))

    assert isinstance(store, SqliteLogStore)
    assert store.path == tmp_path / "logs" / "messages.db"


def test_sqlite_is_chosen_even_with_a_postgres_dsn(tmp_path: Path) -> None:
    """Only ``store`` chooses; a DSN left in node.yaml does not switch stores."""
    store = store_from_settings(LogSettings(postgres_dsn=DSN), under(tmp_path))

    assert isinstance(store, SqliteLogStore)


def test_the_postgres_store_is_chosen_with_its_dsn(tmp_path: Path) -> None:
    settings = LogSettings(store="postgres", postgres_dsn=DSN)

    store = store_from_settings(settings, under(tmp_path))

    assert isinstance(store, PostgresLogStore)


@pytest.mark.parametrize("dsn", [None, ""], ids=["unset", "empty"])
def test_postgres_without_a_dsn_is_a_config_error(
    tmp_path: Path, dsn: str | None
) -> None:
    settings = LogSettings(store="postgres", postgres_dsn=dsn)

    with pytest.raises(ConfigError, match=r"^node\.yaml: .*needs log\.postgres_dsn"):
        store_from_settings(settings, under(tmp_path))


# -- reading_store -------------------------------------------------------------------


async def test_a_reading_store_is_open_only_inside_the_block(tmp_path: Path) -> None:
    async with reading_store(LogSettings(), under(tmp_path)) as store:
        assert await store.tail() == LogTail(0, "")

    with pytest.raises(StoreError, match="tail_not_open"):
        await store.tail()


async def test_a_reading_store_is_closed_when_the_block_fails(tmp_path: Path) -> None:
    opened: list[LogStore] = []

    async def failing_read() -> None:
        async with reading_store(LogSettings(), under(tmp_path)) as store:
            opened.append(store)
            raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError, match="reader failed"):
        await failing_read()

    with pytest.raises(StoreError, match="tail_not_open"):
        await opened[0].tail()


async def test_a_reading_store_is_a_store_of_its_own(tmp_path: Path) -> None:
    """Two readers of one log do not share a store object (or its connection)."""
    settings = LogSettings()

    async with (
        reading_store(settings, under(tmp_path)) as first,
        reading_store(settings, under(tmp_path)) as second,
    ):
        assert first is not second


async def test_a_reading_store_without_its_dsn_is_a_config_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="postgres_dsn"):
        async with reading_store(LogSettings(store="postgres"), under(tmp_path)):
            pass


# -- body_log_for --------------------------------------------------------------------


def test_no_body_log_when_no_service_encrypts(tmp_path: Path) -> None:
    """Without an encrypting service no officer key is needed, nor a SQL store."""
    found = body_log_for(deployment(tmp_path), cast(LogStore, object()))

    assert found is None


def test_the_body_log_encrypts_only_the_marked_services(tmp_path: Path) -> None:
    deployed = deployment(tmp_path, encrypted=ENCRYPTED, officer=officer_pem())

    bodies = body_log_for(deployed, SqliteLogStore(tmp_path / "log.db"))

    assert bodies is not None
    assert (bodies.encrypts(STUDENTS), bodies.encrypts(SCHOOLS)) == (True, False)


def test_the_body_log_keeps_each_services_size_cap(tmp_path: Path) -> None:
    """A body over ``max_body_bytes`` is logged as its digest only."""
    deployed = deployment(tmp_path, encrypted=ENCRYPTED, officer=officer_pem())
    bodies = body_log_for(deployed, SqliteLogStore(tmp_path / "log.db"))
    assert bodies is not None
    key = PeriodKey.new("2024-06.0001", {})

    sealed = bodies.seal(key, STUDENTS, "msg-1", (b"x" * 16, b"x" * 17))

    entries = parse(sealed.stored)["entries"]
    assert entries["request"]["logged"] == "encrypted"
    assert entries["response"].get("over_cap") is True


@pytest.mark.parametrize(
    "store",
    [
        lambda path: SqliteLogStore(path / "log.db"),
        lambda _path: PostgresLogStore(DSN),
    ],
    ids=["sqlite", "postgres"],
)
def test_both_sql_stores_can_keep_encrypted_bodies(
    tmp_path: Path, store: Callable[[Path], LogStore]
) -> None:
    deployed = deployment(tmp_path, encrypted=ENCRYPTED, officer=officer_pem())

    assert body_log_for(deployed, store(tmp_path)) is not None


def test_a_store_that_cannot_keep_bodies_is_a_config_error(tmp_path: Path) -> None:
    deployed = deployment(tmp_path, encrypted=ENCRYPTED, officer=officer_pem())

    with pytest.raises(ConfigError, match="cannot keep encrypted bodies"):
        body_log_for(deployed, cast(LogStore, object()))


def test_encrypting_without_an_officer_key_is_a_config_error(tmp_path: Path) -> None:
    deployed = deployment(tmp_path, encrypted=ENCRYPTED)
    (tmp_path / "state" / "officers").mkdir(parents=True)

    with pytest.raises(ConfigError, match="no officer public key"):
        body_log_for(deployed, SqliteLogStore(tmp_path / "log.db"))


def test_an_officer_key_that_is_not_x25519_is_a_config_error(tmp_path: Path) -> None:
    signing = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    deployed = deployment(tmp_path, encrypted=ENCRYPTED, officer=signing)

    with pytest.raises(
        ConfigError, match=r"so-1\.pem: an officer's key must be X25519"
    ):
        body_log_for(deployed, SqliteLogStore(tmp_path / "log.db"))
