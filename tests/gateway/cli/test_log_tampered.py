"""``mediator log`` on a message log someone altered: a verdict, never a traceback."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli import main
from gateway.msglog import KeySigner, SqliteLogStore, public_jwk
from tests.gateway.msglog.conftest import build_dated_log


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A state directory holding 15 sealed records (seq 0-14, msg-0 to msg-14)."""
    state = tmp_path / "state"
    (state / "keyring").mkdir(parents=True)
    key = Ed25519PrivateKey.generate()
    jwks = {"keys": [public_jwk("node-a", key.public_key())]}
    (state / "keyring" / "jwks.json").write_bytes(orjson.dumps(jwks))
    store = SqliteLogStore(state / "messagelog.db")
    asyncio.run(build_dated_log(store, KeySigner("node-a", key)))
    return state


def _run(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--state-dir", str(state_dir), "log", *args])


def _tamper(state_dir: Path, *statements: str) -> None:
    with sqlite3.connect(state_dir / "messagelog.db") as db:
        for statement in statements:
            db.execute(statement)


def _refused_cleanly(result: Result) -> bool:
    """Exit status 1 from the command itself: no exception escaped it."""
    return result.exit_code == 1 and isinstance(result.exception, SystemExit)


def test_verify_names_a_record_rewritten_as_text(state_dir: Path) -> None:
    """An edit by hand in sqlite3 stores the record as TEXT, not as a BLOB."""
    _tamper(
        state_dir,
        "UPDATE records SET canonical = replace(canonical, 'msg-4', 'msg-x')"
        " WHERE seq = 4",
    )

    result = _run(state_dir, "verify")

    assert _refused_cleanly(result), result.output
    assert "hash mismatch at seq 4" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ("verify",),
        ("search", "--json"),
        ("export", "--message-id", "msg-3", "--out", "bundle.zip"),
    ],
    ids=lambda args: args[0],
)
def test_a_log_file_that_is_no_database_is_reported(
    state_dir: Path, args: tuple[str, ...]
) -> None:
    (state_dir / "messagelog.db").write_bytes(b"not a database at all " * 1000)

    result = _run(state_dir, *args)

    assert _refused_cleanly(result), result.output
    assert "cannot be read" in result.output


def test_export_reports_records_missing_under_the_checkpoint(
    state_dir: Path, tmp_path: Path
) -> None:
    """Without the stored interior nodes the proof needs every leaf, and one is gone."""
    _tamper(state_dir, "DELETE FROM records WHERE seq = 14", "DELETE FROM nodes")
    out = tmp_path / "bundle.zip"

    result = _run(state_dir, "export", "--message-id", "msg-3", "--out", str(out))

    assert _refused_cleanly(result), result.output
    assert "holds 14 of the 15 records" in result.output
    assert not out.exists()
