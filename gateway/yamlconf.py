"""Strict YAML configuration: YAML 1.2, line numbers kept, validated into frozen models.

Every deployment file goes through :func:`load_model`. An unknown key, a wrong type or
a bad value raises :class:`~gateway.errors.ConfigError` naming the file, the line and
the key, so that an integrator can fix config without reading Python.

String values may name environment variables as ``${NAME}`` or ``${NAME:-default}``;
this is how a demo or test points a service at a port chosen at run time. As in the
shell, the default stands in for a name that is not set or is empty. A name that is
not set and has no default is an error. Adapter files are read with
``expand_env=False``: a mapping must never be able to copy an environment secret into
a request.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from gateway.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    """Base for configuration models: frozen, and no key the model does not name."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


def read_yaml(path: Path, *, expand_env: bool = True) -> Any:
    """Parse one YAML 1.2 file, keeping line numbers; raise ConfigError on syntax.

    With ``expand_env`` (the default) ``${NAME}`` references are replaced, and an
    unset name without a default raises ConfigError; without it the text is kept.
    """
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "not valid UTF-8") from exc
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "YAML syntax error"
        raise ConfigError(str(path), str(problem), line=line) from exc
    return _expand_env(data, path) if expand_env else data


def _expand_env(node: Any, path: Path, done: set[int] | None = None) -> Any:
    if isinstance(node, str):
        return _ENV_REF.sub(lambda m: _env_value(m, path), node)
    if not isinstance(node, CommentedMap | CommentedSeq):
        return node
    # Containers are expanded in place, and an alias (*name) is the same object
    # again: expanding it twice would expand the values taken from the
    # environment, so ``${A}`` whose value is ``${B}`` would become B's value.
    done = set() if done is None else done
    if id(node) in done:
        return node
    done.add(id(node))
    if isinstance(node, CommentedMap):
        for key in list(node.keys()):
            node[key] = _expand_env(node[key], path, done)
    else:
        for index, item in enumerate(node):
            node[index] = _expand_env(item, path, done)
    return node


def _env_value(match: re.Match[str], path: Path) -> str:
    name, default = match.group(1), match.group(2)
    value = os.environ.get(name)
    if default is not None and not value:
        # As in the shell: ``:-`` takes the default for an empty value too.
        return default
    if value is not None:
        return value
    raise ConfigError(str(path), f"environment variable {name} is not set")


def line_of(data: Any, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the value at ``loc`` in a ruamel document, if known."""
    node = data
    line: int | None = None
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif (
            isinstance(node, CommentedSeq)
            and isinstance(part, int)
            and part < len(node)
        ):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


class GroupedConfigError(ConfigError):
    """Several problems in one file: ``errors`` holds each, with its own line.

    The message is the first problem's, with how many more there are, so that a
    node refusing to start still names a file, a line and a reason.
    """

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s) in this file)"
        super().__init__(first.file, first.reason + more, line=first.line)
        self.errors = list(errors)


def problems(error: ConfigError) -> list[ConfigError]:
    """Each problem an error stands for: itself, or each one a group holds."""
    if isinstance(error, GroupedConfigError):
        return list(error.errors)
    return [error]


class ErrorCollector:
    """Gathers the ConfigErrors of independent checks of one file, then raises all.

    Each check runs in :meth:`attempt`; a check that fails is recorded and the
    caller goes on to the next. :meth:`raise_any` raises the one error, or a
    :class:`GroupedConfigError` for several, so a loader still fails as a whole.
    """

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Run the block; record a ConfigError it raises instead of propagating it."""
        try:
            yield
        except ConfigError as exc:
            self.errors.extend(problems(exc))

    def raise_any(self) -> None:
        """Raise what was recorded, if anything."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise GroupedConfigError(self.errors)


def validation_errors(
    exc: ValidationError, data: Any, path: Path, skip: frozenset[str] = frozenset()
) -> ConfigError:
    """Every problem pydantic found, located in the YAML, at most one per line.

    Parts of a location in ``skip`` (union tags the YAML does not have) are left
    out. Several problems on one line are mostly one mistake seen by each member
    of a union, so only the first of them is kept; missing keys, which all sit on
    their parent's line, are each reported.
    """
    found: dict[object, ConfigError] = {}
    for error in exc.errors():
        loc = [p for p in error["loc"] if isinstance(p, int | str) and p not in skip]
        where = ".".join(str(p) for p in loc) or "(top level)"
        line = line_of(data, loc)
        key = where if line is None or error["type"] == "missing" else line
        if key not in found:
            found[key] = ConfigError(str(path), f"{where}: {error['msg']}", line=line)
    errors = list(found.values())
    return errors[0] if len(errors) == 1 else GroupedConfigError(errors)


def validate(data: Any, model: type[M], path: Path) -> M:
    """Validate parsed YAML into ``model``; raise ConfigError naming each bad key.

    Several problems raise :class:`GroupedConfigError`, at most one per line.
    """
    try:
        return model.model_validate(_plain(data))
    except ValidationError as exc:
        raise validation_errors(exc, data, path) from exc


def load_model(path: Path, model: type[M]) -> M:
    """Read and validate one file into ``model``."""
    return validate(read_yaml(path), model, path)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def all_errors(checks: Iterable[tuple[str, Any]]) -> list[ConfigError]:
    """Run each ``(label, thunk)``; collect every problem instead of stopping."""
    collector = ErrorCollector()
    for _label, thunk in checks:
        with collector.attempt():
            thunk()
    return collector.errors
