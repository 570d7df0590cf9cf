"""The node's stores of personal data are created for its user alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.monitoring import OpMonitor
from gateway.msglog import SqliteLogStore
from gateway.privatefiles import create_private_file
from policies import consentdb


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """A umask that would leave files world-readable if the mode were not set."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_new_file_is_0600_in_new_folders_of_0700(tmp_path: Path) -> None:
    path = tmp_path / "state" / "logs" / "messagelog.db"

    create_private_file(path)

    assert (mode(path), path.read_bytes()) == (0o600, b"")
    assert mode(path.parent) == mode(path.parent.parent) == 0o700


def test_an_existing_file_keeps_its_mode_and_content(tmp_path: Path) -> None:
    """An operator may have chosen the mode; the bytes are never touched."""
    path = tmp_path / "consent.db"
    path.write_bytes(b"kept")
    path.chmod(0o640)

    create_private_file(path)

    assert (mode(path), path.read_bytes()) == (0o640, b"kept")


@pytest.mark.anyio
async def test_the_message_log_and_its_wal_are_private(tmp_path: Path) -> None:
    store = SqliteLogStore(tmp_path / "state" / "messagelog.db")
    await store.open()
    try:
        files = sorted(p.name for p in (tmp_path / "state").iterdir())
        modes = {mode(p) for p in (tmp_path / "state").iterdir()}
    finally:
        await store.close()

    assert "messagelog.db" in files
    assert modes == {0o600}


def test_the_consent_store_is_private(tmp_path: Path) -> None:
    connection = consentdb.connect(tmp_path / "state" / "consent.db")
    try:
        modes = {mode(p) for p in (tmp_path / "state").iterdir()}
    finally:
        connection.close()

    assert modes == {0o600}


@pytest.mark.anyio
async def test_the_monitoring_store_is_private(tmp_path: Path) -> None:
    monitor = OpMonitor(
        tmp_path / "state" / "opmonitoring.db", retention_days=1, queue_size=10
    )
    await monitor.start()
    try:
        modes = {mode(p) for p in (tmp_path / "state").iterdir()}
    finally:
        await monitor.close()

    assert modes == {0o600}
