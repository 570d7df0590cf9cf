"""JSON Schema files of adapters: loaded once, checked, compiled with jsonschema-rs.

A schema is draft 2020-12 (``$schema`` absent or naming that draft). Every ``$ref``
and ``$dynamicRef`` must be a local ``#...`` pointer: a schema that could fetch
another document would let a config file make the node open connections or read
files, so an external reference fails the load, and the validator is built with a
retriever that refuses every URI as a second line of defence.

Validation failures are reported as a JSON pointer into the instance, never with the
instance's values: the library's own message quotes them, and they are a student's
personal data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import jsonschema_rs
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gateway.errors import ConfigError
from gateway.yamlconf import line_of

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_REF_KEYS = ("$ref", "$dynamicRef")
#: Keywords whose values are instances, not schemas: a "$ref" key there is data.
_DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})
_NAME_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def _refuse(uri: str) -> NoReturn:
    raise ValueError(f"external reference refused: {uri}")


def pointer(tokens: Sequence[str | int]) -> str:
    """An RFC 6901 JSON pointer from path tokens."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


class Schema:
    """A compiled JSON Schema; :meth:`first_error` gives a pointer, never a value."""

    def __init__(self, source: str, validator: jsonschema_rs.Validator) -> None:
        self.source = source
        self._validator = validator

    def first_error(self, instance: Any) -> str | None:
        """The pointer of the first violation in ``instance``, or None if valid."""
        try:
            self._validator.validate(instance)
        except jsonschema_rs.ValidationError as exc:
            tokens = list(exc.instance_path)
            if isinstance(exc.kind, jsonschema_rs.ValidationErrorKind.Required):
                tokens.append(exc.kind.property)
            return pointer(tokens)
        return None


class SchemaLoader:
    """Loads schema files below one adapter directory, each once."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._cache: dict[Path, Schema] = {}

    def load(self, name: str, referrer: Path, line: int | None) -> Schema:
        """The schema at ``name`` relative to the adapter directory.

        Raises ConfigError naming the schema file (and line, where known) if the file
        is outside the adapter directory, unreadable, not JSON, not a draft 2020-12
        schema or has an external reference; a missing file is reported at the
        referring line of ``referrer``.
        """
        path = (self._root / name).resolve()
        if not path.is_relative_to(self._root) or Path(name).is_absolute():
            raise ConfigError(str(referrer), f"{name}: outside the adapter", line=line)
        if not path.is_file():
            raise ConfigError(str(referrer), f"{name}: no such schema file", line=line)
        if path not in self._cache:
            self._cache[path] = _compile(path)
        return self._cache[path]


def _compile(path: Path) -> Schema:
    text = _read(path)
    document = _parse(path, text)
    located = _locate(text)
    _check_draft(path, document, located)
    for tokens, ref in _refs(document, []):
        if not ref.startswith("#"):
            raise ConfigError(
                str(path),
                f"external $ref {ref!r} refused",
                line=line_of(located, tokens),
            )
    try:
        validator = jsonschema_rs.Draft202012Validator(
            document, validate_formats=True, retriever=_refuse
        )
    except jsonschema_rs.ValidationError as exc:
        line = line_of(located, list(exc.instance_path))
        raise ConfigError(str(path), "not a valid JSON Schema", line=line) from exc
    except jsonschema_rs.ReferencingError as exc:
        raise ConfigError(str(path), "a $ref does not resolve") from exc
    return Schema(str(path), validator)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "cannot read as UTF-8") from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice in one object")
    return dict(pairs)


def _parse(path: Path, text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"not JSON: {exc.msg}", line=exc.lineno) from exc
    except ValueError as exc:
        raise ConfigError(str(path), str(exc)) from exc


def _locate(text: str) -> Any:
    """The document as ruamel nodes, only to find line numbers; None if unparseable."""
    try:
        return YAML(typ="rt").load(text)
    except YAMLError:
        return None


def _check_draft(path: Path, document: Any, located: Any) -> None:
    if not isinstance(document, dict | bool):
        raise ConfigError(str(path), "a schema is an object or a boolean", line=1)
    declared = document.get("$schema") if isinstance(document, dict) else None
    if declared not in (None, DRAFT_2020_12):
        line = line_of(located, ["$schema"])
        raise ConfigError(str(path), f"$schema must be {DRAFT_2020_12}", line=line)


def _refs(
    node: Any, tokens: list[str | int], names: bool = False
) -> Iterator[tuple[list[str | int], str]]:
    """Every ``$ref`` and ``$dynamicRef`` string with its location.

    ``names`` is true inside ``properties`` and the like, whose keys are property
    names rather than keywords.
    """
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, [*tokens, index])
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = [*tokens, key]
        if names:
            yield from _refs(value, here)
        elif key in _REF_KEYS and isinstance(value, str):
            yield here, value
        elif key not in _DATA_KEYWORDS:
            yield from _refs(value, here, key in _NAME_MAPS)
