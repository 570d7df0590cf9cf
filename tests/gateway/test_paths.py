"""Tests for step 3, resolve: service id and endpoint from a raw request path."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import Reason, ResolutionError
from gateway.identifiers import ServiceId
from gateway.paths import Target, resolve

SERVICE = "/r1/IN-EDU/GOV/WBSED/student-registry/students"
STUDENTS = ServiceId.parse("IN-EDU/GOV/WBSED/student-registry/students")


def endpoint_of(raw_path: str | bytes) -> str:
    return resolve(raw_path, b"").endpoint


def reason_of(raw_path: str | bytes, query: str | bytes = b"") -> Reason:
    with pytest.raises(ResolutionError) as caught:
        resolve(raw_path, query)
    return caught.value.reason


def test_resolve_returns_service_endpoint_and_query() -> None:
    """A plain path gives the service, the endpoint in both forms and the query."""
    target = resolve(SERVICE.encode() + b"/by-udise/19110900503", b"page=2&x=%20")

    assert target == Target(
        service=STUDENTS,
        endpoint="/by-udise/19110900503",
        endpoint_encoded="/by-udise/19110900503",
        query="page=2&x=%20",
    )


@pytest.mark.parametrize(
    ("raw_path", "endpoint"),
    [
        (SERVICE, "/"),
        (SERVICE + "/", "/"),
        (SERVICE + "/search", "/search"),
        (SERVICE + "/by-udise/", "/by-udise/"),
        # C10: dot-segments are removed before any rule sees the path.
        (SERVICE + "/by-udise/19110900503/../../export", "/export"),
        (SERVICE + "/./export", "/export"),
        (SERVICE + "/%2e/export", "/export"),
        (SERVICE + "/a/%2E%2e/export", "/export"),
        (SERVICE + "/a/.%2e/export", "/export"),
        (SERVICE + "/a/b/..", "/a/"),
        (SERVICE + "/a/.", "/a/"),
        (SERVICE + "/a/./", "/a/"),
        (SERVICE + "/a/..", "/"),
        (SERVICE + "/EXPORT", "/EXPORT"),
        (SERVICE + "/_debug/vars", "/_debug/vars"),
        # ``;`` is literal: no path parameter is stripped (C09).
        (SERVICE + "/by-udise;x=1/19110900503", "/by-udise;x=1/19110900503"),
        (SERVICE + "/.../x", "/.../x"),
        (SERVICE + "/a%20b", "/a b"),
        (SERVICE + "/%E0%A6%B6%E0%A7%8B", "/শো"),
    ],
)
def test_resolve_normalises_the_endpoint(raw_path: str, endpoint: str) -> None:
    """The decoded endpoint is normalised as RFC 3986 section 5.2.4 says."""
    assert endpoint_of(raw_path) == endpoint


@pytest.mark.parametrize(
    ("raw_path", "encoded"),
    [
        (SERVICE + "/a%20b", "/a%20b"),
        (SERVICE + "/%41%2d", "/A-"),
        (SERVICE + "/by-udise;x=1/a:b@c", "/by-udise;x=1/a:b@c"),
        (SERVICE + "/%E0%A6%B6", "/%E0%A6%B6"),
        (SERVICE + "/x%22y%3Cz%3E", "/x%22y%3Cz%3E"),
        (SERVICE + "/%7e!$&'()*+,=", "/~!$&'()*+,="),
    ],
)
def test_resolve_reencodes_the_endpoint_once(raw_path: str, encoded: str) -> None:
    """The forwarded form is the normalised endpoint quoted with RFC 3986 pchar."""
    assert resolve(raw_path, "").endpoint_encoded == encoded


@pytest.mark.parametrize(
    "raw_path",
    [
        # C09: encoded slash, backslash, NUL and delimiters.
        SERVICE + "/by-udise%2F..%2F..%2Fexport",
        SERVICE + "/by-udise/..%5C..%5Cexport",
        "/r1/IN-EDU/GOV/WBSED%2Fstudent-registry/students/by-udise/19110900503",
        SERVICE + "/by-udise/19110900503%00.json",
        SERVICE + "/export%23/by-udise/19110900503",
        SERVICE + "/export%3F/by-udise/19110900503",
        SERVICE + "/by-udise;x=1/../../export",
        # C10: an empty segment, and climbing above the endpoint root.
        SERVICE + "//export",
        SERVICE + "/a//b",
        SERVICE + "/..",
        SERVICE + "/a/../../export",
        SERVICE + "/%2e%2e/x",
        # C12: CR, LF and NUL after decoding.
        SERVICE + "/by-udise/19110900503%0d%0aX-Gateway-Client:%20exam-board%0d%0a",
        SERVICE + "/by-udise/19110900503%0a",
        SERVICE + "/by-udise/19110900503%0d",
        SERVICE + "/by-udise/19110900503%00",
        # C13: ESC and LF, a forged log line.
        SERVICE + "/by-udise/%1b%5b2J%1b%5b1%3b1H%0a2026-12-04T10:00:01Z%20decision=ok",
        # Other control characters: DEL and C1 (U+0085 is C2 85).
        SERVICE + "/a%7f",
        SERVICE + "/a%C2%85",
        # Double encoding and broken escapes.
        SERVICE + "/by-udise%252F..%252Fexport",
        SERVICE + "/a%2",
        SERVICE + "/a%zz",
        SERVICE + "/a%",
        # Invalid UTF-8 after decoding: cut sequence, overlong, surrogate.
        SERVICE + "/%E0%A6",
        SERVICE + "/%C0%AF",
        SERVICE + "/%ED%A0%80",
        # Raw bytes the raw path must not hold.
        SERVICE + "/a\\b",
        SERVICE + "/a b",
        SERVICE + "/a\x00",
        SERVICE + "/a\r\nb",
        SERVICE + "/a?b",
        SERVICE + "/a#b",
        SERVICE + "/a\x7f",
        # The prefix is exactly /r1/.
        "/r2/IN-EDU/GOV/WBSED/student-registry/students",
        "/R1/IN-EDU/GOV/WBSED/student-registry/students",
        "r1/IN-EDU/GOV/WBSED/student-registry/students",
        "/r1",
        "/admin/health",
        "/.well-known/jwks.json",
        "",
    ],
)
def test_resolve_rejects_invalid_paths(raw_path: str) -> None:
    """Each hostile path is INVALID_PATH, never a route."""
    assert reason_of(raw_path) is Reason.INVALID_PATH


@pytest.mark.parametrize(
    "raw_path",
    [
        b"/r1/IN-EDU/GOV/WBSED/student-registry/students/a\xc3\xa9",
        b"/r1/IN-EDU/GOV/WBSED/student-registry/students/a\xff",
        b"/r1/IN-EDU/GOV/WBSED/student-registry/students/a\x85",
    ],
)
def test_resolve_rejects_raw_non_ascii_bytes(raw_path: bytes) -> None:
    """A raw path must be ASCII; non-ASCII arrives percent-encoded or not at all."""
    assert reason_of(raw_path) is Reason.INVALID_PATH


@pytest.mark.parametrize(
    "raw_path",
    [
        "/r1/",
        "/r1/IN-EDU/GOV/WBSED/student-registry",
        "/r1/IN-EDU/GOV//student-registry/students",
        "/r1/IN-EDU/GOV/WBSED/student-registry/.",
        "/r1/IN-EDU/GOV/WBSED/../students",
        "/r1/IN-EDU/GOV/WBSED/student-registry/%2e%2e",
        "/r1/IN-EDU/GOV/WBSED/student-registry/stu%20dents",
        "/r1/IN-EDU/GOV/WBSED/student-registry/stu;dents",
        "/r1/IN-EDU/GOV/WBSED/%E0%A6%B6/students",
        "/r1/IN-EDU/GOV/WBSED/student-registry/" + "s" * 65,
    ],
)
def test_resolve_rejects_malformed_service_ids(raw_path: str) -> None:
    """The five id segments follow gateway.identifiers."""
    assert reason_of(raw_path) is Reason.INVALID_IDENTIFIER


@pytest.mark.parametrize(
    "query",
    [b"a=\x00", b"a=\r\nb", b"a=b c", "a=é", b"a=\xc3\xa9", b"a=\x7f", b"a#b"],
)
def test_resolve_rejects_raw_control_or_non_ascii_in_the_query(
    query: str | bytes,
) -> None:
    """The query is kept as received, but raw control and non-ASCII are refused."""
    assert reason_of(SERVICE + "/search", query) is Reason.INVALID_PATH


def test_resolve_keeps_the_query_byte_for_byte() -> None:
    """Percent-escapes in the query are not decoded or re-encoded."""
    query = b"q=%0d%0a&x=%E0%A6&y=a+b;c"
    assert resolve(SERVICE + "/search", query).query == query.decode()


def test_resolve_accepts_str_and_bytes_alike() -> None:
    """A str path is treated exactly as its ASCII bytes."""
    path = SERVICE + "/by-udise/19110900503"
    assert resolve(path, "a=1") == resolve(path.encode(), b"a=1")


# -- properties -------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEGMENT = st.sampled_from(
    [
        *(".", "..", "", "%2e", "%2E%2e", "a", "b;c", "%2F", "%5c", "%25", "%00"),
        *("%0a", "%E0%A6%B6", "%C0%AF", "%", "%zz", "~", "x y", "\\", "?", "é"),
        ":@!",
    ]
)


@given(st.binary(max_size=200), st.binary(max_size=50))
def test_resolve_raises_only_resolution_errors_on_any_bytes(
    raw: bytes, query: bytes
) -> None:
    """Arbitrary bytes either resolve or raise ResolutionError, nothing else."""
    with contextlib.suppress(ResolutionError):
        resolve(b"/r1/IN-EDU/GOV/WBSED/student-registry/students" + raw, query)


@given(st.lists(_SEGMENT, max_size=8))
def test_resolved_endpoints_are_normal_and_stable(segments: list[str]) -> None:
    """A resolved endpoint has no empty or dot-segment, no control character,
    and resolving its forwarded form gives the same target again."""
    raw_path = SERVICE + "".join("/" + segment for segment in segments)
    try:
        target = resolve(raw_path, b"")
    except ResolutionError:
        return

    endpoint = target.endpoint
    assert endpoint.startswith("/")
    for bad in ("//", "/./", "/../"):
        assert bad not in endpoint
    assert not endpoint.endswith(("/.", "/.."))
    assert not _CONTROL.search(endpoint)
    assert resolve(SERVICE + target.endpoint_encoded, b"") == target
