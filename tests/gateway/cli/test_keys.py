"""``mediator keys``: the commands, and that no private material is printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main

PASSPHRASE = "correct horse battery staple"


def _run(state: Path, *args: str) -> tuple[int, str]:
    runner = CliRunner(env={"MEDIATOR_KEY_PASSPHRASE": PASSPHRASE})
    result = runner.invoke(main, ["--state-dir", str(state), "keys", *args])
    return result.exit_code, result.output


def _pending_kid(state: Path) -> str:
    document = json.loads((state / "keyring" / "keyring.json").read_text())
    return next(k["kid"] for k in document["keys"] if k["state"] == "pending")


def test_init_list_and_export(tmp_path: Path) -> None:
    code, init_out = _run(tmp_path, "init", "--algorithm", "ecdsa-p256")
    _, list_out = _run(tmp_path, "list")
    _, export_out = _run(tmp_path, "export-public")

    assert code == 0
    assert "active" in list_out
    assert json.loads(export_out)["keys"][0]["alg"] == "ES256"
    for output in (init_out, list_out, export_out):
        assert PASSPHRASE not in output
        assert "PRIVATE KEY" not in output
        assert '"d"' not in output


def test_rotate_then_activate_then_revoke(tmp_path: Path) -> None:
    _run(tmp_path, "init")
    code, rotate_out = _run(tmp_path, "rotate", "--activate-in", "60")
    kid = _pending_kid(tmp_path)

    activate_code, activate_out = _run(tmp_path, "activate", kid)
    retire_code, _ = _run(tmp_path, "retire", kid)

    assert code == 0
    assert "pending" in rotate_out
    assert activate_code == 0
    assert "active" in activate_out
    assert retire_code != 0


def test_export_to_file(tmp_path: Path) -> None:
    _run(tmp_path, "init")
    out = tmp_path / "jwks.json"

    code, _ = _run(tmp_path, "export-public", "--out", str(out))

    assert code == 0
    assert json.loads(out.read_text())["keys"]


@pytest.mark.parametrize("env", [{}, {"MEDIATOR_KEY_PASSPHRASE": "wrong"}])
def test_bad_passphrase_is_a_clean_error(tmp_path: Path, env: dict[str, str]) -> None:
    _run(tmp_path, "init")
    runner = CliRunner(env={"MEDIATOR_KEY_PASSPHRASE": None, **env})

    result = runner.invoke(main, ["--state-dir", str(tmp_path), "keys", "list"])

    assert result.exit_code != 0
    assert "Error:" in result.output
    assert "wrong" not in result.output.replace("MEDIATOR_KEY_PASSPHRASE", "")
