"""The admin audit log: appends chain, and any edit is found with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.audit import GENESIS, AuditLog
from gateway.errors import ConfigError


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("ops:alice", "keys.rotate", "k2", {"activate_at": 10})
    log.append("ops:bob", "keys.revoke", "k1", {})
    log.append("ops:alice", "keys.activate", "k2")
    return log


def test_entries_chain_from_genesis(audit: AuditLog) -> None:
    entries = audit.entries()

    assert audit.verify() == 3
    assert entries[0].prev_hash == GENESIS
    assert [e.prev_hash for e in entries[1:]] == [e.hash for e in entries[:-1]]
    assert entries[1].actor == "ops:bob"


def test_a_missing_file_is_an_empty_log(tmp_path: Path) -> None:
    assert AuditLog(tmp_path / "none.jsonl").verify() == 0


@pytest.mark.parametrize(
    ("edit", "line", "match"),
    [
        ("actor", 2, "does not match its hash"),
        ("delete", 2, "chain is broken"),
        ("swap", 1, "chain is broken"),
        ("garbage", 3, "not an audit entry"),
    ],
)
def test_an_edit_is_found_at_its_line(
    audit: AuditLog, edit: str, line: int, match: str
) -> None:
    lines = audit.path.read_text().splitlines()
    if edit == "actor":
        entry = json.loads(lines[1])
        entry["actor"] = "ops:mallory"
        lines[1] = json.dumps(entry)
    elif edit == "delete":
        del lines[1]
    elif edit == "swap":
        lines[0], lines[1] = lines[1], lines[0]
    else:
        lines[2] = "{not json"
    audit.path.write_text("\n".join(lines) + "\n")

    with pytest.raises(ConfigError, match=match) as info:
        audit.verify()

    assert info.value.line == line
