"""Release: keep only the fields a purpose may receive (step 10).

A purpose lists its fields as dotted paths over the canonical response: ``name.en``,
``count``, ``students[].student_id``. ``[]`` after a name maps the rest of the path
over each item of an array; a path that ends at an object keeps the whole object.
:func:`compile_release` turns the list into a tree once; :meth:`Release.apply`
walks a document along that tree and builds a new one, so nothing the purpose does
not name can reach the client.

The walk never raises on an odd shape. A value whose type does not fit the tree (a
string where an object or an array was expected, an array item that is not an
object) is dropped; ``null`` carries nothing and is kept as ``null``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_STEP = re.compile(r"([A-Za-z0-9_-]{1,64})(\[\])?", re.ASCII)


@dataclass(frozen=True, slots=True)
class _Field:
    #: The value is an array whose items are walked with ``then``.
    array: bool
    #: The tree below this field, or None to keep the value whole.
    then: _Tree | None


_Tree = dict[str, _Field]


class Release:
    """A compiled list of released fields; apply it to response documents."""

    def __init__(self, fields: tuple[str, ...], tree: _Tree) -> None:
        self.fields = fields
        self._tree = tree

    def apply(self, document: Any) -> Any:
        """The released copy of ``document``: a new object, or None for a scalar.

        A top-level array is released item by item. Never raises.
        """
        if isinstance(document, dict):
            return _object(self._tree, document)
        if isinstance(document, list):
            return _items(self._tree, document)
        return None

    def __repr__(self) -> str:
        return f"Release({list(self.fields)!r})"


def compile_release(fields: Iterable[str]) -> Release:
    """Compile dotted field paths into a release; raise ValueError if one is malformed.

    A path that is also the prefix of another keeps its whole object; a name used
    both with and without ``[]`` is an error.
    """
    listed = tuple(fields)
    tree: _Tree = {}
    for path in listed:
        _add(tree, path, _steps(path))
    return Release(listed, tree)


def _steps(path: str) -> list[tuple[str, bool]]:
    steps: list[tuple[str, bool]] = []
    for part in path.split("."):
        found = _STEP.fullmatch(part)
        if found is None:
            raise ValueError(f"field {path!r}: {part!r} is not a name or name[]")
        steps.append((found.group(1), found.group(2) is not None))
    return steps


def _add(tree: _Tree, path: str, steps: list[tuple[str, bool]]) -> None:
    node = tree
    for position, (name, array) in enumerate(steps):
        last = position == len(steps) - 1
        existing = node.get(name)
        if existing is not None and existing.array != array:
            raise ValueError(f"field {path!r}: {name!r} is both an array and not")
        if existing is not None and existing.then is None:
            return
        if last:
            node[name] = _Field(array, None)
            return
        if existing is None:
            existing = _Field(array, {})
            node[name] = existing
        if existing.then is None:
            return
        node = existing.then


def _object(tree: _Tree, document: dict[str, Any]) -> dict[str, Any]:
    released: dict[str, Any] = {}
    for name, field in tree.items():
        if name not in document:
            continue
        value = _value(field, document[name])
        if value is not _DROP:
            released[name] = value
    return released


def _value(field: _Field, value: Any) -> Any:
    if value is None:
        return None
    if field.array:
        if not isinstance(value, list):
            return _DROP
        return value if field.then is None else _items(field.then, value)
    if field.then is None:
        return value
    if not isinstance(value, dict):
        return _DROP
    return _object(field.then, value)


def _items(tree: _Tree, items: list[Any]) -> list[Any]:
    return [_object(tree, item) for item in items if isinstance(item, dict)]


_DROP: Any = object()
