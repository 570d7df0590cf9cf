"""``mediator log`` on a message log someone altered: a verdict, never a traceback."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import Result

from gateway.msglog import MessageLog, SqliteLogStore
from tests.gateway.cli.conftest import run_log as _run
from tests.gateway.msglog.conftest import make_record


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


def test_verify_fails_on_records_whose_checkpoints_were_removed(
    state_dir: Path,
) -> None:
    """The chain still holds, but nothing proves it: a running node seals within
    its checkpoint interval, and these records are days old."""
    _tamper(state_dir, "DELETE FROM checkpoints")

    result = _run(state_dir, "verify")

    assert _refused_cleanly(result), result.output
    assert "unsealed:    15 records after the last checkpoint" in result.output
    assert "records not sealed at seq 0" in result.output


def test_verify_counts_a_recent_unsealed_tail_and_passes(state_dir: Path) -> None:
    """Records newer than the checkpoint interval allows are still being sealed."""

    async def append_unsealed() -> None:
        # No signer: the log cannot seal them, as a node between checkpoints.
        log = MessageLog(SqliteLogStore(state_dir / "messagelog.db"))
        await log.start()
        for i in (15, 16):
            await log.append({**make_record(i), "ts": time.time()})
        await log.close()

    asyncio.run(append_unsealed())

    result = _run(state_dir, "verify")

    assert result.exit_code == 0, result.output
    assert "unsealed:    2 records after the last checkpoint" in result.output
    assert "intact" in result.output
