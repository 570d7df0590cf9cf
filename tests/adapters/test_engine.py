"""Loading adapter sets: errors with file and line, checks, and endpoint look-up."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from adapters import AdapterSet
from gateway.errors import ConfigError
from gateway.identifiers import ClientId, ServiceId
from tests.adapters.conftest import CLIENT, SERVICE, write_adapter

HEADER = """\
name: bad
client: WB/GOV/WCD/kanyashree
service: WB/GOV/SED/banglarshiksha/students
"""


def _write_yaml(root: Path, body: str, name: str = "bad") -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "schema.json").write_text('{"type": "object"}', encoding="utf-8")
    file = directory / "adapter.yaml"
    file.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return file


BAD_SPECS = [
    (
        "unknown operation",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              body:
                a: {from: /a, uppercase: true}
        """,
        9,
        "uppercase",
    ),
    (
        "value table without entries",
        """\
        tables:
          yn:
            entries: []
        endpoints:
          - name: e
            match: {method: POST, path: /x}
        """,
        6,
        "entries",
    ),
    (
        "path pattern that does not parse",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: "/a//b"}
        """,
        6,
        "empty segment",
    ),
    (
        "unknown table name",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              body:
                a: {from: /a, table: nope}
        """,
        9,
        "no table named",
    ),
    (
        "value listed twice in a table",
        """\
        tables:
          yn:
            entries:
              - [true, "Y"]
              - [true, "N"]
        endpoints:
          - name: e
            match: {method: POST, path: /x}
        """,
        8,
        "listed twice",
    ),
    (
        "bad date format",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            response:
              body:
                d: {from: /d, date: {parse: DD/MM/YY, format: YYYY-MM-DD}}
        """,
        9,
        "date format",
    ),
    (
        "two sources",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              body:
                a: {from: /a, const: 1}
        """,
        9,
        "only one of",
    ),
    (
        "source that is not a pointer",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              body:
                a: student_id
        """,
        9,
        "not a JSON pointer",
    ),
    (
        "unknown path parameter",
        """\
        endpoints:
          - name: e
            match: {method: GET, path: "/s/{id}"}
            request:
              body:
                a: {param: sid}
        """,
        9,
        "no such path parameter",
    ),
    (
        "path parameter in a response",
        """\
        endpoints:
          - name: e
            match: {method: GET, path: "/s/{id}"}
            response:
              body:
                a: {param: id}
        """,
        9,
        "no such path parameter",
    ),
    (
        "template placeholder without a value",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              path: "/{student_id}/verify"
        """,
        8,
        "has no value",
    ),
    (
        "path parameter pattern not a regex",
        """\
        endpoints:
          - name: e
            match: {method: GET, path: "/s/{id}"}
            request:
              params: {id: "(["}
        """,
        8,
        "not a regex",
    ),
    (
        "endpoint name used twice",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
          - name: e
            match: {method: POST, path: /y}
        """,
        7,
        "used twice",
    ),
    (
        "missing schema file",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
            request:
              schema: nope.json
        """,
        8,
        "no such schema file",
    ),
    (
        "unknown method",
        """\
        endpoints:
          - name: e
            match: {method: BREW, path: /x}
        """,
        6,
        "method",
    ),
    (
        "example with neither outcome",
        """\
        endpoints:
          - name: e
            match: {method: POST, path: /x}
        examples:
          - name: x
            request: {method: POST, path: /x}
        """,
        8,
        "canonical_request or request_error",
    ),
]


@pytest.mark.parametrize(
    ("body", "line", "why"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_spec_names_file_and_line(
    tmp_path: Path, body: str, line: int, why: str
) -> None:
    file = _write_yaml(tmp_path, body)
    with pytest.raises(ConfigError, match=why) as caught:
        AdapterSet.load(tmp_path)
    assert caught.value.file == str(file)
    assert caught.value.line == line


def test_bad_client_id_names_the_line(tmp_path: Path) -> None:
    directory = tmp_path / "bad"
    directory.mkdir()
    text = HEADER.replace("WB/GOV/WCD/kanyashree", "WB/GOV/kanyashree")
    (directory / "adapter.yaml").write_text(
        text + "endpoints: [{name: e, match: {method: GET, path: /}}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="subsystem id") as caught:
        AdapterSet.load(tmp_path)
    assert caught.value.line == 2


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    file = _write_yaml(tmp_path, "endpoints: [\n")
    with pytest.raises(ConfigError) as caught:
        AdapterSet.load(tmp_path)
    assert caught.value.file == str(file)
    assert caught.value.line is not None


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        AdapterSet.load(tmp_path / "nowhere")


def test_check_reports_every_bad_file(tmp_path: Path) -> None:
    _write_yaml(tmp_path, "endpoints: []\n", name="one")
    _write_yaml(
        tmp_path, "endpoints: [{name: e, match: {method: GET, path: x}}]\n", name="two"
    )
    endpoint = {"name": "e", "match": {"method": "GET", "path": "/"}}
    write_adapter(tmp_path, [endpoint], name="three")
    errors = AdapterSet.check(tmp_path)
    assert [Path(e.file).parent.name for e in errors] == ["one", "two"]


def test_check_reports_a_pair_with_two_adapters(tmp_path: Path) -> None:
    endpoint = {"name": "e", "match": {"method": "GET", "path": "/"}}
    write_adapter(tmp_path, [endpoint], name="first")
    write_adapter(tmp_path, [endpoint], name="second")
    errors = AdapterSet.check(tmp_path)
    assert len(errors) == 1
    assert "also in" in errors[0].reason


def test_check_of_config_adapters_is_clean() -> None:
    assert AdapterSet.check(Path(__file__).parents[2] / "config" / "adapters") == []


@pytest.fixture
def adapters(tmp_path: Path) -> AdapterSet:
    endpoints = [
        {"name": "verify", "match": {"method": "POST", "path": "/verify-enrolment"}},
        {"name": "one", "match": {"method": "GET", "path": "/{student_id}"}},
        {"name": "literal", "match": {"method": "GET", "path": "/special"}},
        {"name": "rest", "match": {"method": "GET", "path": "/files/**"}},
    ]
    write_adapter(tmp_path, endpoints)
    return AdapterSet.load(tmp_path)


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/verify-enrolment", "test:verify"),
        ("post", "/verify-enrolment", "test:verify"),
        ("GET", "/verify-enrolment", "test:one"),
        ("GET", "/WB201900001235", "test:one"),
        ("GET", "/special", "test:one"),
        ("GET", "/files/a/b", "test:rest"),
        ("DELETE", "/WB201900001235", None),
        ("GET", "/WB201900001235/transfer", None),
        ("POST", "/", None),
    ],
)
def test_find_first_match_wins(
    adapters: AdapterSet, method: str, path: str, name: str | None
) -> None:
    found = adapters.find(CLIENT, SERVICE, method, path)
    assert (found.name if found else None) == name


def test_find_without_adapter_for_the_pair(adapters: AdapterSet) -> None:
    other = ClientId.parse("WB/GOV/FIN/ifms")
    assert adapters.find(other, SERVICE, "POST", "/verify-enrolment") is None
    schools = ServiceId.parse("WB/GOV/SED/banglarshiksha/schools")
    assert adapters.find(CLIENT, schools, "POST", "/verify-enrolment") is None


def test_iteration_lists_adapters(adapters: AdapterSet) -> None:
    assert [a.name for a in adapters] == ["test"]
    assert len(adapters) == 1
