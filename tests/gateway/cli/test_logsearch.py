"""``mediator log search``: JSON Lines with every field, a table kept whole."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from tests.gateway.cli.conftest import run_log as _run
from tests.gateway.msglog.conftest import DAY, DAY_ZERO, STUDENTS

# -- search: JSON Lines, and the table off a terminal --------------------------------


def test_search_json_writes_one_record_per_line_with_all_its_fields(
    state_dir: Path,
) -> None:
    result = _run(state_dir, "search", "--limit", "3", "--json")

    assert result.exit_code == 0, result.output
    records = [orjson.loads(line) for line in result.output.splitlines()]
    assert [r["seq"] for r in records] == [14, 13, 12]
    newest = records[0]
    assert newest["message_id"] == "msg-14"
    assert newest["ts"] == DAY_ZERO + 2 * DAY + 14
    assert newest["client_id"] == "WB/GOV/SED/ifms"
    assert newest["service_id"] == STUDENTS
    assert newest["request_body_sha256"] == hashlib.sha256(b"request 14").hexdigest()
    assert len(newest["prev_hash"]) == 64
    assert {"decision", "status", "reason", "step", "path", "node_id"} <= set(newest)


def test_search_json_carries_no_body_even_where_bodies_are_kept(
    state_dir: Path,
) -> None:
    result = _run(state_dir, "search", "--message-id", "msg-3", "--json")

    assert result.exit_code == 0, result.output
    [record] = [orjson.loads(line) for line in result.output.splitlines()]
    assert "bodies" not in record
    assert b"request 3" not in result.output.encode()


def test_search_json_prints_nothing_when_nothing_matches(state_dir: Path) -> None:
    result = _run(state_dir, "search", "--message-id", "nope", "--json")

    assert result.exit_code == 0, result.output
    assert result.output == ""


def test_search_table_keeps_every_value_whole_off_a_terminal(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)

    result = _run(state_dir, "search", "--limit", "5")

    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "msg-" in line]
    assert len(rows) == 5  # one line each, none wrapped
    assert all(STUDENTS in row and "WB/GOV/SED/ifms" in row for row in rows)
    assert "…" not in result.output
