"""Compile a field mapping of an adapter spec once into plain Python closures.

There is no expression language: a spec names sources (a JSON pointer, a path or query
parameter, a constant, joined parts) and a closed set of transforms (value tables,
dates, number formats, name splitting, per-item ``each``, nested ``fields``), and a
field may be conditional (``when``). Nothing evaluated here can call a function, read
the environment or loop without bound, and a mapping costs a few dictionary look-ups
per field.

Absent and null are kept apart on purpose. A source is *absent* when a key on its
pointer is missing: then ``default`` is used if given, ``required`` fails, otherwise the
output field is omitted. A source is *null* when its value, or an object on its way, is
JSON null: then ``on_null`` decides (``keep`` writes null, ``omit`` leaves the field
out, ``fail`` fails, ``default`` writes the default). Transforms only ever see values
that are present and not null.

A failure raises :class:`MappingError` with the JSON pointer of the source value,
never the value; the engine turns it into the exchange error for its side.
"""

from __future__ import annotations

import copy
import datetime
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from adapters.schemas import pointer
from adapters.spec import DATE_TOKEN, DateSpec, FieldSpec, Mapping, Scalar, TableSpec
from adapters.transforms import (
    TransformError,
    condition,
    join_source,
    number_transform,
    split_transform,
)
from gateway.errors import ConfigError
from gateway.yamlconf import ErrorCollector, line_of

#: Bengali digits U+09E6 (zero) to U+09EF (nine), folded to ASCII by ``digits: ascii``.
_BENGALI_DIGITS = {0x09E6 + i: str(i) for i in range(10)}
_DATE_PARTS = {"DD": ("d", r"([0-9]{2})"), "MM": ("m", r"([0-9]{2})")}
_DATE_PARTS["YYYY"] = ("y", r"([0-9]{4})")
_DATE_OUT = {"DD": "{d:02d}", "MM": "{m:02d}", "YYYY": "{y:04d}"}


class _Absent(enum.Enum):
    ABSENT = "absent"


ABSENT = _Absent.ABSENT


class MappingError(Exception):
    """A value could not be mapped; ``pointer`` locates it, ``why`` is a fixed code."""

    def __init__(self, pointer: str | None, why: str) -> None:
        super().__init__(why)
        self.pointer = pointer
        self.why = why

    def under(self, prefix: str | None) -> MappingError:
        """The same failure, located below ``prefix``."""
        if prefix is None or self.pointer is None:
            return self
        return MappingError(prefix + self.pointer, self.why)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a request mapping may read besides the body: path and query parameters."""

    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)


Getter = Callable[[Any, Scope], Any]
Builder = Callable[[Any, Scope], dict[str, Any]]
Transform = Callable[[Any, Scope], Any]

EMPTY_SCOPE = Scope()


def fold_digits(value: Any) -> Any:
    """Bengali digits (U+09E6-U+09EF) in every string of ``value`` folded to ASCII.

    This is a deliberate transform an adapter opts into with ``digits: ascii``: it
    runs before the client's schema is checked, so ``[0-9]`` patterns then accept
    numbers a portal's users typed in Bengali script.
    """
    if isinstance(value, str):
        return value.translate(_BENGALI_DIGITS)
    if isinstance(value, dict):
        return {k: fold_digits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fold_digits(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """A YAML-loaded value as plain JSON types (ruamel returns scalar subclasses)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def parse_pointer(text: str) -> tuple[str, ...] | None:
    """RFC 6901 tokens of a JSON pointer, or None if ``text`` is not one."""
    if text == "":
        return ()
    if not text.startswith("/") or re.search(r"~[^01]|~$", text):
        return None
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in text[1:].split("/"))


def resolve(tokens: tuple[str, ...], document: Any) -> Any:
    """The value at ``tokens``: ABSENT if a key is missing, None below a null."""
    node = document
    for depth, token in enumerate(tokens):
        if node is None:
            return None
        if isinstance(node, dict):
            node = node.get(token, ABSENT)
            if node is ABSENT:
                return ABSENT
        elif isinstance(node, list):
            if not token.isascii() or not token.isdigit() or int(token) >= len(node):
                return ABSENT
            node = node[int(token)]
        else:
            raise MappingError(pointer(tokens[:depth]), "not_a_container")
    return node


def pointer_source(tokens: tuple[str, ...]) -> Getter:
    """A getter of the value at ``tokens``, with fast paths for plain objects.

    Most pointers are one or two keys into objects; those skip the general loop.
    """
    if len(tokens) == 1:
        (key,) = tokens

        def get_one(base: Any, _scope: Scope) -> Any:
            if type(base) is dict:
                return base.get(key, ABSENT)
            return resolve(tokens, base)

        return get_one
    if len(tokens) == 2:
        first, second = tokens

        def get_two(base: Any, _scope: Scope) -> Any:
            node = base.get(first) if type(base) is dict else None
            if type(node) is dict:
                return node.get(second, ABSENT)
            return resolve(tokens, base)

        return get_two
    return lambda base, _scope: resolve(tokens, base)


