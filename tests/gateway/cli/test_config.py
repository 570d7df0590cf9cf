"""``mediator config check`` and ``mediator adapters test`` on real deployments."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main

CONFIG = Path(__file__).resolve().parents[3] / "config"


def test_the_shipped_deployment_is_valid() -> None:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "config", "check"])

    assert result.exit_code == 0, result.output
    assert "configuration is valid" in result.output


def test_every_problem_is_reported_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "config"
    shutil.copytree(CONFIG, broken)
    node = broken / "node.yaml"
    node.write_text(node.read_text().replace("node_id:", "node_idd:"))
    access = broken / "access.yaml"
    access.write_text(access.read_text().replace("method: POST", "method: FETCH", 1))

    result = CliRunner().invoke(main, ["--config", str(broken), "config", "check"])

    assert result.exit_code == 1
    assert f"{node}:" in result.output
    assert f"{access}:" in result.output
    assert "2 problem(s)" in result.output


def test_adapter_examples_all_pass() -> None:
    result = CliRunner().invoke(main, ["--config", str(CONFIG), "adapters", "test"])

    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_a_command_on_a_missing_deployment_says_so_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--config", str(tmp_path), "log", "verify"])

    assert result.exit_code == 1
    assert "configuration error:" in result.output
    assert f"{tmp_path / 'node.yaml'}: cannot read" in result.output
    assert "Traceback" not in result.output
