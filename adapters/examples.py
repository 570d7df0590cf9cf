"""Run the worked examples that each adapter carries (``mediator adapters test``).

An example gives a client request and either the canonical request it must map to or
the error it must raise, and optionally a canonical response with the client response
it must map to. A result names the first difference by JSON pointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.compile import plain
from adapters.endpoint import EndpointAdapter, MappedRequest
from adapters.engine import Adapter, AdapterSet
from adapters.schemas import pointer
from adapters.spec import ExampleSpec, ExpectedError
from gateway.errors import PayloadError, UpstreamError


@dataclass(frozen=True, slots=True)
class ExampleResult:
    """The outcome of one example; ``detail`` says what differed when it failed."""

    adapter: str
    example: str
    passed: bool
    detail: str = ""


def run_examples(adapters: AdapterSet) -> list[ExampleResult]:
    """Run every example of every adapter, in adapter then file order."""
    return [
        _run(adapter, example) for adapter in adapters for example in adapter.examples
    ]


def _run(adapter: Adapter, example: ExampleSpec) -> ExampleResult:
    request = example.request
    endpoint = adapter.find(request.method, request.path)
    if endpoint is None:
        return _result(adapter, example, "no endpoint matches the request")
    detail = _check_request(endpoint, example)
    if detail is None and example.canonical_response is not None:
        detail = _check_response(endpoint, example)
    return _result(adapter, example, detail)


def _result(
    adapter: Adapter, example: ExampleSpec, detail: str | None
) -> ExampleResult:
    return ExampleResult(adapter.name, example.name, detail is None, detail or "")


def _check_request(endpoint: EndpointAdapter, example: ExampleSpec) -> str | None:
    request = example.request
    try:
        mapped = endpoint.map_request(
            request.method, request.path, request.query, plain(request.body)
        )
    except PayloadError as exc:
        return _error_difference(example.request_error, exc)
    if example.request_error is not None:
        return f"expected {example.request_error.reason}, but the request mapped"
    expected = example.canonical_request
    if expected is None:
        return None
    want = MappedRequest(expected.method, expected.path, expected.query, expected.body)
    return _request_difference(want, mapped)


def _error_difference(expected: ExpectedError | None, exc: PayloadError) -> str | None:
    if expected is None:
        return (
            f"request failed: {exc.reason.value} at {exc.pointer!r} ({exc.log_reason})"
        )
    if expected.reason != exc.reason.value:
        return f"expected {expected.reason}, got {exc.reason.value}"
    if expected.pointer is not None and expected.pointer != exc.pointer:
        return f"expected the error at {expected.pointer!r}, got {exc.pointer!r}"
    return None


def _request_difference(want: MappedRequest, got: MappedRequest) -> str | None:
    for name in ("method", "path", "query"):
        wanted, mapped = getattr(want, name), getattr(got, name)
        if wanted != mapped:
            return f"canonical {name}: expected {wanted!r}, got {mapped!r}"
    where = difference(plain(want.body), got.body)
    return None if where is None else f"canonical body differs at {where!r}"


def _check_response(endpoint: EndpointAdapter, example: ExampleSpec) -> str | None:
    canonical = example.canonical_response
    if canonical is None:
        return None
    try:
        got = endpoint.map_response(canonical.status, plain(canonical.body))
    except UpstreamError as exc:
        return f"response failed: {exc.log_reason}"
    where = difference(plain(example.response), got)
    return None if where is None else f"client response differs at {where!r}"


def difference(
    expected: Any, actual: Any, at: tuple[str | int, ...] = ()
) -> str | None:
    """The pointer of the first place where two JSON values differ, else None.

    Types are compared strictly: ``1``, ``1.0`` and ``true`` are different.
    """
    if _kind(expected) != _kind(actual):
        return pointer(at)
    if isinstance(expected, dict):
        return _object_difference(expected, actual, at)
    if isinstance(expected, list):
        return _array_difference(expected, actual, at)
    return None if expected == actual else pointer(at)


def _object_difference(
    expected: dict[str, Any], actual: dict[str, Any], at: tuple[str | int, ...]
) -> str | None:
    for key in sorted(expected.keys() | actual.keys()):
        if key not in expected or key not in actual:
            return pointer((*at, key))
        where = difference(expected[key], actual[key], (*at, key))
        if where is not None:
            return where
    return None


def _array_difference(
    expected: list[Any], actual: list[Any], at: tuple[str | int, ...]
) -> str | None:
    if len(expected) != len(actual):
        return pointer(at)
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        where = difference(want, got, (*at, index))
        if where is not None:
            return where
    return None


def _kind(value: Any) -> type:
    return bool if isinstance(value, bool) else type(value)
