"""The ``registry-stub`` command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from registry_stub.cli import main


def test_seed_prints_counts_and_writes_the_database(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    args = ["seed", "--db", str(path), "--students", "50", "--schools", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "3 schools" in result.output
    assert "50 students" in result.output
    assert path.is_file()


def test_seed_refuses_a_single_school(tmp_path: Path) -> None:
    args = ["seed", "--db", str(tmp_path / "r.db"), "--schools", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "--schools" in result.output


def test_serve_refuses_a_file_that_is_not_a_registry(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"junk" * 1000)
    result = CliRunner().invoke(main, ["serve", "--db", str(path)])
    assert result.exit_code == 1
    assert "not a seeded registry" in result.output
