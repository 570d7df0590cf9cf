"""Every problem of one adapter file is found at once, each with its line and field.

``mediator config check`` lists them all; loading still fails as a whole, so a node
with a bad adapter does not start and a reload is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapters import AdapterSet
from adapters.engine import load_adapter
from gateway.errors import ConfigError
from gateway.yamlconf import GroupedConfigError, problems

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    """A copy of the deployment's adapters, to break."""
    target = tmp_path / "adapters"
    shutil.copytree(CONFIG / "adapters", target)
    return target


def _break(file: Path, *replacements: tuple[str, str]) -> None:
    text = file.read_text(encoding="utf-8")
    for old, new in replacements:
        if text.count(old) != 1:
            raise LookupError(f"{old!r} is not in {file} exactly once")
        text = text.replace(old, new)
    file.write_text(text, encoding="utf-8")


def _line(file: Path, text: str) -> int:
    lines = file.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def test_three_bad_mappings_are_three_problems(adapters_dir: Path) -> None:
    file = adapters_dir / "aikyashree" / "adapter.yaml"
    _break(
        file,
        ("studentUid: {from: /student_id,", "studentUid: {from: student_id,"),
        ("table: yes_no, required: true}", "table: yesno, required: true}"),
        ("session: {from: /academic_year,", "session: {from: academic_year,"),
    )

    found = AdapterSet.check(adapters_dir)

    assert [(e.file, e.line) for e in found] == [
        (str(file), _line(file, "studentUid: {from: student_id")),
        (str(file), _line(file, "table: yesno")),
        (str(file), _line(file, "session: {from: academic_year")),
    ]
    assert [e.reason.split(": ", 1)[0] for e in found] == [
        "endpoints.0.response.body.studentUid.from",
        "endpoints.0.response.body.enrolled.table",
        "endpoints.0.response.body.session.from",
    ]


def test_shape_errors_on_different_lines_are_each_reported(
    adapters_dir: Path,
) -> None:
    file = adapters_dir / "iosms" / "adapter.yaml"
    _break(
        file,
        ("      query: drop\n", "      query: drop\n      verb: GET\n"),
        ("            subjectTaught: /subject\n", "            subjectTaught: 7\n"),
    )

    with pytest.raises(GroupedConfigError) as raised:
        load_adapter(file)

    reasons = [(e.line, e.reason) for e in problems(raised.value)]
    assert [line for line, _reason in reasons] == [
        _line(file, "verb: GET"),
        _line(file, "subjectTaught: 7"),
    ]
    assert "request.verb: Extra inputs are not permitted" in reasons[0][1]
    assert ".subjectTaught" in reasons[1][1]


def test_loading_still_stops_at_a_file_with_problems(adapters_dir: Path) -> None:
    file = adapters_dir / "aikyashree" / "adapter.yaml"
    _break(
        file,
        ("studentUid: {from: /student_id,", "studentUid: {from: student_id,"),
        ("session: {from: /academic_year,", "session: {from: academic_year,"),
    )

    with pytest.raises(ConfigError, match=r"and 1 more problem\(s\) in this file"):
        AdapterSet.load(adapters_dir)


def test_problems_of_several_files_are_all_listed(adapters_dir: Path) -> None:
    first = adapters_dir / "aikyashree" / "adapter.yaml"
    second = adapters_dir / "iosms" / "adapter.yaml"
    _break(first, ("session: {from: /academic_year,", "session: {from: year,"))
    _break(
        second,
        ("table: cadre, required: true}", "table: cadres, required: true}"),
        ("postedAt: {from: /udise_code,", "postedAt: {from: udise_code,"),
    )

    found = AdapterSet.check(adapters_dir)

    assert [e.file for e in found] == [str(first), str(second), str(second)]
