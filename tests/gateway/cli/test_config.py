"""``mediator config check`` and ``mediator adapters test`` on real deployments."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.deployment import load_deployment
from gateway.errors import ConfigError

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
    # The renamed key is two problems of node.yaml: node_idd unknown, node_id missing.
    assert f"{node}:3: node_idd: Extra inputs are not permitted" in result.output
    assert f"{node}: node_id: Field required" in result.output
    assert f"{access}:" in result.output
    assert "3 problem(s)" in result.output


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


def _broken_copy(tmp_path: Path, file: str, *edits: tuple[str, str]) -> Path:
    """A copy of the deployment with ``edits`` made to one of its files."""
    broken = tmp_path / "config"
    shutil.copytree(CONFIG, broken)
    path = broken / file
    text = path.read_text()
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)
    return path


def _check(path: Path) -> list[str]:
    """``mediator config check`` on the deployment of ``path``: its lines about it."""
    config = path.parent
    result = CliRunner().invoke(main, ["--config", str(config), "config", "check"])
    assert result.exit_code == 1, result.output
    return [line for line in result.output.splitlines() if line.startswith(f"{path}:")]


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def _at(path: Path, text: str, field: str) -> list[str]:
    """``file:line`` of the line holding ``text``, and the field, as reported."""
    return [f"{path}:{_line_of(path, text)}", field]


def test_two_bad_access_rules_are_two_problems(tmp_path: Path) -> None:
    access = _broken_copy(
        tmp_path,
        "access.yaml",
        ('rate: "300/minute"', 'rate: "300/fortnight"'),
        ('rate: "600/minute"', 'rate: "often"'),
    )

    assert _check(access) == [
        f"{access}:{_line_of(access, 'fortnight')}: rights.1.rate: "
        "'300/fortnight' is not a rate such as '50/second'",
        f"{access}:{_line_of(access, 'often')}: rights.6.rate: "
        "'often' is not a rate such as '50/second'",
    ]


def test_two_bad_endpoints_of_one_rule_are_two_problems(tmp_path: Path) -> None:
    access = _broken_copy(
        tmp_path,
        "access.yaml",
        ("{method: POST, path: /verify-enrolment}", "{method: FETCH, path: /v}"),
        ('path: "/applicants/{student_id}/enrolment"', 'path: "applicants"'),
    )

    lines = _check(access)

    assert [line.split(": ")[1] for line in lines] == [
        "rights.0.endpoints.0.method",
        "rights.0.endpoints.1.path",
    ]
    assert lines[0].startswith(f"{access}:{_line_of(access, 'FETCH')}: ")


def test_two_bad_purposes_are_two_problems(tmp_path: Path) -> None:
    purposes = _broken_copy(
        tmp_path,
        "purposes.yaml",
        ("controller: WB/GOV/BCW", "controller: BCW"),
        ("controller: WB/GOV/SED", "controller: SED"),
    )

    assert [line.split(": ")[:2] for line in _check(purposes)] == [
        _at(purposes, "controller: BCW", "purposes.1.controller"),
        _at(purposes, "controller: SED", "purposes.3.controller"),
    ]


def test_two_bad_subsystems_of_the_directory_are_two_problems(tmp_path: Path) -> None:
    directory = _broken_copy(
        tmp_path,
        "directory.yaml",
        ("- code: iosms", "- code: io/sms"),
        ("- code: aikyashree", "- code: aikya/shree"),
    )

    assert [line.split(": ")[:2] for line in _check(directory)] == [
        _at(directory, "io/sms", "members.0.subsystems.1.code"),
        _at(directory, "aikya/shree", "members.4.subsystems.0.code"),
    ]


def test_a_node_still_refuses_a_deployment_with_problems(tmp_path: Path) -> None:
    access = _broken_copy(
        tmp_path,
        "access.yaml",
        ('rate: "300/minute"', 'rate: "300/fortnight"'),
        ('rate: "600/minute"', 'rate: "often"'),
    )

    with pytest.raises(ConfigError, match=r"rights\.1\.rate: .* \(and 1 more problem"):
        load_deployment(access.parent, tmp_path / "state")
