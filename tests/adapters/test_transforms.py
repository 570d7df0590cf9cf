"""Number formats, joining and splitting names, and conditional fields."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from adapters import AdapterSet
from adapters.transforms import group_indian
from gateway.errors import ConfigError, PayloadError, Reason
from tests.adapters.conftest import MakeEndpoint, write_adapter

INDIAN_TO_NUMBER = {"parse": "indian", "format": "number"}
NUMBER_TO_RUPEES = {"parse": "number", "format": "rupees", "decimals": 2}

CASES: list[tuple[str, dict[str, Any], Any, dict[str, Any]]] = [
    (
        "indian grouping read",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": "12,34,567.50"},
        {"n": 1234567.5},
    ),
    (
        "indian grouping whole",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": "1,00,000"},
        {"n": 100000},
    ),
    (
        "small number has no comma",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": "950"},
        {"n": 950},
    ),
    (
        "rupees written",
        {"n": {"from": "/a", "number": NUMBER_TO_RUPEES}},
        {"a": 1234567.5},
        {"n": "\u20b912,34,567.50"},
    ),
    (
        "rupees read with Rs.",
        {"n": {"from": "/a", "number": {"parse": "rupees", "format": "plain"}}},
        {"a": "Rs. 25,000.00"},
        {"n": "25000.00"},
    ),
    (
        "plain to indian",
        {"n": {"from": "/a", "number": {"parse": "plain", "format": "indian"}}},
        {"a": "123456789"},
        {"n": "12,34,56,789"},
    ),
    (
        "decimals round half to even",
        {
            "n": {
                "from": "/a",
                "number": {"parse": "number", "format": "plain", "decimals": 1},
            }
        },
        {"a": 2.25},
        {"n": "2.2"},
    ),
    (
        "split first",
        {"g": {"from": "/n", "split": {"take": "first"}}},
        {"n": "Riya  Kumari Das"},
        {"g": "Riya"},
    ),
    (
        "split last",
        {"s": {"from": "/n", "split": {"take": "last"}}},
        {"n": "Riya Kumari Das"},
        {"s": "Das"},
    ),
    (
        "split initial",
        {"g": {"from": "/n", "split": {"take": "initial"}}},
        {"n": "Riya Kumari Das"},
        {"g": "Riya Kumari"},
    ),
    (
        "split rest",
        {"g": {"from": "/n", "split": {"take": "rest"}}},
        {"n": "Riya Kumari Das"},
        {"g": "Kumari Das"},
    ),
    (
        "one-word name has no last name",
        {"s": {"from": "/n", "split": {"take": "last"}}},
        {"n": "Riya"},
        {},
    ),
    (
        "split all",
        {"w": {"from": "/n", "split": {"take": "all", "separator": ","}}},
        {"n": "a, b,,c"},
        {"w": ["a", "b", "c"]},
    ),
    (
        "join names",
        {"n": {"join": {"parts": ["/f", "/m", "/l"]}}},
        {"f": "Riya", "m": None, "l": "Das"},
        {"n": "Riya Das"},
    ),
    (
        "join nothing is absent",
        {"n": {"join": {"parts": ["/f", "/l"]}}},
        {},
        {},
    ),
    (
        "when equals holds",
        {"x": {"from": "/a", "when": {"from": "/k", "equals": "govt"}}},
        {"a": 1, "k": "govt"},
        {"x": 1},
    ),
    (
        "when equals fails",
        {"x": {"from": "/a", "when": {"from": "/k", "equals": "govt"}}},
        {"a": 1, "k": "private"},
        {},
    ),
    (
        "when in",
        {"x": {"const": "Y", "when": {"from": "/c", "in": [9, 10]}}},
        {"c": 10},
        {"x": "Y"},
    ),
    (
        "when in keeps true apart from 1",
        {"x": {"const": "Y", "when": {"from": "/c", "in": [1]}}},
        {"c": True},
        {},
    ),
    (
        "when present",
        {"x": {"const": "has", "when": {"from": "/c", "present": True}}},
        {"c": 0},
        {"x": "has"},
    ),
    (
        "when not present",
        {"x": {"const": "none", "when": {"from": "/c", "present": False}}},
        {"c": None},
        {"x": "none"},
    ),
]


@pytest.mark.parametrize(
    ("body", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_request_mapping(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, expected: Any
) -> None:
    endpoint = make_endpoint({"body": body})
    assert endpoint.map_request("POST", "/thing", "", given).body == expected


@pytest.mark.parametrize(
    ("body", "given", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_response_mapping(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, expected: Any
) -> None:
    endpoint = make_endpoint(response={"body": body})
    assert endpoint.map_response(200, given) == expected


FAILURES: list[tuple[str, dict[str, Any], Any, str | None]] = [
    (
        "bad grouping",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": "1,234,567"},
        "/a",
    ),
    (
        "letters in a number",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": "12,34,5x7"},
        "/a",
    ),
    (
        "a number where text is read",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER}},
        {"a": 5},
        "/a",
    ),
    (
        "a boolean is not a number",
        {"n": {"from": "/a", "number": NUMBER_TO_RUPEES}},
        {"a": True},
        "/a",
    ),
    (
        "split a number",
        {"n": {"from": "/a", "split": {"take": "first"}}},
        {"a": 5},
        "/a",
    ),
    ("join an object", {"n": {"join": {"parts": ["/a"]}}}, {"a": {}}, None),
    (
        "an amount past the decimal precision, to two decimals",
        {"n": {"from": "/a", "number": {**NUMBER_TO_RUPEES, "decimals": 2}}},
        {"a": 1e26},
        "/a",
    ),
    (
        "an integer past the decimal precision, to two decimals",
        {"n": {"from": "/a", "number": {**NUMBER_TO_RUPEES, "decimals": 2}}},
        {"a": 10**40},
        "/a",
    ),
    (
        "a fraction too large for a JSON number",
        {"n": {"from": "/a", "number": {"parse": "plain", "format": "number"}}},
        {"a": "1" * 400 + ".5"},
        "/a",
    ),
]


@pytest.mark.parametrize(
    ("body", "given", "where"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_mapping_failures(
    make_endpoint: MakeEndpoint, body: dict[str, Any], given: Any, where: str | None
) -> None:
    endpoint = make_endpoint({"body": body})
    with pytest.raises(PayloadError) as caught:
        endpoint.map_request("POST", "/thing", "", given)
    assert caught.value.reason is Reason.MAPPING_FAILED
    assert caught.value.pointer == where


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0", "0"),
        ("999", "999"),
        ("1000", "1,000"),
        ("99999", "99,999"),
        ("100000", "1,00,000"),
        ("-1234567.5", "-12,34,567.5"),
    ],
)
def test_indian_grouping(amount: str, text: str) -> None:
    assert group_indian(Decimal(amount)) == text


BAD_SPECS: list[tuple[str, dict[str, Any], str]] = [
    (
        "two transforms",
        {"n": {"from": "/a", "number": INDIAN_TO_NUMBER, "split": {"take": "first"}}},
        "one of table",
    ),
    (
        "unknown number form",
        {"n": {"from": "/a", "number": {"parse": "roman", "format": "number"}}},
        "number.parse",
    ),
    ("join and from", {"n": {"from": "/a", "join": {"parts": ["/b"]}}}, "only one"),
    ("join bad pointer", {"n": {"join": {"parts": ["b"]}}}, "join.parts.0"),
    (
        "when two tests",
        {"n": {"from": "/a", "when": {"from": "/k", "equals": 1, "present": True}}},
        "exactly one",
    ),
    (
        "when bad pointer",
        {"n": {"from": "/a", "when": {"from": "k", "present": True}}},
        "when.from",
    ),
]


@pytest.mark.parametrize(
    ("body", "message"), [c[1:] for c in BAD_SPECS], ids=[c[0] for c in BAD_SPECS]
)
def test_bad_specs_stop_the_load(
    tmp_path: Path, body: dict[str, Any], message: str
) -> None:
    endpoint = {
        "name": "e",
        "match": {"method": "POST", "path": "/x"},
        "request": {"body": body},
    }
    write_adapter(tmp_path, [endpoint])
    with pytest.raises(ConfigError) as caught:
        AdapterSet.load(tmp_path)
    assert message in str(caught.value)
    assert caught.value.line is not None


def test_adapter_files_do_not_expand_environment(
    tmp_path: Path, make_endpoint: MakeEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_FOR_TEST", "hunter2")
    endpoint = make_endpoint({"body": {"c": {"const": "${SECRET_FOR_TEST}"}}})
    mapped = endpoint.map_request("POST", "/thing", "", {})
    assert mapped.body == {"c": "${SECRET_FOR_TEST}"}
