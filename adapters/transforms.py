"""Number formats, name joining and splitting, and conditions of a field mapping.

Each builder here turns one validated spec into a closure once, at load; the closures
only compare, split and format strings, so nothing in config can run code. They raise
:class:`~adapters.compile.MappingError` with a fixed code and an empty pointer, which
the field's getter places under the source's pointer.

Numbers go through :class:`decimal.Decimal`, so ``12,34,567.50`` is exactly
1234567.5 and grouping never rounds. Indian grouping puts the last three integer
digits together and every two digits before them: ``1,23,45,678``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from adapters.spec import JoinSpec, NumberSpec, SplitSpec, WhenSpec

Transform = Callable[[Any, Any], Any]
Getter = Callable[[Any, Any], Any]

RUPEE = "\u20b9"
_INDIAN = re.compile(r"-?(?:[0-9]{1,2}(?:,[0-9]{2})*,[0-9]{3}|[0-9]{1,3})(?:\.[0-9]+)?")
_PLAIN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_RUPEE_PREFIX = re.compile(r"(?:\u20b9|Rs\.?|INR)\s*")


class TransformError(ValueError):
    """A value that a transform cannot take; the message is a fixed code."""


def number_transform(spec: NumberSpec) -> Transform:
    """Parse a number in ``spec.parse`` form and write it in ``spec.format`` form."""
    parse = _PARSERS[spec.parse]
    quantum = None if spec.decimals is None else Decimal(1).scaleb(-spec.decimals)

    def convert(value: Any, _scope: Any) -> Any:
        amount = parse(value)
        if quantum is not None:
            try:
                amount = amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
            except InvalidOperation:
                # More digits than the decimal context holds (28): refused, never
                # rounded into another amount.
                raise TransformError("number_out_of_range") from None
        return _FORMATTERS[spec.format](amount)

    return convert


def _parse_number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TransformError("not_a_number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise TransformError("not_a_number") from None
    if not amount.is_finite():
        raise TransformError("not_a_number")
    return amount


def _parse_text(pattern: re.Pattern[str], rupees: bool) -> Callable[[Any], Decimal]:
    def parse(value: Any) -> Decimal:
        if not isinstance(value, str):
            raise TransformError("not_a_number")
        text = value.strip()
        prefix = _RUPEE_PREFIX.match(text) if rupees else None
        if prefix is not None:
            text = text[prefix.end() :]
        if not pattern.fullmatch(text):
            raise TransformError("not_a_number")
        return Decimal(text.replace(",", ""))

    return parse


def group_indian(amount: Decimal) -> str:
    """``amount`` as text with Indian digit grouping, its decimals as they are."""
    sign = "-" if amount < 0 else ""
    whole, _, fraction = f"{abs(amount):f}".partition(".")
    head, tail = whole[:-3], whole[-3:]
    pairs: list[str] = []
    while head:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    grouped = ",".join([*pairs, tail])
    return sign + grouped + (f".{fraction}" if fraction else "")


def _as_json_number(amount: Decimal) -> int | float:
    if amount == amount.to_integral_value():
        return int(amount)
    number = float(amount)
    if not math.isfinite(number):
        # A JSON writer would turn infinity into null: refused instead.
        raise TransformError("number_out_of_range")
    return number


_PARSERS: dict[str, Callable[[Any], Decimal]] = {
    "number": _parse_number,
    "plain": _parse_text(_PLAIN, rupees=False),
    "indian": _parse_text(_INDIAN, rupees=False),
    "rupees": _parse_text(_INDIAN, rupees=True),
}
_FORMATTERS: dict[str, Callable[[Decimal], Any]] = {
    "number": _as_json_number,
    "plain": lambda amount: f"{amount:f}",
    "indian": group_indian,
    "rupees": lambda amount: RUPEE + group_indian(amount),
}


def split_transform(spec: SplitSpec, absent: Any) -> Transform:
    """Split a string at runs of ``separator`` and take the part ``spec.take`` names.

    ``first`` and ``last`` are single words; ``rest`` is all but the first and
    ``initial`` all but the last, joined again; ``all`` is the list of words. A part
    that does not exist (the last word of a one-word name) is absent.
    """
    separator = spec.separator

    def split(value: Any, _scope: Any) -> Any:
        if not isinstance(value, str):
            raise TransformError("not_a_string")
        words = [w for w in value.split(separator) if w.strip()]
        words = [w.strip() for w in words]
        return _take(spec.take, words, separator, absent)

    return split


def _take(take: str, words: list[str], separator: str, absent: Any) -> Any:
    if take == "all":
        return words
    if not words:
        return absent
    if take == "first":
        return words[0]
    if len(words) < 2:
        return absent
    if take == "last":
        return words[-1]
    return separator.join(words[1:] if take == "rest" else words[:-1])


def join_source(spec: JoinSpec, getters: list[Getter], absent: Any) -> Getter:
    """A getter joining the present, non-empty string parts; absent if none is."""
    separator = spec.separator

    def join(base: Any, scope: Any) -> Any:
        parts: list[str] = []
        for get in getters:
            value = get(base, scope)
            if value is absent or value is None or value == "":
                continue
            if not isinstance(value, str | int) or isinstance(value, bool):
                raise TransformError("not_a_string")
            parts.append(str(value).strip())
        return separator.join(parts) if parts else absent

    return join


def condition(spec: WhenSpec, source: Getter, absent: Any) -> Callable[..., bool]:
    """A test of the value at ``spec.from_``: equals, is in a set, or is present."""
    if spec.equals_given:
        expected = spec.equals
        return lambda base, scope: _same(source(base, scope), expected)
    if spec.in_ is not None:
        choices = list(spec.in_)
        return lambda base, scope: any(_same(source(base, scope), c) for c in choices)
    want = bool(spec.present)

    def present(base: Any, scope: Any) -> bool:
        value = source(base, scope)
        return (value is not absent and value is not None) == want

    return present


def _same(value: Any, expected: Any) -> bool:
    """JSON equality that keeps ``true`` apart from ``1``."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return type(value) is type(expected) and value == expected
    if isinstance(value, int | float) and isinstance(expected, int | float):
        return value == expected
    return type(value) is type(expected) and value == expected
