"""Endpoint path patterns and canonical path templates."""

from __future__ import annotations

import pytest

from adapters.paths import PathPattern, PathSyntaxError, PathTemplate


@pytest.mark.parametrize(
    ("pattern", "path", "params"),
    [
        ("/verify-enrolment", "/verify-enrolment", {}),
        ("/verify-enrolment", "/verify-enrolments", None),
        ("/verify-enrolment", "/verify-enrolment/x", None),
        ("/", "/", {}),
        ("/", "", {}),
        ("/", "/x", None),
        ("/{id}", "/WB201900001235", {"id": "WB201900001235"}),
        ("/{id}", "/", None),
        ("/{id}", "/a/b", None),
        ("/roster/{udise}", "/roster/19110900503", {"udise": "19110900503"}),
        ("/{id}/bank-account/verify", "/WB1/bank-account/verify", {"id": "WB1"}),
        ("/{id}/bank-account/verify", "/WB1/bank-account", None),
        ("/files/**", "/files", {}),
        ("/files/**", "/files/a/b/c", {}),
        ("/files/**", "/filez/a", None),
        ("/**", "/anything/at/all", {}),
        ("/{a}/**", "/x/y", {"a": "x"}),
    ],
)
def test_pattern_match(pattern: str, path: str, params: dict[str, str] | None) -> None:
    assert PathPattern.parse(pattern).match(path) == params


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("verify", "starts with /"),
        ("/a//b", "empty segment"),
        ("/a/", "empty segment"),
        ("/{}", "not a valid"),
        ("/{Id}", "not a valid"),
        ("/{a}/{a}", "twice"),
        ("/a/../b", "not a literal"),
        ("/a b", "not a literal"),
        ("/**/a", "not a literal"),
        ("/a?x=1", "not a literal"),
    ],
)
def test_pattern_that_does_not_parse(pattern: str, why: str) -> None:
    with pytest.raises(PathSyntaxError, match=why):
        PathPattern.parse(pattern)


def test_template_renders_values() -> None:
    template = PathTemplate.parse("/{student_id}/bank-account/verify")
    assert template.render({"student_id": "WB201900001235"}) == (
        "/WB201900001235/bank-account/verify"
    )


@pytest.mark.parametrize("value", ["..", ".", "a/b", "a?b", "a%2Fb", "", "a b", "শ"])
def test_template_refuses_unsafe_values(value: str) -> None:
    assert PathTemplate.parse("/{id}/x").render({"id": value}) is None


def test_template_root() -> None:
    assert PathTemplate.parse("/").render({}) == "/"
