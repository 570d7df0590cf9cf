"""Strict YAML configuration: parsing, environment references, located errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.errors import ConfigError
from gateway.yamlconf import (
    ErrorCollector,
    GroupedConfigError,
    Strict,
    all_errors,
    line_of,
    load_model,
    problems,
    read_yaml,
    validate,
    validation_errors,
)

pytestmark = pytest.mark.usefixtures("no_test_variables")

ENV = "MEDIATOR_YAMLCONF_TEST"
Write = Callable[[str], Path]


class Listen(Strict):
    host: str = "127.0.0.1"
    port: int = 8080


class Node(Strict):
    node_id: str
    listen: Listen = Listen()
    hosts: tuple[str, ...] = ()
    level: int | bool = 0


@pytest.fixture
def no_test_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV, f"{ENV}_OTHER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Writes a YAML text to ``node.yaml`` and returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / "node.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def error_of(path: Path, model: type[Strict] = Node) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_model(path, model)
    return caught.value


# -- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("no", "no"),
        ("on", "on"),
        ("yes", "yes"),
        ("017", 17),
        ("0o17", 15),
        ("1e3", 1000.0),
        ("~", None),
        ("true", True),
    ],
)
def test_scalars_are_read_as_yaml_1_2(write: Write, text: str, value: object) -> None:
    """YAML 1.1's yes/no/on booleans and leading-zero octals are gone in 1.2."""
    assert read_yaml(write(f"value: {text}\n"))["value"] == value


def test_a_duplicate_key_is_an_error_on_its_line(write: Write) -> None:
    path = write("node_id: a\nlisten:\n  port: 1\n  port: 2\n")

    with pytest.raises(ConfigError, match="duplicate") as caught:
        read_yaml(path)

    assert (caught.value.file, caught.value.line) == (str(path), 4)


def test_a_syntax_error_names_its_line(write: Write) -> None:
    path = write("node_id: a\nlisten: [1, 2\nhosts: []\n")

    with pytest.raises(ConfigError) as caught:
        read_yaml(path)

    assert caught.value.line == 3


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: No such file") as caught:
        read_yaml(tmp_path / "node.yaml")

    assert caught.value.file == str(tmp_path / "node.yaml")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_bytes(b"node_id: caf\xe9\n")

    with pytest.raises(ConfigError, match="not valid UTF-8"):
        read_yaml(path)


# -- environment references ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f"${{{ENV}}}", "set"),
        (f"http://${{{ENV}}}:8700/", "http://set:8700/"),
        (f"${{{ENV}:-fallback}}", "set"),
        (f"${{{ENV}_OTHER:-fallback}}", "fallback"),
        (f"${{{ENV}_OTHER:-}}", ""),
        (f"${{{ENV}}}/${{{ENV}}}", "set/set"),
        ("${lower_case}", "${lower_case}"),
        ("$MEDIATOR_YAMLCONF_TEST", "$MEDIATOR_YAMLCONF_TEST"),
    ],
)
def test_an_environment_reference_is_replaced_by_its_value(
    write: Write, monkeypatch: pytest.MonkeyPatch, text: str, value: str
) -> None:
    monkeypatch.setenv(ENV, "set")

    assert read_yaml(write(f'value: "{text}"\n'))["value"] == value


@pytest.mark.parametrize(
    ("text", "value"), [(f"${{{ENV}:-5}}", "5"), (f"${{{ENV}}}", "")]
)
def test_an_empty_variable_takes_the_default_as_in_the_shell(
    write: Write, monkeypatch: pytest.MonkeyPatch, text: str, value: str
) -> None:
    """``${NAME:-default}`` for an empty NAME is the default; ``${NAME}`` is empty."""
    monkeypatch.setenv(ENV, "")

    assert read_yaml(write(f'value: "{text}"\n'))["value"] == value


