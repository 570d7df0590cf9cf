"""The shape of ``adapter.yaml``: each model's own rules, before compilation."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from adapters.spec import (
    UNION_TAGS,
    AdapterSpec,
    DateSpec,
    ExampleSpec,
    FieldSpec,
    NumberSpec,
    RequestSpec,
    ResponseSpec,
    SplitSpec,
    TableSpec,
    WhenSpec,
)

ENDPOINT = {"name": "verify", "match": {"method": "POST", "path": "/verify"}}
REQUEST = {"method": "POST", "path": "/verify"}


def adapter(**changes: Any) -> dict[str, Any]:
    """A minimal valid adapter document, with ``changes`` over it."""
    return {
        "name": "kanyashree",
        "client": "WB/GOV/WCD/kanyashree",
        "service": "WB/GOV/SED/banglarshiksha/students",
        "endpoints": [ENDPOINT],
        **changes,
    }


def error_locations(
    caught: pytest.ExceptionInfo[ValidationError],
) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in caught.value.errors()]


# -- fields ----------------------------------------------------------------------------


def test_a_bare_string_is_a_source_pointer() -> None:
    """``name: /a/b`` is short for ``name: {from: /a/b}``."""
    spec = RequestSpec.model_validate({"body": {"uid": "/applicant/registry_uid"}})

    assert isinstance(spec.body, dict)
    assert spec.body["uid"].from_ == "/applicant/registry_uid"


@pytest.mark.parametrize(
    "field",
    [
        {"from": "/a"},
        {"param": "student_id"},
        {"query": "year"},
        {"const": 3},
        {"join": {"parts": ["/first", "/last"]}},
        {"fields": {"x": "/a"}},
        {"from": "/list", "each": {"x": "/a"}},
        {"from": "/a", "fields": {"x": "/b"}},
    ],
    ids=repr,
)
def test_a_field_with_one_source_is_accepted(field: dict[str, Any]) -> None:
    FieldSpec.model_validate(field)


BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("no source", {"required": True}, "needs one of from, param"),
    ("from and param", {"from": "/a", "param": "id"}, "only one of from"),
    ("query and const", {"query": "q", "const": 1}, "only one of from"),
    ("null const and join", {"const": None, "join": {"parts": ["/a"]}}, "only one"),
    ("each without from", {"param": "id", "each": {"x": "/a"}}, "each needs from"),
    (
        "each and fields",
        {"from": "/l", "each": {"x": "/a"}, "fields": {"y": "/b"}},
        "each or fields, not both",
    ),
    (
        "table and date",
        {
            "from": "/a",
            "table": "yes_no",
            "date": {"parse": "DD/MM/YYYY", "format": "YYYY-MM-DD"},
        },
        "one of table, date, number, split",
    ),
    (
        "on_null default without a default",
        {"from": "/a", "on_null": "default"},
        "on_null: default needs a default",
    ),
    ("unknown on_null", {"from": "/a", "on_null": "drop"}, "on_null"),
    ("misspelt key", {"form": "/a"}, "form"),
]


@pytest.mark.parametrize(
    ("field", "message"), [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS]
)
def test_a_field_that_breaks_a_rule_is_refused(
    field: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        FieldSpec.model_validate(field)


def test_a_null_constant_counts_as_given() -> None:
    """``const: null`` writes null; it is not the same as no const at all."""
    assert FieldSpec.model_validate({"const": None}).has_const
    assert not FieldSpec.model_validate({"from": "/a"}).has_const


def test_a_null_default_counts_as_given() -> None:
    """``on_null: default`` with ``default: null`` is a choice, not an omission."""
    spec = FieldSpec.model_validate(
        {"from": "/a", "on_null": "default", "default": None}
    )

    assert spec.has_default
    assert spec.default is None


def test_a_nested_field_is_checked_too() -> None:
    with pytest.raises(ValidationError, match="needs one of") as caught:
        FieldSpec.model_validate({"fields": {"inner": {"required": True}}})
    assert error_locations(caught) == [("fields", "inner")]


# -- tables ----------------------------------------------------------------------------


def test_a_table_without_entries_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        TableSpec.model_validate({"entries": []})


@pytest.mark.parametrize(
    ("table", "has_default"),
    [
        ({"entries": [[True, "Y"]]}, False),
        ({"entries": [[True, "Y"]], "default": None}, True),
        ({"entries": [[True, "Y"]], "default": "N"}, True),
    ],
    ids=["absent", "null", "a value"],
)
def test_a_table_default_is_given_only_when_written(
    table: dict[str, Any], has_default: bool
) -> None:
    assert TableSpec.model_validate(table).has_default is has_default


def test_a_table_entry_is_a_pair() -> None:
    with pytest.raises(ValidationError, match=r"entries\.0"):
        TableSpec.model_validate({"entries": [[1, "I", "one"]]})


# -- dates, numbers, names -------------------------------------------------------------


@pytest.mark.parametrize(
    "form", ["DD/MM/YYYY", "YYYY-MM-DD", "DD.MM.YYYY", "MM DD YYYY", "YYYYMMDD"]
)
def test_a_date_format_of_the_three_tokens_is_accepted(form: str) -> None:
    assert DateSpec.model_validate({"parse": form, "format": form}).parse == form


BAD_DATES: list[tuple[str, str, str]] = [
    ("two-digit year", "DD/MM/YY", "DD, MM, YYYY and the separators"),
    ("lower case", "dd/mm/yyyy", "DD, MM, YYYY and the separators"),
    ("underscore separator", "DD_MM_YYYY", "DD, MM, YYYY and the separators"),
    ("month name", "DD MMM YYYY", "DD, MM, YYYY and the separators"),
    ("no day", "MM/YYYY", "once each"),
    ("day twice", "DD/MM/YYYY/DD", "once each"),
    ("separators only", "//", "once each"),
]


@pytest.mark.parametrize(
    ("form", "message"), [c[1:] for c in BAD_DATES], ids=[c[0] for c in BAD_DATES]
)
def test_a_date_format_outside_the_tokens_is_refused(form: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        DateSpec.model_validate({"parse": "YYYY-MM-DD", "format": form})
    assert error_locations(caught) == [("format",)]


@pytest.mark.parametrize("decimals", [None, 0, 6])
def test_number_decimals_of_0_to_6_are_accepted(decimals: int | None) -> None:
    spec = {"parse": "indian", "format": "number", "decimals": decimals}
    assert NumberSpec.model_validate(spec).decimals == decimals


@pytest.mark.parametrize(
    ("decimals", "message"),
    [(-1, "greater than or equal to 0"), (7, "less than or equal to 6")],
)
def test_number_decimals_outside_0_to_6_are_refused(
    decimals: int, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        NumberSpec.model_validate(
            {"parse": "plain", "format": "plain", "decimals": decimals}
        )


@pytest.mark.parametrize("separator", [" ", ",", "-" * 8])
def test_a_split_separator_of_1_to_8_characters_is_accepted(separator: str) -> None:
    spec = SplitSpec.model_validate({"separator": separator, "take": "last"})
    assert spec.separator == separator


@pytest.mark.parametrize(
    ("separator", "message"),
    [("", "at least 1 character"), ("-" * 9, "at most 8 characters")],
)
def test_a_split_separator_outside_1_to_8_characters_is_refused(
    separator: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        SplitSpec.model_validate({"separator": separator, "take": "first"})


# -- conditions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [{"from": "/k"}, {"from": "/k", "in": [1], "present": True}],
    ids=["no test", "two tests"],
)
def test_a_condition_takes_exactly_one_test(when: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="exactly one of equals, in, present"):
        WhenSpec.model_validate(when)


def test_equals_null_is_a_test() -> None:
    """``equals: null`` tests for null; it is not a missing test."""
    when = WhenSpec.model_validate({"from": "/k", "equals": None})

    assert when.equals_given
    assert when.equals is None


def test_an_empty_in_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        WhenSpec.model_validate({"from": "/k", "in": []})


# -- keywords or mappings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        (RequestSpec, "query", "passthrough"),
        (RequestSpec, "query", "drop"),
        (RequestSpec, "body", "passthrough"),
        (RequestSpec, "body", "none"),
        (ResponseSpec, "body", "passthrough"),
    ],
)
def test_each_keyword_is_accepted_where_it_belongs(
    spec: type[RequestSpec | ResponseSpec], field: str, value: str
) -> None:
    assert getattr(spec.model_validate({field: value}), field) == value


@pytest.mark.parametrize(
    ("spec", "field", "value"),
    [
        (RequestSpec, "query", "none"),
        (RequestSpec, "body", "drop"),
        (ResponseSpec, "body", "none"),
    ],
)
def test_a_keyword_of_another_place_is_refused_as_a_keyword(
    spec: type[RequestSpec | ResponseSpec], field: str, value: str
) -> None:
    """The error names the keyword branch only, not the mapping one as well."""
    with pytest.raises(ValidationError, match="Input should be") as caught:
        spec.model_validate({field: value})
    assert error_locations(caught) == [(field, "word")]


def test_a_bad_mapping_is_refused_as_a_mapping() -> None:
    with pytest.raises(ValidationError, match="Extra inputs") as caught:
        RequestSpec.model_validate({"query": {"year": {"frm": "/y"}}})
    assert error_locations(caught) == [("query", "mapping", "year", "frm")]


def test_the_union_tags_are_the_branch_names_of_errors() -> None:
    assert {"word", "mapping"} == UNION_TAGS


def test_request_and_response_pass_through_by_default() -> None:
    request, response = RequestSpec(), ResponseSpec()

    assert (request.query, request.body, response.body) == (
        "passthrough",
        "passthrough",
        "passthrough",
    )


# -- examples --------------------------------------------------------------------------


GOOD_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("request only", {"canonical_request": REQUEST}),
    ("refused request", {"request_error": {"reason": "invalid_request"}}),
    (
        "request and response",
        {
            "canonical_request": REQUEST,
            "canonical_response": {"body": {"enrolled": True}},
            "response": {"is_enrolled": "Y"},
        },
    ),
    (
        "null response",
        {"canonical_request": REQUEST, "canonical_response": {}, "response": None},
    ),
]


@pytest.mark.parametrize(
    "outcome", [c[1] for c in GOOD_EXAMPLES], ids=[c[0] for c in GOOD_EXAMPLES]
)
def test_an_example_with_one_outcome_is_accepted(outcome: dict[str, Any]) -> None:
    ExampleSpec.model_validate({"name": "e", "request": REQUEST, **outcome})


BAD_EXAMPLES: list[tuple[str, dict[str, Any], str]] = [
    ("no outcome", {}, "canonical_request or request_error"),
    (
        "both outcomes",
        {"canonical_request": REQUEST, "request_error": {"reason": "x"}},
        "canonical_request or request_error",
    ),
    (
        "response without canonical response",
        {"canonical_request": REQUEST, "response": {"is_enrolled": "Y"}},
        "go together",
    ),
    (
        "canonical response without response",
        {"canonical_request": REQUEST, "canonical_response": {}},
        "go together",
    ),
    (
        "status out of range",
        {
            "canonical_request": REQUEST,
            "canonical_response": {"status": 600},
            "response": None,
        },
        "less than or equal to 599",
    ),
]


@pytest.mark.parametrize(
    ("outcome", "message"),
    [c[1:] for c in BAD_EXAMPLES],
    ids=[c[0] for c in BAD_EXAMPLES],
)
def test_an_example_that_breaks_a_rule_is_refused(
    outcome: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ExampleSpec.model_validate({"name": "e", "request": REQUEST, **outcome})


# -- the whole document ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["kanyashree", "k", "0-a_b", "a" * 64])
def test_an_adapter_name_of_lower_case_words_is_accepted(name: str) -> None:
    assert AdapterSpec.model_validate(adapter(name=name)).name == name


@pytest.mark.parametrize(
    "name", ["", "Kanyashree", "-a", "_a", "a b", "a/b", "a.yaml", "a" * 65]
)
def test_an_adapter_name_outside_the_pattern_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        AdapterSpec.model_validate(adapter(name=name))


def test_an_endpoint_name_follows_the_same_pattern() -> None:
    endpoint = {**ENDPOINT, "name": "Verify"}
    with pytest.raises(ValidationError, match="should match pattern") as caught:
        AdapterSpec.model_validate(adapter(endpoints=[endpoint]))
    assert error_locations(caught) == [("endpoints", 0, "name")]


def test_an_adapter_needs_an_endpoint() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        AdapterSpec.model_validate(adapter(endpoints=[]))


def test_an_unknown_method_is_refused() -> None:
    endpoint = {**ENDPOINT, "match": {"method": "HEAD", "path": "/verify"}}
    with pytest.raises(ValidationError, match="'GET', 'POST'"):
        AdapterSpec.model_validate(adapter(endpoints=[endpoint]))


def test_an_unknown_top_level_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs") as caught:
        AdapterSpec.model_validate(adapter(endpoint=[ENDPOINT]))
    assert error_locations(caught) == [("endpoint",)]
