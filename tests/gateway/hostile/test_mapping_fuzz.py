"""Fuzzing the mapping engine: every endpoint adapter of the deployment, given
arbitrary JSON (and its own examples with values swapped for arbitrary ones),
raises nothing but PayloadError on requests and UpstreamError on responses."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import AdapterSet, EndpointAdapter
from gateway.demo.setup import REPO_CONFIG
from gateway.errors import PayloadError, UpstreamError

ADAPTERS = AdapterSet.load(REPO_CONFIG / "adapters")
ENDPOINTS = [endpoint for adapter in ADAPTERS for endpoint in adapter.endpoints]
EXAMPLES = [(adapter, example) for adapter in ADAPTERS for example in adapter.examples]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
SEGMENT = st.text(
    st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=20,
)
FUZZ = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _path(endpoint: EndpointAdapter, data: st.DataObject) -> str:
    parts = [
        data.draw(SEGMENT) if is_name else name
        for name, is_name in endpoint.pattern.parts
    ]
    if endpoint.pattern.rest:
        parts += data.draw(st.lists(SEGMENT, max_size=3))
    return "/" + "/".join(parts)


def _swap(document: Any, data: st.DataObject) -> Any:
    """``document`` with one value (at any depth) replaced by arbitrary JSON."""
    if isinstance(document, dict) and document:
        key = data.draw(st.sampled_from(sorted(document)))
        return {**document, key: _swap(document[key], data)}
    if isinstance(document, list) and document:
        index = data.draw(st.integers(0, len(document) - 1))
        return [*document[:index], _swap(document[index], data), *document[index + 1 :]]
    return data.draw(JSON)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@FUZZ
@given(data=st.data())
def test_any_request_maps_or_raises_payload_error(
    endpoint: EndpointAdapter, data: st.DataObject
) -> None:
    path = _path(endpoint, data)
    query = data.draw(st.text(max_size=30))
    body = data.draw(JSON)
    with contextlib.suppress(PayloadError):
        endpoint.map_request(endpoint.method, path, query, body)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
@FUZZ
@given(data=st.data())
def test_any_response_maps_or_raises_upstream_error(
    endpoint: EndpointAdapter, data: st.DataObject
) -> None:
    status = data.draw(st.sampled_from([200, 201, 204, 400, 404, 500]))
    with contextlib.suppress(UpstreamError):
        endpoint.map_response(status, data.draw(JSON))


@pytest.mark.parametrize(
    ("adapter", "example"), EXAMPLES, ids=lambda item: getattr(item, "name", "")
)
@FUZZ
@given(data=st.data())
def test_examples_with_a_value_swapped_map_or_raise_typed_errors(
    adapter: Any, example: Any, data: st.DataObject
) -> None:
    request = example.request
    endpoint = adapter.find(request.method, request.path)
    if endpoint is None:
        return
    with contextlib.suppress(PayloadError):
        endpoint.map_request(
            request.method, request.path, request.query, _swap(request.body, data)
        )
    if example.canonical_response is None:
        return
    response = example.canonical_response
    with contextlib.suppress(UpstreamError):
        endpoint.map_response(response.status, _swap(response.body, data))