def test_references_in_lists_and_nested_maps_are_replaced(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "set")

    data = read_yaml(write(f"a:\n  b: [x, '${{{ENV}}}']\n  c: {{d: '${{{ENV}}}'}}\n"))

    assert (data["a"]["b"][1], data["a"]["c"]["d"]) == ("set", "set")


def test_an_unset_variable_without_a_default_is_an_error(write: Write) -> None:
    path = write(f"value: ${{{ENV}}}\n")

    with pytest.raises(ConfigError, match=f"environment variable {ENV} is not set"):
        read_yaml(path)


def test_a_value_from_the_environment_is_not_expanded_again(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, f"${{{ENV}_OTHER}}")

    assert read_yaml(write(f"value: ${{{ENV}}}\n"))["value"] == f"${{{ENV}_OTHER}}"


def test_an_aliased_node_is_expanded_once(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An alias names a node already expanded: a value from the environment that
    looks like a reference is kept, as where the node was written."""
    monkeypatch.setenv(ENV, "${MEDIATOR_YAMLCONF_TEST_OTHER}")
    monkeypatch.setenv(f"{ENV}_OTHER", "not to be copied")
    path = write(
        "base: &map {v: '${MEDIATOR_YAMLCONF_TEST}'}\n"
        "copy: *map\n"
        "list: &seq ['${MEDIATOR_YAMLCONF_TEST}']\n"
        "again: [*seq, *seq]\n"
    )

    data = read_yaml(path)

    assert data["base"]["v"] == "${MEDIATOR_YAMLCONF_TEST_OTHER}"
    assert data["copy"]["v"] == "${MEDIATOR_YAMLCONF_TEST_OTHER}"
    assert data["list"][0] == "${MEDIATOR_YAMLCONF_TEST_OTHER}"
    assert data["again"][1][0] == "${MEDIATOR_YAMLCONF_TEST_OTHER}"


def test_without_expansion_references_are_kept_as_text(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adapter files: a mapping must not copy an environment secret into a request."""
    monkeypatch.setenv(ENV, "secret")

    data = read_yaml(write(f"header: ${{{ENV}}}\n"), expand_env=False)

    assert data["header"] == f"${{{ENV}}}"


# -- locating and validating ---------------------------------------------------------


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("node_id",), 1),
        (("listen", "port"), 3),
        (("hosts", 1), 6),
        (("hosts", 9), 4),
        (("listen", "absent"), 2),
        (("absent",), None),
        ((), None),
    ],
)
def test_the_line_of_a_location_is_its_deepest_known_part(
    write: Write, loc: tuple[int | str, ...], line: int | None
) -> None:
    data = read_yaml(write("node_id: a\nlisten:\n  port: 1\nhosts:\n  - x\n  - y\n"))

    assert line_of(data, loc) == line


def test_a_valid_file_becomes_a_frozen_model(write: Write) -> None:
    node = load_model(write("node_id: a\nlisten:\n  port: 9000\n"), Node)

    assert (node.node_id, node.listen.port) == ("a", 9000)
    with pytest.raises(ValidationError, match="frozen"):
        node.node_id = "b"  # type: ignore[misc]


def test_an_unknown_key_is_an_error_naming_it_and_its_line(write: Write) -> None:
    path = write("node_id: a\nlisten:\n  prot: 9000\n")

    error = error_of(path)

    assert (error.file, error.line) == (str(path), 3)
    assert error.reason == "listen.prot: Extra inputs are not permitted"


def test_a_value_of_the_wrong_type_names_its_key_and_line(write: Write) -> None:
    error = error_of(write("node_id: a\nlisten:\n  port: eighty\n"))

    assert error.line == 3
    assert error.reason.startswith("listen.port: Input should be a valid integer")


def test_a_missing_key_is_reported_without_a_line(write: Write) -> None:
    error = error_of(write("listen: {}\n"))

    assert (error.line, error.reason) == (None, "node_id: Field required")


