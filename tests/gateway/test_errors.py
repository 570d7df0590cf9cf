"""The error tree: reason codes, the side at fault, and what an error may say."""

from __future__ import annotations

import re

import pytest

from gateway.errors import (
    REASONS,
    AccessDeniedError,
    AuthenticationError,
    ConfigError,
    Fault,
    FramingError,
    MediatorError,
    NodeError,
    PayloadError,
    Reason,
    ResolutionError,
    ThrottledError,
    UpstreamError,
)

EXCHANGE_ERRORS = [
    FramingError,
    AuthenticationError,
    ResolutionError,
    AccessDeniedError,
    ThrottledError,
    PayloadError,
    UpstreamError,
    NodeError,
]

#: The statuses each side at fault may answer with.
STATUSES = {
    Fault.CLIENT: range(400, 500),
    Fault.PROVIDER: (502, 504),
    Fault.MEDIATOR: (500, 503),
}


def test_every_reason_has_a_spec() -> None:
    """No reason code can reach the wire without a status, side and message."""
    assert set(REASONS) == set(Reason)


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_a_reasons_status_belongs_to_the_side_at_fault(reason: Reason) -> None:
    """A client fault is a 4xx; a provider or node fault is a 5xx of its own."""
    spec = reason.spec

    assert spec.status in STATUSES[spec.fault]


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_a_reason_code_is_a_stable_snake_case_word(reason: Reason) -> None:
    """The code is the member's name in lower case, and nothing else."""
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", reason.value)
    assert reason.value == reason.name.lower()


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_a_reason_message_is_fixed_text(reason: Reason) -> None:
    """A message has no placeholder that a request value could fill."""
    message = reason.spec.message

    assert message
    assert not set(message) & set("{}%<>\n")


@pytest.mark.parametrize(
    ("reason", "wire_type", "status"),
    [
        (Reason.INVALID_TOKEN, "Client.invalid_token", 401),
        (Reason.RATE_LIMITED, "Client.rate_limited", 429),
        (Reason.UPSTREAM_TIMEOUT, "Server.Provider.upstream_timeout", 504),
        (
            Reason.UPSTREAM_SIGNATURE_INVALID,
            "Server.Provider.upstream_signature_invalid",
            502,
        ),
        (Reason.LOG_UNAVAILABLE, "Server.Mediator.log_unavailable", 503),
        (Reason.INTERNAL_ERROR, "Server.Mediator.internal_error", 500),
    ],
)
def test_the_wire_type_is_the_fault_then_the_reason(
    reason: Reason, wire_type: str, status: int
) -> None:
    """The X-Road error ``type`` says who failed, then why."""
    error = MediatorError(reason)

    assert (error.type, error.status) == (wire_type, status)


def test_an_error_says_only_its_reason_code() -> None:
    """The exception text is the code, so a log of it echoes nothing else."""
    error = PayloadError(Reason.SCHEMA_VIOLATION, pointer="/student/aadhaar")

    assert str(error) == "schema_violation"
    assert error.message == "The request does not match its schema"


def test_the_log_reason_defaults_to_the_wire_reason() -> None:
    """Without a finer reason, the message log records the wire code."""
    assert MediatorError(Reason.ACCESS_DENIED).log_reason == "access_denied"


def test_a_finer_log_reason_stays_off_the_wire() -> None:
    """The finer reason is kept apart; type, message and text do not carry it."""
    error = AuthenticationError(Reason.INVALID_TOKEN, log_reason="alg_not_allowed")

    assert error.log_reason == "alg_not_allowed"
    assert "alg_not_allowed" not in f"{error} {error.type} {error.message}"


def test_an_authentication_error_asks_for_a_bearer_token() -> None:
    """Every 401 carries the challenge RFC 6750 section 3 asks for."""
    error = AuthenticationError(Reason.MISSING_CREDENTIAL)

    assert error.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def test_an_authentication_error_keeps_headers_it_is_given() -> None:
    """Extra headers sit beside the challenge, not in place of it."""
    error = AuthenticationError(Reason.TOKEN_REPLAYED, headers={"Retry-After": "1"})

    assert error.headers == {
        "WWW-Authenticate": 'Bearer error="invalid_token"',
        "Retry-After": "1",
    }


def test_an_errors_headers_are_its_own_copy() -> None:
    """Changing the mapping handed in later does not change the error."""
    given = {"Retry-After": "3"}
    error = ThrottledError(Reason.RATE_LIMITED, headers=given)

    given["Retry-After"] = "0"

    assert error.headers == {"Retry-After": "3"}


def test_a_payload_error_keeps_the_pointer_to_the_bad_member() -> None:
    """The JSON pointer goes with a payload error; without one it is None."""
    assert PayloadError(Reason.INVALID_NUMBER, pointer="/marks/0").pointer == (
        "/marks/0"
    )
    assert PayloadError(Reason.INVALID_JSON).pointer is None


def test_an_upstream_error_counts_one_attempt_unless_told() -> None:
    """A provider failure is one attempt until a retry says otherwise."""
    assert UpstreamError(Reason.UPSTREAM_UNAVAILABLE).attempts == 1


@pytest.mark.parametrize("error_class", EXCHANGE_ERRORS, ids=lambda c: c.__name__)
def test_every_step_error_is_a_mediator_error(
    error_class: type[MediatorError],
) -> None:
    """One ``except MediatorError`` catches a failure of any step."""
    with pytest.raises(MediatorError, match="internal_error"):
        raise error_class(Reason.INTERNAL_ERROR)


def test_a_config_error_is_not_an_exchange_error() -> None:
    """A bad deployment file is never answered to a client as an exchange."""
    assert not issubclass(ConfigError, MediatorError)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (12, "access.yaml:12: unknown key 'rigths'"),
        (None, "access.yaml: unknown key 'rigths'"),
    ],
)
def test_a_config_error_names_the_file_and_line(line: int | None, text: str) -> None:
    """The message is ``file:line: reason``, or ``file: reason`` with no line."""
    error = ConfigError("access.yaml", "unknown key 'rigths'", line=line)

    assert str(error) == text
    assert (error.file, error.line, error.reason) == (
        "access.yaml",
        line,
        "unknown key 'rigths'",
    )
