"""Client and service identifiers: the one place they are parsed and printed."""

from __future__ import annotations

import pytest

from gateway.errors import Reason, ResolutionError
from gateway.identifiers import ClientId, ServiceId

SED = ClientId("WB", "GOV", "SED", "banglarshiksha")
STUDENTS = ServiceId(SED, "students")


def test_a_client_id_parses_into_its_four_parts() -> None:
    """The parts come out in order: instance, class, member code, subsystem."""
    parsed = ClientId.parse("WB/GOV/SED/banglarshiksha")

    assert (
        parsed.instance,
        parsed.member_class,
        parsed.member_code,
        parsed.subsystem,
    ) == ("WB", "GOV", "SED", "banglarshiksha")


def test_a_service_id_parses_into_its_provider_and_code() -> None:
    """The first four parts are the provider subsystem, the fifth the code."""
    parsed = ServiceId.parse("WB/GOV/SED/banglarshiksha/students")

    assert (parsed.provider, parsed.code) == (SED, "students")


@pytest.mark.parametrize(
    "text", ["WB/GOV/SED/banglarshiksha", "WB/GOV/FIN/ifms", "A/b.c/D-1/e_2"]
)
def test_a_client_id_prints_as_it_was_parsed(text: str) -> None:
    """Printing a parsed client id gives back the text it came from."""
    assert str(ClientId.parse(text)) == text


def test_a_service_id_prints_as_it_was_parsed() -> None:
    """Printing a parsed service id gives back the text it came from."""
    text = "WB/GOV/SED/banglarshiksha/schools"

    assert str(ServiceId.parse(text)) == text


def test_the_member_is_the_client_id_without_its_subsystem() -> None:
    """Two subsystems of one member share the member part."""
    other = ClientId("WB", "GOV", "SED", "udise")

    assert SED.member == other.member == "WB/GOV/SED"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("WB/GOV/SED", id="three-parts"),
        pytest.param("WB/GOV/SED/banglarshiksha/students", id="five-parts"),
        pytest.param("", id="empty"),
        pytest.param("WB/GOV/SED/", id="empty-subsystem"),
        pytest.param("/GOV/SED/banglarshiksha", id="empty-instance"),
        pytest.param("WB//SED/banglarshiksha", id="double-slash"),
    ],
)
def test_a_client_id_with_other_than_four_parts_is_refused(text: str) -> None:
    """A missing, empty or extra part is a malformed identifier."""
    with pytest.raises(ResolutionError, match="invalid_identifier"):
        ClientId.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("WB/GOV/SED/banglarshiksha", id="no-code"),
        pytest.param("WB/GOV/SED/banglarshiksha/students/x", id="six-parts"),
        pytest.param("WB/GOV/SED/banglarshiksha/", id="empty-code"),
    ],
)
def test_a_service_id_with_other_than_five_parts_is_refused(text: str) -> None:
    """A service id needs exactly one code after the provider subsystem."""
    with pytest.raises(ResolutionError, match="invalid_identifier"):
        ServiceId.parse(text)


@pytest.mark.parametrize(
    "part",
    [
        pytest.param("..", id="dot-segment"),
        pytest.param(".hidden", id="leading-dot"),
        pytest.param("-x", id="leading-dash"),
        pytest.param("_x", id="leading-underscore"),
        pytest.param("a%2Fb", id="percent"),
        pytest.param("a b", id="space"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("a\nb", id="newline"),
        pytest.param("a\n", id="trailing-newline"),
        pytest.param("a\x00", id="nul"),
        pytest.param("šola", id="non-ascii-letter"),
        pytest.param("\u0661\u0662", id="non-ascii-digits"),
        pytest.param("a:b", id="colon"),
        pytest.param("x" * 65, id="65-characters"),
    ],
)
def test_a_part_outside_the_strict_alphabet_is_refused(part: str) -> None:
    """No part can carry a separator, an escape, a dot-segment or a control."""
    with pytest.raises(ResolutionError, match="invalid_identifier"):
        ClientId("WB", "GOV", part, "banglarshiksha")


@pytest.mark.parametrize(
    "part",
    [
        pytest.param("x" * 64, id="64-characters"),
        pytest.param("0", id="one-digit"),
        pytest.param("a.b-c_d", id="inner-punctuation"),
        pytest.param("Z9", id="upper-case"),
    ],
)
def test_a_part_within_the_strict_alphabet_is_accepted(part: str) -> None:
    """Letters, digits, dot, dash and underscore, up to 64, starting alphanumeric."""
    assert ClientId("WB", "GOV", part, "s").member_code == part


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("..", id="dot-segment"),
        pytest.param("a/b", id="separator"),
        pytest.param("x" * 65, id="65-characters"),
        pytest.param("", id="empty"),
    ],
)
def test_a_service_code_is_held_to_the_same_alphabet(code: str) -> None:
    """Building a service id directly checks its code as parsing would."""
    with pytest.raises(ResolutionError, match="invalid_identifier"):
        ServiceId(SED, code)


def test_a_refused_identifier_is_the_clients_fault_and_echoes_nothing() -> None:
    """The error is a 400 with a fixed message, whatever the text was."""
    with pytest.raises(ResolutionError) as caught:
        ClientId.parse("WB/GOV/<script>/x")

    error = caught.value
    assert (error.reason, error.status) == (Reason.INVALID_IDENTIFIER, 400)
    assert "<script>" not in f"{error} {error.message} {error.log_reason}"


def test_identifiers_are_equal_and_hash_by_value() -> None:
    """A parsed id and one built from parts are the same key in a dict."""
    rights = {STUDENTS: "read"}

    assert ServiceId.parse("WB/GOV/SED/banglarshiksha/students") in rights
    assert ClientId.parse(str(SED)) == SED


def test_identifiers_sort_part_by_part() -> None:
    """Ordering compares instance, class, member and subsystem in turn."""
    ids = [ClientId.parse(t) for t in ("WB/GOV/WCD/a", "WB/GOV/BCW/z", "WB/EDU/Z/z")]

    assert [str(i) for i in sorted(ids)] == [
        "WB/EDU/Z/z",
        "WB/GOV/BCW/z",
        "WB/GOV/WCD/a",
    ]


def test_identifiers_cannot_be_changed_after_checking() -> None:
    """A checked id is frozen, so no unchecked part can be put in later."""
    with pytest.raises(AttributeError, match="subsystem"):
        SED.subsystem = "../x"  # type: ignore[misc]
