"""The node's stores of personal data, and the state folder that holds them, are
created for its user alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.admin.auth import Role, add_key
from gateway.audit import AuditLog
from gateway.keyring import Keyring
from gateway.monitoring import OpMonitor
from gateway.msglog import SqliteLogStore
from gateway.privatefiles import create_private_file
from gateway.secrets import Secret
from gateway.subjects import SubjectHasher
from policies import consentdb

UNSET = "MEDIATOR_TEST_SUBJECT_KEY_UNSET"


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


def _keyring(state: Path) -> None:
    Keyring.init(state / "keyring", Secret("a passphrase"))


def _subject_key(state: Path) -> None:
    SubjectHasher.from_state(state, UNSET)


def _audit_entry(state: Path) -> None:
    AuditLog.in_state_dir(state).append("ops-1", "test.entry", "node")


def _admin_key(state: Path) -> None:
    add_key(state / "admin_keys.json", Role.OPS)


@pytest.mark.parametrize(
    "make",
    [_keyring, _subject_key, _audit_entry, _admin_key],
    ids=["keyring", "subject-key", "audit-log", "admin-key"],
)
def test_a_state_folder_made_by_its_first_writer_is_0700(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], None]
) -> None:
    """Whichever writes first makes the folder (``mediator keys init`` in the
    README), and every missing folder above it, for the node's user alone."""
    monkeypatch.delenv(UNSET, raising=False)
    state = tmp_path / "var" / "node"

    make(state)

    assert (oct(mode(state)), oct(mode(state.parent))) == ("0o700", "0o700")
