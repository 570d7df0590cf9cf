"""``mediator demo``: its options and their floors, and the run's exit status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.demo import run


class _Run:
    """Stands in for the demo run: records its arguments, returns ``status``."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[tuple[Path, dict[str, Any]]] = []

    def __call__(self, work: Path, **sizes: Any) -> int:
        self.calls.append((work, sizes))
        return self.status


@pytest.fixture
def demo_run(monkeypatch: pytest.MonkeyPatch) -> _Run:
    stand_in = _Run()
    monkeypatch.setattr(run, "main", stand_in)
    return stand_in


def _demo(*args: str) -> Result:
    return CliRunner().invoke(main, ["demo", *args])


def test_the_demo_runs_at_its_default_size_in_var_demo(demo_run: _Run) -> None:
    result = _demo()

    assert result.exit_code == 0, result.output
    assert demo_run.calls == [(Path("var/demo"), {"students": 20_000, "schools": 200})]


def test_the_options_reach_the_run(demo_run: _Run, tmp_path: Path) -> None:
    result = _demo("--work-dir", str(tmp_path), "--students", "500", "--schools", "20")

    assert result.exit_code == 0, result.output
    assert demo_run.calls == [(tmp_path, {"students": 500, "schools": 20})]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--students", "499"], "--students"),
        (["--schools", "19"], "--schools"),
        (["--students", "many"], "--students"),
    ],
)
def test_a_registry_below_the_floor_is_a_usage_error(
    demo_run: _Run, args: list[str], option: str
) -> None:
    """Too few students or schools for the traffic the demo sends."""
    result = _demo(*args)

    assert result.exit_code == 2
    assert option in result.output
    assert demo_run.calls == []


def test_a_work_dir_that_is_a_file_is_a_usage_error(
    demo_run: _Run, tmp_path: Path
) -> None:
    file = tmp_path / "work"
    file.write_text("", encoding="utf-8")

    result = _demo("--work-dir", str(file))

    assert result.exit_code == 2
    assert demo_run.calls == []


@pytest.mark.parametrize("status", [0, 1, 3])
def test_the_command_exits_with_the_runs_status(
    demo_run: _Run, tmp_path: Path, status: int
) -> None:
    demo_run.status = status

    result = _demo("--work-dir", str(tmp_path))

    assert result.exit_code == status


def test_help_shows_the_defaults(demo_run: _Run) -> None:
    result = _demo("--help")

    assert result.exit_code == 0
    assert "default: 20000" in result.output
    assert "var/demo" in result.output
    assert demo_run.calls == []
