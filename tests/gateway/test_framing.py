"""Step 1, frame: the node's own rules over what the HTTP parser accepted."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import MutableMapping
from typing import Any

import pytest

from gateway.errors import FramingError, Reason
from gateway.framing import (
    BodyTooLargeError,
    Headers,
    PartialBodyError,
    check_client_digest,
    check_forwarded_ascii,
    check_host,
    check_method,
    client_request_id,
    declared_length,
    parse_headers,
    read_body,
)

pytestmark = pytest.mark.anyio

HOSTS = frozenset({"mediator.wbsed.internal", "mediator.wbsed.internal:8443"})


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(tuple(pairs))


def reason_of(caught: pytest.ExceptionInfo[FramingError]) -> tuple[Reason, str]:
    return caught.value.reason, caught.value.log_reason


class Receiver:
    """ASGI ``receive`` over a list of messages; counts what was asked for."""

    def __init__(self, *messages: dict[str, Any]) -> None:
        self._messages = list(messages)
        self.calls = 0

    async def __call__(self) -> MutableMapping[str, Any]:
        self.calls += 1
        return self._messages.pop(0)


def body(data: bytes, *, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


# -- headers ---------------------------------------------------------------------------


def test_headers_keep_every_value_in_order_under_lower_case_names() -> None:
    parsed = parse_headers(
        [
            (b"X-Road-Client", b"WB/GOV/WCD/kanyashree"),
            (b"Accept", b"a"),
            (b"accept", b"b"),
        ],
        8192,
    )

    assert parsed.get("x-road-client") == "WB/GOV/WCD/kanyashree"
    assert parsed.get_all("accept") == ["a", "b"]
    assert parsed.get("missing") is None


def test_obs_text_is_kept_byte_for_byte() -> None:
    raw = "শোভন".encode()
    parsed = parse_headers([(b"x-road-userid", raw)], 8192)

    assert parsed.get("x-road-userid") == raw.decode("latin-1")


@pytest.mark.parametrize("value", [b"a\x00b", b"a\nb", b"a\rb", b"\x1b[2J", b"a\x7f"])
def test_a_control_character_in_a_value_is_refused(value: bytes) -> None:
    with pytest.raises(FramingError) as caught:
        parse_headers([(b"user-agent", value)], 8192)
    assert reason_of(caught) == (Reason.INVALID_HEADER, "control_character")


def test_a_tab_in_a_value_is_allowed() -> None:
    assert parse_headers([(b"x", b"a\tb")], 8192).get("x") == "a\tb"


def test_a_forwarded_header_must_be_ascii_others_need_not() -> None:
    """A value the provider would receive transcoded is refused; one the node
    only reads or logs (escaped) is not."""
    forwarded = frozenset({"x-road-userid"})
    utf8 = "EEé".encode().decode("latin-1")
    check_forwarded_ascii(headers(("user-agent", utf8)), forwarded)
    check_forwarded_ascii(headers(("x-road-userid", "EE12345678901")), forwarded)

    with pytest.raises(FramingError) as caught:
        check_forwarded_ascii(headers(("x-road-userid", utf8)), forwarded)
    assert reason_of(caught) == (Reason.INVALID_HEADER, "non_ascii_header")


def test_the_header_section_is_capped_as_a_whole() -> None:
    raw = [(b"x-a", b"v" * 40), (b"x-b", b"v" * 40)]
    assert len(parse_headers(raw, 94).items) == 2

    with pytest.raises(FramingError) as caught:
        parse_headers(raw, 93)
    assert caught.value.reason is Reason.HEADERS_TOO_LARGE


def test_only_refuses_a_repeated_header_and_names_it() -> None:
    repeated = headers(("x-road-client", "a"), ("x-road-client", "b"))

    with pytest.raises(FramingError) as caught:
        repeated.only("x-road-client", Reason.INVALID_HEADER)
    assert reason_of(caught) == (Reason.INVALID_HEADER, "duplicate_x_road_client")
    assert headers().only("x-road-client", Reason.INVALID_HEADER) is None


# -- method and host -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def test_the_exchange_methods_pass(method: str) -> None:
    check_method(method)


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "get", "PROPFIND"])
def test_other_methods_are_refused(method: str) -> None:
    with pytest.raises(FramingError) as caught:
        check_method(method)
    assert caught.value.reason is Reason.METHOD_NOT_ALLOWED
    # RFC 9110 section 15.5.6: a 405 names what the target does serve.
    assert caught.value.headers == {"allow": "GET, HEAD, POST, PUT, PATCH, DELETE"}


@pytest.mark.parametrize(
    "host",
    [
        "mediator.wbsed.internal",
        "MEDIATOR.wbsed.internal",
        "mediator.wbsed.internal:8443",
    ],
)
def test_an_allowed_host_passes_in_any_case(host: str) -> None:
    assert check_host(headers(("host", host)), HOSTS) == host


@pytest.mark.parametrize(
    "pairs",
    [
        (),
        (("host", "evil.example"),),
        (("host", "mediator.wbsed.internal:80"),),
        (("host", "mediator.wbsed.internal."),),
        (("host", "mediator.wbsed.internal"), ("host", "mediator.wbsed.internal")),
    ],
    ids=["missing", "other", "other-port", "trailing-dot", "twice"],
)
def test_any_other_host_is_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(FramingError) as caught:
        check_host(headers(*pairs), HOSTS)
    assert caught.value.reason is Reason.INVALID_HOST


# -- length ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "length"), [("0", 0), ("17", 17), (" 42 ", 42)])
def test_one_content_length_is_read(value: str, length: int) -> None:
    assert declared_length(headers(("content-length", value))) == length


def test_no_content_length_is_none() -> None:
    assert declared_length(headers()) is None


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        (
            (("content-length", "5"), ("content-length", "5")),
            Reason.DUPLICATE_CONTENT_LENGTH,
        ),
        ((("content-length", "5, 5"),), Reason.DUPLICATE_CONTENT_LENGTH),
        ((("content-length", "-1"),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ((("content-length", "+5"),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ((("content-length", "0x10"),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ((("content-length", "١٢"),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ((("content-length", "9" * 16),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        ((("content-length", ""),), Reason.AMBIGUOUS_MESSAGE_LENGTH),
        (
            (("content-length", "5"), ("transfer-encoding", "chunked")),
            Reason.AMBIGUOUS_MESSAGE_LENGTH,
        ),
    ],
    ids=[
        "twice",
        "list",
        "negative",
        "signed",
        "hex",
        "arabic-digits",
        "too-long",
        "empty",
        "with-transfer-encoding",
    ],
)
def test_an_ambiguous_length_is_refused(
    pairs: tuple[tuple[str, str], ...], reason: Reason
) -> None:
    with pytest.raises(FramingError) as caught:
        declared_length(headers(*pairs))
    assert caught.value.reason is reason


# -- request id and digest ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("3f1c-77a0", "3f1c-77a0"),
        ("a" * 64, "a" * 64),
        ("a" * 65, None),
        ("id with space", None),
        ("id\u0085", None),
        ("../../etc", None),
        ("", None),
    ],
)
def test_a_client_request_id_is_echoed_only_when_plainly_safe(
    value: str, kept: str | None
) -> None:
    assert client_request_id(headers(("x-road-request-id", value))) == kept


def digest(data: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(data).digest()).decode() + ":"


def test_a_matching_content_digest_is_verified() -> None:
    data = b'\xef\xbb\xbf{"student_id": "x"}'
    assert check_client_digest(headers(("content-digest", digest(data))), data)
    assert not check_client_digest(headers(), data)


@pytest.mark.parametrize(
    "pairs",
    [
        (("content-digest", digest(b"other")),),
        (("content-digest", "sha-256=:not base64:"),),
        (("content-digest", "garbage"),),
        (("content-digest", digest(b"{}")), ("content-digest", digest(b"{}"))),
    ],
    ids=["mismatch", "bad-base64", "not-a-dictionary", "twice"],
)
def test_a_bad_content_digest_is_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(FramingError) as caught:
        check_client_digest(headers(*pairs), b"{}")
    assert caught.value.reason is Reason.INVALID_CONTENT_DIGEST


# -- body ------------------------------------------------------------------------------


async def test_a_body_is_read_across_messages() -> None:
    receive = Receiver(body(b'{"a"', more=True), body(b": 1}"))
    length = headers(("content-length", "8"))

    assert await read_body(receive, "POST", length, 100) == b'{"a": 1}'


async def test_a_declared_length_over_the_cap_is_refused_before_any_read() -> None:
    receive = Receiver()

    with pytest.raises(BodyTooLargeError) as caught:
        await read_body(receive, "POST", headers(("content-length", "101")), 100)
    assert (caught.value.bytes_read, caught.value.log_reason) == (
        0,
        "declared_too_large",
    )
    assert receive.calls == 0


async def test_a_chunked_body_stops_at_the_first_byte_past_the_cap() -> None:
    receive = Receiver(body(b"x" * 60, more=True), body(b"x" * 60, more=True))
    chunked = headers(("transfer-encoding", "chunked"))

    with pytest.raises(BodyTooLargeError) as caught:
        await read_body(receive, "POST", chunked, 100)
    assert caught.value.bytes_read == 120
    assert receive.calls == 2


async def test_a_body_exactly_at_the_cap_is_accepted() -> None:
    receive = Receiver(body(b"x" * 100))
    assert len(await read_body(receive, "PUT", headers(), 100)) == 100


async def test_a_client_that_leaves_mid_body_aborts_the_exchange() -> None:
    receive = Receiver(body(b"{", more=True), {"type": "http.disconnect"})

    with pytest.raises(PartialBodyError) as caught:
        await read_body(receive, "POST", headers(("content-length", "9")), 100)
    assert caught.value.reason is Reason.CLIENT_ABORTED
    assert caught.value.bytes_read == 1


async def test_a_body_the_server_fails_keeps_its_reason_and_count() -> None:
    """A malformed chunk or a slow body, raised by the server from ``receive``."""

    class Failing(Receiver):
        async def __call__(self) -> MutableMapping[str, Any]:
            if self.calls == 2:
                raise FramingError(Reason.CLIENT_TIMEOUT, log_reason="body_rate")
            return await super().__call__()

    receive = Failing(body(b"abcd", more=True), body(b"ef", more=True))

    with pytest.raises(PartialBodyError) as caught:
        await read_body(receive, "POST", headers(("transfer-encoding", "chunked")), 100)
    assert reason_of(caught) == (Reason.CLIENT_TIMEOUT, "body_rate")
    assert caught.value.bytes_read == 6


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
async def test_a_bodyless_method_without_framing_reads_nothing(method: str) -> None:
    receive = Receiver()
    assert await read_body(receive, method, headers(), 100) == b""
    assert receive.calls == 0


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize(
    "framing",
    [(("content-length", "3"),), (("transfer-encoding", "chunked"),)],
    ids=["content-length", "chunked"],
)
async def test_a_bodyless_method_with_a_body_is_refused_unread(
    method: str, framing: tuple[tuple[str, str], ...]
) -> None:
    """Never read, so never forwarded; the refusal closes the connection."""
    receive = Receiver(body(b"abc"))

    with pytest.raises(FramingError, match="body_not_allowed"):
        await read_body(receive, method, headers(*framing), 100)
    assert receive.calls == 0


async def test_a_get_declaring_an_empty_body_reads_nothing() -> None:
    receive = Receiver()
    assert await read_body(receive, "GET", headers(("content-length", "0")), 100) == b""
    assert receive.calls == 0