def _table_key(value: Any) -> tuple[str, Any] | None:
    """A look-up key that keeps JSON types apart (``true`` is not ``1``)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    return None


class MappingCompiler:
    """Compiles the mappings of one adapter file; errors name the file and line.

    A field that does not compile is left out of its object and its error goes to
    :attr:`collector`, so that every bad field of a file is found in one pass; the
    loader raises what was collected before it uses anything compiled.
    """

    def __init__(self, file: Path, document: Any, tables: dict[str, TableSpec]) -> None:
        self.file = file
        self.document = document
        self.collector = ErrorCollector()
        self._tables = tables
        self._compiled_tables: dict[str, Transform] = {}

    def line(self, loc: list[str | int]) -> int | None:
        """The line of ``loc`` in the adapter file, if known."""
        return line_of(self.document, loc)

    def error(self, loc: list[str | int], reason: str) -> ConfigError:
        """A ConfigError at the line of ``loc`` in the adapter file."""
        where = ".".join(str(p) for p in loc)
        line = line_of(self.document, loc)
        return ConfigError(str(self.file), f"{where}: {reason}", line=line)

    def object(
        self, fields: Mapping, loc: list[str | int], params: frozenset[str] | None
    ) -> Builder:
        """A builder of one output object. ``params`` None: no request scope here.

        A field that does not compile is recorded in :attr:`collector`.
        """
        items: list[tuple[str, Getter]] = []
        for name, spec in fields.items():
            with self.collector.attempt():
                items.append((name, self.field(spec, [*loc, name], params)))

        def build(base: Any, scope: Scope) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, get in items:
                value = get(base, scope)
                if value is not ABSENT:
                    out[name] = value
            return out

        return build

    def field(
        self, spec: FieldSpec, loc: list[str | int], params: frozenset[str] | None
    ) -> Getter:
        """A getter of one output field's value, or ABSENT to omit it."""
        getter = self._unconditional(spec, loc, params)
        if spec.when is None:
            return getter
        tokens = parse_pointer(spec.when.from_)
        if tokens is None:
            raise self.error([*loc, "when", "from"], "not a JSON pointer")
        holds = condition(spec.when, pointer_source(tokens), ABSENT)
        return lambda base, scope: getter(base, scope) if holds(base, scope) else ABSENT

    def _unconditional(
        self, spec: FieldSpec, loc: list[str | int], params: frozenset[str] | None
    ) -> Getter:
        source, at = self._source(spec, loc, params)
        transform = self._transform(spec, loc, params)
        default = _constant(plain(spec.default))
        has_default, required, on_null = spec.has_default, spec.required, spec.on_null
        if transform is None and not (has_default or required) and on_null == "keep":
            return source  # a plain copy: absent stays absent, null stays null

        def get(base: Any, scope: Scope) -> Any:
            value = source(base, scope)
            if value is ABSENT:
                if has_default:
                    return default(base, scope)
                if required:
                    raise MappingError(at, "required")
                return ABSENT
            if value is None:
                return _null(on_null, default(base, scope), at)
            if transform is None:
                return value
            try:
                return transform(value, scope)
            except MappingError as failure:
                raise failure.under(at) from None

        return get

    def _source(
        self, spec: FieldSpec, loc: list[str | int], params: frozenset[str] | None
    ) -> tuple[Getter, str | None]:
        if spec.has_const:
            return _constant(plain(spec.const)), None
        if spec.param is not None:
            if params is None or spec.param not in params:
                raise self.error([*loc, "param"], "no such path parameter")
            name = spec.param
            return (lambda _base, scope: scope.params.get(name, ABSENT)), None
        if spec.query is not None:
            if params is None:
                raise self.error([*loc, "query"], "no query in a response")
            return _query_source(spec.query), None
        if spec.join is not None:
            return self._join(spec, loc), None
        if spec.from_ is None:
            return (lambda base, _scope: base), None
        tokens = parse_pointer(spec.from_)
        if tokens is None:
            raise self.error([*loc, "from"], "not a JSON pointer (/a/b, or empty)")
        return pointer_source(tokens), pointer(tokens)

    def _transform(
        self, spec: FieldSpec, loc: list[str | int], params: frozenset[str] | None
    ) -> Transform | None:
        if spec.each is not None:
            return _each(self.object(spec.each, [*loc, "each"], params))
        if spec.fields is not None:
            build = self.object(spec.fields, [*loc, "fields"], params)
            return build if spec.from_ is None else _rebase(build)
        if isinstance(spec.table, str):
            return self.named_table(spec.table, [*loc, "table"])
        if spec.table is not None:
            return self.table(spec.table, [*loc, "table"])
        return _scalar_transform(spec)

    def _join(self, spec: FieldSpec, loc: list[str | int]) -> Getter:
        """The getter of a ``join`` source; raise ConfigError for a bad pointer."""
        if spec.join is None:
            raise self.error(loc, "no join")
        getters: list[Getter] = []
        for index, text in enumerate(spec.join.parts):
            tokens = parse_pointer(text)
            if tokens is None:
                raise self.error([*loc, "join", "parts", index], "not a JSON pointer")
            getters.append(pointer_source(tokens))
        return _guarded(join_source(spec.join, getters, ABSENT), at=None)

    def named_table(self, name: str, loc: list[str | int]) -> Transform:
        """The table named under ``tables``, compiled once; raise ConfigError."""
        if name not in self._tables:
            raise self.error(loc, f"no table named {name!r} under tables")
        if name not in self._compiled_tables:
            self._compiled_tables[name] = self.table(
                self._tables[name], ["tables", name]
            )
        return self._compiled_tables[name]

    def table(self, spec: TableSpec, loc: list[str | int]) -> Transform:
        """A value-table transform; raise ConfigError if a ``from`` value repeats."""
        entries: dict[tuple[str, Any], Any] = {}
        for index, (source, target) in enumerate(spec.entries):
            key = _table_key(plain(source))
            if key in entries:
                raise self.error([*loc, "entries", index], "this value is listed twice")
            entries[key] = plain(target)  # type: ignore[index]
        return _lookup(entries, spec.has_default, plain(spec.default))


