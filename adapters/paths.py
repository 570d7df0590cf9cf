"""Endpoint path patterns and canonical path templates.

A pattern matches the endpoint path after the service code, as the node has already
decoded and normalised it: literal segments, ``{name}`` for exactly one non-empty
segment and a final ``**`` for the rest (zero or more segments). A template builds
the canonical path from named values; every value placed in a path must be made of
RFC 3986 unreserved characters and may not be a dot-segment, so that no mapped
value can add a segment, a query or a traversal to the provider's URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}", re.ASCII)
_LITERAL = re.compile(r"[A-Za-z0-9._~-]+", re.ASCII)
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+", re.ASCII)
_REST = "**"


class PathSyntaxError(ValueError):
    """A pattern or template does not parse; the message says why."""


def _segments(text: str) -> list[str]:
    if not text.startswith("/"):
        raise PathSyntaxError("a path starts with /")
    if text == "/":
        return []
    parts = text[1:].split("/")
    if "" in parts:
        raise PathSyntaxError("a path has no empty segment")
    return parts


def _placeholder(segment: str) -> str | None:
    if not (segment.startswith("{") and segment.endswith("}")):
        return None
    name = segment[1:-1]
    if not _NAME.fullmatch(name):
        raise PathSyntaxError(f"{segment} is not a valid {{name}}")
    return name


def _check_literal(segment: str) -> None:
    if segment in {".", ".."} or not _LITERAL.fullmatch(segment):
        raise PathSyntaxError(f"segment {segment!r} is not a literal, {{name}} or **")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A parsed endpoint path pattern; :meth:`match` returns the named segments."""

    text: str
    parts: tuple[tuple[str, bool], ...]
    rest: bool

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """Parse a pattern; raise PathSyntaxError if it does not parse."""
        segments = _segments(text)
        rest = bool(segments) and segments[-1] == _REST
        if rest:
            segments = segments[:-1]
        parts: list[tuple[str, bool]] = []
        for segment in segments:
            name = _placeholder(segment)
            if name is None:
                _check_literal(segment)
                parts.append((segment, False))
            elif any(is_name and n == name for n, is_name in parts):
                raise PathSyntaxError(f"{{{name}}} appears twice")
            else:
                parts.append((name, True))
        return cls(text, tuple(parts), rest)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(n for n, is_name in self.parts if is_name)

    def match(self, path: str) -> dict[str, str] | None:
        """The named segments if ``path`` matches, else None."""
        segments = path[1:].split("/") if path not in {"", "/"} else []
        if len(segments) < len(self.parts):
            return None
        if len(segments) > len(self.parts) and not self.rest:
            return None
        values: dict[str, str] = {}
        for (text, is_name), segment in zip(self.parts, segments, strict=False):
            if is_name and segment:
                values[text] = segment
            elif is_name or segment != text:
                return None
        return values


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A canonical path with ``{name}`` placeholders."""

    parts: tuple[tuple[str, bool], ...]

    @classmethod
    def parse(cls, text: str) -> PathTemplate:
        """Parse a template; raise PathSyntaxError if it does not parse."""
        parts: list[tuple[str, bool]] = []
        for segment in _segments(text):
            name = _placeholder(segment)
            if name is None:
                _check_literal(segment)
                parts.append((segment, False))
            else:
                parts.append((name, True))
        return cls(tuple(parts))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(n for n, is_name in self.parts if is_name)

    def render(self, values: dict[str, str]) -> str | None:
        """The path with values filled in, or None if a value is not a safe segment."""
        out: list[str] = []
        for text, is_name in self.parts:
            if not is_name:
                out.append(text)
                continue
            value = values[text]
            if value in {".", ".."} or not _UNRESERVED.fullmatch(value):
                return None
            out.append(value)
        return "/" + "/".join(out)
