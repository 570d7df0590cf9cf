"""``mediator log``: verify, search, export and evidence-verify on a state directory."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.msglog import KeySigner, MessageLog, SqliteLogStore
from gateway.subjects import SubjectHasher
from tests.gateway.msglog.conftest import build_sealed_log, make_record, tamper


@pytest.fixture
def state_dir(db_path: Path, signer: KeySigner, jwks: dict[str, Any]) -> Path:
    """The state directory of a sealed log, with the node's JWKS in its keyring."""
    asyncio.run(build_sealed_log(SqliteLogStore(db_path), signer))
    keyring = db_path.parent / "keyring"
    keyring.mkdir()
    (keyring / "jwks.json").write_bytes(orjson.dumps(jwks))
    return db_path.parent


def _run(state_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--state-dir", str(state_dir), "log", *args])


def test_verify_intact_log_exits_zero(state_dir: Path) -> None:
    result = _run(state_dir, "verify")
    assert result.exit_code == 0, result.output
    assert "intact" in result.output
    assert "records:     20" in result.output


def test_verify_damaged_log_exits_one_with_the_problem(state_dir: Path) -> None:
    tamper(state_dir / "messagelog.db", ("DELETE FROM records WHERE seq = 4", ()))
    result = _run(state_dir, "verify")
    assert result.exit_code == 1
    assert "missing record (gap at seq 4)" in result.output
    # The count is of what was checked, not of the log: it says so.
    assert "records:     4 checked before the problem below" in result.output


def test_verify_with_other_keys_reports_unknown_key(
    state_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"keys": []}')
    result = _run(state_dir, "verify", "--jwks", str(other))
    assert result.exit_code == 1
    assert "unknown key id" in result.output


def test_verify_without_a_log_fails(tmp_path: Path) -> None:
    result = _run(tmp_path, "verify", "--jwks", __file__)
    assert result.exit_code == 1
    assert "cannot read public keys" in result.output


def test_search_lists_matching_records(state_dir: Path) -> None:
    result = _run(state_dir, "search", "--decision", "denied", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert "msg-18" in result.output
    assert "msg-17" not in result.output


def test_search_names_each_records_place_in_its_exchange(
    db_path: Path, tmp_path: Path
) -> None:
    async def build() -> None:
        log = MessageLog(SqliteLogStore(db_path))
        await log.start()
        request = {**make_record(1), "direction": "request", "status": 0}
        await log.append(request, flush=False)
        await log.append({**make_record(1), "direction": "response"})
        await log.append({**make_record(3), "direction": "exchange"})
        await log.close()

    asyncio.run(build())

    result = CliRunner().invoke(
        main,
        ["--state-dir", str(db_path.parent), "log", "search"],
        env={"COLUMNS": "200"},  # the whole table, not cut to a narrow terminal
    )

    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "msg-" in line]
    assert len(rows) == 3
    assert "exchange" in rows[0]
    assert "403" in rows[0]
    assert "response" in rows[1]
    assert "200" in rows[1]
    assert "request" in rows[2]
    assert rows[2].split("│")[8].strip() == "-"  # no status yet


def test_search_rejects_a_bad_time(state_dir: Path) -> None:
    result = _run(state_dir, "search", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def test_export_and_evidence_verify(state_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.zip"
    exported = _run(state_dir, "export", "--message-id", "msg-5", "--out", str(out))
    checked = CliRunner().invoke(main, ["log", "evidence-verify", str(out)])
    assert exported.exit_code == 0, exported.output
    assert checked.exit_code == 0, checked.output
    assert "valid" in checked.output


def test_export_of_unknown_message_fails(state_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle.zip"
    result = _run(state_dir, "export", "--message-id", "nope", "--out", str(out))
    assert result.exit_code == 1
    assert "no record has this message id" in result.output


def test_search_by_student_finds_the_keyed_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIATOR_SUBJECT_HASH_KEY", raising=False)
    hasher = SubjectHasher.from_state(tmp_path, "MEDIATOR_SUBJECT_HASH_KEY")

    async def write() -> None:
        log = MessageLog(SqliteLogStore(tmp_path / "messagelog.db"))
        await log.start()
        for i, student in enumerate(["WB-1", "WB-2", "WB-1"]):
            await log.append({**make_record(i), "subject_hash": hasher.hash(student)})
        await log.close()

    asyncio.run(write())
    result = _run(tmp_path, "search", "--student", "wb-1")
    assert result.exit_code == 0, result.output
    assert ("msg-0" in result.output, "msg-2" in result.output) == (True, True)
    assert "msg-1" not in result.output
    assert "WB-1" not in result.output


def test_search_by_student_without_a_key_fails(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDIATOR_SUBJECT_HASH_KEY", raising=False)
    result = _run(state_dir, "search", "--student", "WB-1")
    assert result.exit_code == 1
    assert "no subject hash key" in result.output


def test_verify_reads_revocations_from_the_keyring_metadata(
    state_dir: Path, jwks: dict[str, Any], signer: KeySigner
) -> None:
    jwk = jwks["keys"][0]
    metadata = {
        "keys": [
            {
                "kid": "node-a-2024",
                "algorithm": "ed25519",
                "state": "revoked",
                "created_at": 1,
                "revoked_at": 2,
                "public_jwk": jwk,
            }
        ]
    }
    (state_dir / "keyring" / "keyring.json").write_bytes(orjson.dumps(metadata))
    result = _run(state_dir, "verify")
    assert result.exit_code == 1, result.output
    assert "signed by revoked key" in result.output