def _scalar_transform(spec: FieldSpec) -> Transform | None:
    """The number, split or date transform of a field, if it has one."""
    if spec.number is not None:
        return _guarded(number_transform(spec.number))
    if spec.split is not None:
        return _guarded(split_transform(spec.split, ABSENT))
    return None if spec.date is None else date_transform(spec.date)


def _guarded(call: Transform, at: str | None = "") -> Transform:
    """``call`` with its TransformError turned into a MappingError at ``at``."""

    def guarded(value: Any, scope: Scope) -> Any:
        try:
            return call(value, scope)
        except TransformError as failure:
            raise MappingError(at, str(failure)) from None

    return guarded


def _null(on_null: str, default: Any, at: str | None) -> Any:
    if on_null == "keep":
        return None
    if on_null == "omit":
        return ABSENT
    if on_null == "default":
        return default
    raise MappingError(at, "null")


def _constant(value: Any) -> Getter:
    if isinstance(value, dict | list):
        return lambda _base, _scope: copy.deepcopy(value)
    return lambda _base, _scope: value


def _query_source(name: str) -> Getter:
    def get(_base: Any, scope: Scope) -> Any:
        values = scope.query.get(name)
        if not values:
            return ABSENT
        if len(values) > 1:
            raise MappingError(None, "repeated_query_parameter")
        return values[0]

    return get


def _each(build: Builder) -> Transform:
    def each(value: Any, scope: Scope) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise MappingError("", "not_a_list")
        out: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            try:
                out.append(build(item, scope))
            except MappingError as failure:
                raise failure.under(f"/{index}") from None
        return out

    return each


def _rebase(build: Builder) -> Transform:
    def rebase(value: Any, scope: Scope) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise MappingError("", "not_an_object")
        return build(value, scope)

    return rebase


def _lookup(
    entries: dict[tuple[str, Any], Any], has_default: bool, default: Scalar
) -> Transform:
    def lookup(value: Any, _scope: Scope) -> Any:
        key = _table_key(value)
        if key is not None and key in entries:
            return entries[key]
        if has_default:
            return default
        raise MappingError("", "not_in_table")

    return lookup


def date_transform(spec: DateSpec) -> Transform:
    """A strict date conversion: the format must match and the date must exist."""
    order: list[str] = []
    pattern = ""
    for token in DATE_TOKEN.findall(spec.parse):
        if token in _DATE_PARTS:
            order.append(_DATE_PARTS[token][0])
            pattern += _DATE_PARTS[token][1]
        else:
            pattern += re.escape(token)
    regex = re.compile(pattern, re.ASCII)
    template = "".join(_DATE_OUT.get(t, t) for t in DATE_TOKEN.findall(spec.format))

    def convert(value: Any, _scope: Scope) -> str:
        match = regex.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise MappingError("", "not_a_date")
        parts = dict(zip(order, map(int, match.groups()), strict=True))
        try:
            datetime.date(parts["y"], parts["m"], parts["d"])
        except ValueError:
            raise MappingError("", "not_a_date") from None
        return template.format(**parts)

    return convert


def encode_query(values: dict[str, Any]) -> str:
    """A query string from mapped values; each must be a string or an integer."""
    pairs: list[tuple[str, str]] = []
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise MappingError(None, "query_value_type")
        pairs.append((name, str(value)))
    return urlencode(pairs, quote_via=quote)
