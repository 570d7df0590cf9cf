"""Mapping operations, each checked in both directions through an endpoint adapter."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.compile import fold_digits, parse_pointer
from gateway.errors import PayloadError, Reason, UpstreamError
from tests.adapters.conftest import MakeEndpoint, bengali

YES_NO = {"entries": [[True, "Y"], [False, "N"]]}
ROMAN = {"entries": [[8, "VIII"], [9, "IX"]], "default": "other"}
DMY_TO_ISO = {"parse": "DD/MM/YYYY", "format": "YYYY-MM-DD"}
ISO_TO_DMY = {"parse": "YYYY-MM-DD", "format": "DD/MM/YYYY"}

CASES: list[tuple[str, dict[str, Any], Any, dict[str, Any]]] = [
    ("rename", {"b": "/a"}, {"a": 1}, {"b": 1}),
    ("nested source", {"n": "/s/name/en"}, {"s": {"name": {"en": "R"}}}, {"n": "R"}),
    ("array index", {"first": "/xs/0"}, {"xs": ["p", "q"]}, {"first": "p"}),
    ("escaped pointer", {"k": "/a~1b/c~0d"}, {"a/b": {"c~d": 5}}, {"k": 5}),
    ("whole body", {"all": ""}, {"a": 1}, {"all": {"a": 1}}),
    ("constant", {"c": {"const": 9}}, {}, {"c": 9}),
    ("constant null", {"c": {"const": None}}, {}, {"c": None}),
    ("optional absent is omitted", {"b": "/a"}, {}, {}),
    ("default when absent", {"b": {"from": "/a", "default": "x"}}, {}, {"b": "x"}),
    ("null kept by default", {"b": "/a"}, {"a": None}, {"b": None}),
    ("null omitted", {"b": {"from": "/a", "on_null": "omit"}}, {"a": None}, {}),
    (
        "null to default",
        {"b": {"from": "/a", "on_null": "default", "default": 0}},
        {"a": None},
        {"b": 0},
    ),
    ("null on the way is null", {"b": "/a/b"}, {"a": None}, {"b": None}),
    ("table", {"y": {"from": "/a", "table": YES_NO}}, {"a": True}, {"y": "Y"}),
    ("table false", {"y": {"from": "/a", "table": YES_NO}}, {"a": False}, {"y": "N"}),
    ("table default", {"r": {"from": "/c", "table": ROMAN}}, {"c": 3}, {"r": "other"}),
    ("table number", {"r": {"from": "/c", "table": ROMAN}}, {"c": 9}, {"r": "IX"}),
    (
        "table skips null",
        {"y": {"from": "/a", "table": YES_NO}},
        {"a": None},
        {"y": None},
    ),
    (
        "date",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": "05/03/2012"},
        {"d": "2012-03-05"},
    ),
    (
        "date back",
        {"d": {"from": "/d", "date": ISO_TO_DMY}},
        {"d": "2012-03-05"},
        {"d": "05/03/2012"},
    ),
    (
        "leap day",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": "29/02/2012"},
        {"d": "2012-02-29"},
    ),
    (
        "nested fields",
        {"o": {"fields": {"x": "/a", "y": {"const": 1}}}},
        {"a": 2},
        {"o": {"x": 2, "y": 1}},
    ),
    (
        "rebased fields",
        {"o": {"from": "/p", "fields": {"x": "/q"}}},
        {"p": {"q": 3}},
        {"o": {"x": 3}},
    ),
    (
        "each",
        {
            "out": {
                "from": "/in",
                "each": {"v": "/w", "y": {"from": "/b", "table": YES_NO}},
            }
        },
        {"in": [{"w": 1, "b": True}, {"w": 2, "b": False}]},
        {"out": [{"v": 1, "y": "Y"}, {"v": 2, "y": "N"}]},
    ),
    (
        "each empty",
        {"out": {"from": "/in", "each": {"v": "/w"}}},
        {"in": []},
        {"out": []},
    ),
]


@pytest.mark.parametrize(
    ("body", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_request_body_mapping(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, expected: Any
) -> None:
    endpoint = make_endpoint({"body": body})
    assert endpoint.map_request("POST", "/thing", "", given).body == expected


@pytest.mark.parametrize(
    ("body", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_response_body_mapping(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, expected: Any
) -> None:
    endpoint = make_endpoint(response={"body": body})
    assert endpoint.map_response(200, given) == expected


def test_named_table_is_shared(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint(
        {
            "body": {
                "a": {"from": "/a", "table": "yn"},
                "b": {"from": "/b", "table": "yn"},
            }
        },
        tables={"yn": YES_NO},
    )
    mapped = endpoint.map_request("POST", "/thing", "", {"a": True, "b": False})
    assert mapped.body == {"a": "Y", "b": "N"}


def test_table_keeps_json_types_apart(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"body": {"y": {"from": "/a", "table": YES_NO}}})
    with pytest.raises(PayloadError) as caught:
        endpoint.map_request("POST", "/thing", "", {"a": 1})
    assert caught.value.reason is Reason.MAPPING_FAILED


def test_constant_containers_are_not_shared(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"body": {"c": {"const": {"k": [1]}}}})
    first: Any = endpoint.map_request("POST", "/thing", "", {}).body
    first["c"]["k"].append(2)
    assert endpoint.map_request("POST", "/thing", "", {}).body == {"c": {"k": [1]}}


FAILURES: list[tuple[str, dict[str, Any], Any, str]] = [
    ("required absent", {"b": {"from": "/a/b", "required": True}}, {"a": {}}, "/a/b"),
    ("null refused", {"b": {"from": "/a", "on_null": "fail"}}, {"a": None}, "/a"),
    ("not in table", {"y": {"from": "/a", "table": YES_NO}}, {"a": "maybe"}, "/a"),
    (
        "impossible date",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": "31/02/2012"},
        "/d",
    ),
    (
        "not a leap year",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": "29/02/2013"},
        "/d",
    ),
    (
        "wrong date format",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": "2012-03-05"},
        "/d",
    ),
    (
        "date not a string",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": 20120305},
        "/d",
    ),
    (
        "bengali digits in a date",
        {"d": {"from": "/d", "date": DMY_TO_ISO}},
        {"d": bengali("05/03/2012")},
        "/d",
    ),
    ("pointer through a string", {"b": "/a/b"}, {"a": "text"}, "/a"),
    (
        "each over an object",
        {"o": {"from": "/in", "each": {"v": "/w"}}},
        {"in": {}},
        "/in",
    ),
    (
        "failure inside each",
        {"o": {"from": "/in", "each": {"d": {"from": "/d", "date": DMY_TO_ISO}}}},
        {"in": [{"d": "01/01/2012"}, {"d": "32/01/2012"}]},
        "/in/1/d",
    ),
    (
        "required inside rebased fields",
        {"o": {"from": "/p", "fields": {"x": {"from": "/q", "required": True}}}},
        {"p": {}},
        "/p/q",
    ),
]


@pytest.mark.parametrize(
    ("body", "given", "where"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_request_mapping_failure_names_the_pointer(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, where: str
) -> None:
    endpoint = make_endpoint({"body": body})
    with pytest.raises(PayloadError) as caught:
        endpoint.map_request("POST", "/thing", "", given)
    assert caught.value.reason is Reason.MAPPING_FAILED
    assert caught.value.pointer == where


@pytest.mark.parametrize(
    ("body", "given", "where"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_response_mapping_failure_is_the_providers(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, where: str
) -> None:
    endpoint = make_endpoint(response={"body": body})
    with pytest.raises(UpstreamError) as caught:
        endpoint.map_response(200, given)
    assert caught.value.reason is Reason.UPSTREAM_RESPONSE_INVALID
    assert where in caught.value.log_reason


@pytest.mark.parametrize("amount", [1e26, 10**40, 1e300])
def test_a_provider_amount_past_the_precision_is_the_providers_fault(
    make_endpoint: MakeEndpoint, amount: float
) -> None:
    """Not an internal error: the amount cannot be written to two decimals."""
    number = {"parse": "number", "format": "number", "decimals": 2}
    endpoint = make_endpoint(response={"body": {"t": {"from": "/t", "number": number}}})
    with pytest.raises(UpstreamError) as caught:
        endpoint.map_response(200, {"t": amount})
    assert caught.value.reason is Reason.UPSTREAM_RESPONSE_INVALID


def test_mapping_error_message_carries_no_value(make_endpoint: MakeEndpoint) -> None:
    endpoint = make_endpoint({"body": {"d": {"from": "/d", "date": DMY_TO_ISO}}})
    with pytest.raises(PayloadError) as caught:
        endpoint.map_request("POST", "/thing", "", {"d": "31/02/2012"})
    assert (
        "2012" not in f"{caught.value} {caught.value.log_reason} {caught.value.message}"
    )
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", ()), ("/a", ("a",)), ("/a/0", ("a", "0")), ("/~01", ("~1",)), ("/", ("",))],
)
def test_parse_pointer(text: str, tokens: tuple[str, ...]) -> None:
    assert parse_pointer(text) == tokens


@pytest.mark.parametrize("text", ["a", "/a~", "/a~2"])
def test_parse_pointer_refuses(text: str) -> None:
    assert parse_pointer(text) is None


def test_fold_digits_reaches_every_string() -> None:
    given = {
        "a": bengali("0123456789"),
        "b": [bengali("7"), 7, None],
        "c": {"d": bengali("WB2019")},
    }
    assert fold_digits(given) == {
        "a": "0123456789",
        "b": ["7", 7, None],
        "c": {"d": "WB2019"},
    }