def test_problems_on_several_lines_are_each_reported(write: Write) -> None:
    path = write("node_id: a\nlisten:\n  port: eighty\n  prot: 1\nextra: 1\n")

    error = error_of(path)

    assert isinstance(error, GroupedConfigError)
    assert [e.line for e in error.errors] == [3, 4, 5]
    assert error.line == 3
    assert error.reason.endswith("(and 2 more problem(s) in this file)")


class Pair(Strict):
    first: str
    second: str


class Holder(Strict):
    pair: Pair


def test_missing_keys_are_each_reported_though_on_one_line(write: Write) -> None:
    """Both sit on their parent's line; neither hides the other."""
    error = error_of(write("pair: {}\n"), Holder)

    assert [(e.line, e.reason) for e in problems(error)] == [
        (1, "pair.first: Field required"),
        (1, "pair.second: Field required"),
    ]


def test_a_union_reports_one_problem_for_its_line(write: Write) -> None:
    """Each member of ``int | bool`` refuses the value: one mistake, one report."""
    error = error_of(write("node_id: a\nlevel: high\n"))

    assert not isinstance(error, GroupedConfigError)
    assert error.line == 2
    assert error.reason.startswith("level.int: ")


def test_union_tags_in_skip_are_left_out_of_the_location(write: Write) -> None:
    path = write("node_id: a\nlevel: high\n")
    data = read_yaml(path)
    with pytest.raises(ValidationError) as caught:
        Node.model_validate(dict(data))

    error = validation_errors(caught.value, data, path, frozenset({"int", "bool"}))

    assert error.reason.startswith("level: ")


def test_integer_keys_are_read_as_strings(write: Write) -> None:
    class Codes(Strict):
        names: dict[str, str]

    path = write("names:\n  404: not found\n")

    assert validate(read_yaml(path), Codes, path).names == {"404": "not found"}


# -- collecting errors ---------------------------------------------------------------


def failing(reason: str, line: int | None = None) -> Callable[[], None]:
    def check() -> None:
        raise ConfigError("node.yaml", reason, line=line)

    return check


def test_the_collector_records_a_failed_check_and_goes_on() -> None:
    collector = ErrorCollector()
    ran: list[str] = []

    with collector.attempt():
        failing("first")()
    with collector.attempt():
        ran.append("second")

    assert [e.reason for e in collector.errors] == ["first"]
    assert ran == ["second"]


def test_the_collector_raises_one_error_as_itself() -> None:
    collector = ErrorCollector()
    with collector.attempt():
        failing("only", 7)()

    with pytest.raises(ConfigError, match="only") as caught:
        collector.raise_any()

    assert type(caught.value) is ConfigError
    assert caught.value.line == 7


def test_the_collector_raises_several_errors_as_a_group() -> None:
    collector = ErrorCollector()
    for reason in ("first", "second"):
        with collector.attempt():
            failing(reason)()

    with pytest.raises(GroupedConfigError, match=r"first \(and 1 more"):
        collector.raise_any()


def test_the_collector_without_errors_raises_nothing() -> None:
    ErrorCollector().raise_any()


def test_a_group_caught_by_the_collector_is_taken_apart() -> None:
    group = GroupedConfigError(
        [ConfigError("a.yaml", "one"), ConfigError("a.yaml", "two")]
    )
    collector = ErrorCollector()

    with collector.attempt():
        raise group

    assert [e.reason for e in collector.errors] == ["one", "two"]


def test_all_errors_runs_every_check() -> None:
    checks = [
        ("node", failing("bad node", 1)),
        ("fine", lambda: None),
        ("access", failing("bad access", 2)),
    ]

    assert [e.reason for e in all_errors(checks)] == ["bad node", "bad access"]


def test_other_exceptions_are_not_collected() -> None:
    with pytest.raises(KeyError), ErrorCollector().attempt():
        raise KeyError("node_id")
