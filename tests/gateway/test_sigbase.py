"""Signature bases written directly: RFC 9421 B.2.4 and B.2.6, as the library writes."""

from __future__ import annotations

import base64
import datetime
import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import HTTPMessageSigner, algorithms

from gateway.keytypes import verify_raw
from gateway.sigbase import (
    field_components,
    request_derived,
    response_derived,
    signature_base,
)

# RFC 9421 appendix B.1.4 (test-key-ed25519) and B.2.6 (its signature).
RFC_ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_B26_PARAMS = (
    '("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPp"
    "BKRCw=="
)
RFC_B26_COMPONENTS = [
    ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("@method", "POST"),
    ("@path", "/foo"),
    ("@authority", "example.com"),
    ("content-type", "application/json"),
    ("content-length", "18"),
]
CREATED = 1796378400
DIGEST = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
OPTIONAL = ("content-type", "x-road-client", "x-road-id", "x-road-request-hash")


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Response:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    request: None = None


def _library_base(message: Any, covered: list[str], params: dict[str, Any]) -> bytes:
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)
    prepared = signer.prepare(
        message,
        key_id=params["keyid"],
        created=datetime.datetime.fromtimestamp(params["created"], datetime.UTC),
        nonce=params.get("nonce"),
        tag=params.get("tag"),
        label="mediator",
        covered_component_ids=covered,
        use_existing_digest=True,
    )
    return prepared.signature_base


def _params(**extra: Any) -> list[tuple[str, int | str]]:
    params: list[tuple[str, int | str]] = [
        ("created", CREATED),
        ("keyid", "node-2026-a"),
        ("alg", "ed25519"),
    ]
    params += list(extra.items())
    return [*params, ("tag", "shiksha-mediator")]


# -- RFC 9421 B.2.6 --------------------------------------------------------------------


def test_rfc9421_b26_signature_params_are_reproduced() -> None:
    built = signature_base(
        RFC_B26_COMPONENTS, [("created", 1618884473), ("keyid", "test-key-ed25519")]
    )

    assert built is not None
    assert built[1] == RFC_B26_PARAMS


def test_rfc9421_b26_signature_is_reproduced() -> None:
    private = serialization.load_pem_private_key(RFC_ED25519_PRIVATE, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    built = signature_base(
        RFC_B26_COMPONENTS, [("created", 1618884473), ("keyid", "test-key-ed25519")]
    )
    assert built is not None

    assert base64.b64encode(private.sign(built[0])).decode() == RFC_B26_SIGNATURE


def test_rfc9421_b26_base_equals_the_library_base() -> None:
    request = _Request(
        "POST",
        "http://example.com/foo?param=Value&Pet=dog",
        {
            "Host": "example.com",
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Content-Length": "18",
        },
    )
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)
    prepared = signer.prepare(
        request,
        key_id="test-key-ed25519",
        created=datetime.datetime.fromtimestamp(1618884473, datetime.UTC),
        label="sig-b26",
        include_alg=False,
        covered_component_ids=[name for name, _ in RFC_B26_COMPONENTS],
    )
    built = signature_base(
        RFC_B26_COMPONENTS, [("created", 1618884473), ("keyid", "test-key-ed25519")]
    )

    assert built is not None
    assert built[0] == prepared.signature_base


# -- RFC 9421 B.2.4 --------------------------------------------------------------------

# Appendix B.1.3 (test-key-ecc-p256, public) and B.2.4 (a response signed with it;
# ECDSA is not deterministic, so the signature is checked, not reproduced).
RFC_P256_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----
"""
RFC_B24_SIGNATURE = (
    "wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32"
    "oiasw=="
)
RFC_B24_DIGEST = (
    "sha-512=:"
    + base64.b64encode(hashlib.sha512(b'{"message": "good dog"}').digest()).decode()
    + ":"
)
RFC_B24_COMPONENTS = [
    ("@status", "200"),
    ("content-type", "application/json"),
    ("content-digest", RFC_B24_DIGEST),
    ("content-length", "23"),
]
RFC_B24_PARAMS: list[tuple[str, int | str]] = [
    ("created", 1618884473),
    ("keyid", "test-key-ecc-p256"),
]


def test_rfc9421_b24_signature_verifies_over_the_base() -> None:
    key = serialization.load_pem_public_key(RFC_P256_PUBLIC)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    built = signature_base(RFC_B24_COMPONENTS, RFC_B24_PARAMS)
    assert built is not None

    signature = base64.b64decode(RFC_B24_SIGNATURE)

    assert verify_raw("ecdsa-p256-sha256", key, built[0], signature)


def test_rfc9421_b24_base_equals_the_library_base() -> None:
    response = _Response(
        200,
        {
            "Content-Type": "application/json",
            "Content-Digest": RFC_B24_DIGEST,
            "Content-Length": "23",
        },
    )
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ECDSA_P256_SHA256)
    prepared = signer.prepare(
        response,
        key_id="test-key-ecc-p256",
        created=datetime.datetime.fromtimestamp(1618884473, datetime.UTC),
        label="sig-b24",
        include_alg=False,
        covered_component_ids=[name for name, _ in RFC_B24_COMPONENTS],
        use_existing_digest=True,
    )
    built = signature_base(RFC_B24_COMPONENTS, RFC_B24_PARAMS)

    assert built is not None
    assert built[0] == prepared.signature_base


# -- our own messages, byte for byte ---------------------------------------------------

REQUESTS = {
    "post with every field": (
        "POST",
        "http://127.0.0.1:8701/api/students/verify-enrolment",
        {
            "content-type": "application/json",
            "x-road-client": "WB/GOV/WCD/kanyashree",
            "x-road-id": "6f1c2a9e-0b7d-4c55-9a31-2e8d7c4b1f00",
            "accept": "application/json",
        },
    ),
    "get with a query": (
        "GET",
        "https://registry.wbsed.internal:8443/api/students/by-udise/19110900503"
        "?class=9&section=A%20B&limit=50",
        {"x-road-client": "WB/GOV/BCW/saboojsathi", "x-road-id": "abc"},
    ),
    "empty path": ("GET", "http://registry.example", {}),
    "empty query": ("GET", "http://registry.example/api/schools?", {}),
    "mixed case names": (
        "PUT",
        "http://Registry.Example:80/a/b;c=d/%7Ee",
        {"Content-Type": "text/plain; charset=utf-8", "X-Road-Id": "x"},
    ),
    "quotes and commas in values": (
        "POST",
        "http://registry.example/api",
        {"content-type": 'application/json; profile="a,b"', "x-road-id": "a, b"},
    ),
}


@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_request_base_equals_the_library_base(case: str) -> None:
    method, url, headers = REQUESTS[case]
    fields = field_components(headers, OPTIONAL[:3])
    derived = request_derived(method, url)
    assert fields is not None
    assert derived is not None
    components = [*derived, ("content-digest", DIGEST), *fields]
    built = signature_base(components, _params(nonce="n-1"))
    message = _Request(method, url, {**headers, "content-digest": DIGEST})
    covered = [name for name, _ in components]
    library = _library_base(
        message,
        covered,
        {
            "keyid": "node-2026-a",
            "created": CREATED,
            "nonce": "n-1",
            "tag": "shiksha-mediator",
        },
    )

    assert built is not None
    assert built[0] == library


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"content-type": "application/json", "x-road-id": "m-1"}),
        (
            403,
            {
                "x-road-id": "m-2",
                "x-road-request-hash": "A" * 86 + "==",
                "x-road-error": "Client.access_denied",
            },
        ),
        (504, {}),
    ],
)
def test_response_base_equals_the_library_base(
    status: int, headers: dict[str, str]
) -> None:
    fields = field_components(headers, OPTIONAL)
    derived = response_derived(status)
    assert fields is not None
    assert derived is not None
    components = [*derived, ("content-digest", DIGEST), *fields]
    built = signature_base(components, _params())
    message = _Response(status, {**headers, "content-digest": DIGEST})
    library = _library_base(
        message,
        [name for name, _ in components],
        {"keyid": "node-2026-a", "created": CREATED, "tag": "shiksha-mediator"},
    )

    assert built is not None
    assert built[0] == library


# -- what goes to the library ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "http://registry.example/"),
        ("POST", "ftp://registry.example/"),
        ("POST", "http://user@registry.example/"),
        ("POST", "http://[::1]:8701/api"),
        ("POST", "http://registry.example/a#fragment"),
        ("POST", "http://registry.example/a b"),
        ("POST", "http://registry.example/\u00e9"),
        ("POST", "http://registry.example/%zz"),
        ("POST", "http://registry.example:/a"),
    ],
)
def test_unusual_request_targets_go_to_the_library(method: str, url: str) -> None:
    assert request_derived(method, url) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"x-road-id": " padded"},
        {"x-road-id": "padded\t"},
        {"x-road-id": "tab\tinside"},
        {"x-road-id": ""},
        {"x-road-id": "caf\u00e9"},
        {"x-road-id": "line\r\nfold"},
        {"x-road-id": "a", "X-Road-Id": "b"},
    ],
)
def test_unusual_field_values_go_to_the_library(headers: dict[str, str]) -> None:
    assert field_components(headers, ["x-road-id"]) is None


def test_absent_fields_are_skipped_in_the_given_order() -> None:
    headers = {"x-road-id": "m", "content-type": "application/json"}

    fields = field_components(headers, ["content-type", "x-road-client", "x-road-id"])

    assert fields == [("content-type", "application/json"), ("x-road-id", "m")]


@pytest.mark.parametrize("status", [99, 1000])
def test_status_outside_three_digits_goes_to_the_library(status: int) -> None:
    assert response_derived(status) is None


def test_string_parameters_are_escaped() -> None:
    built = signature_base([("@status", "200")], [("keyid", 'a"b\\c')])

    assert built is not None
    assert built[1] == '("@status");keyid="a\\"b\\\\c"'


@pytest.mark.parametrize("value", ["caf\u00e9", "tab\there", True])
def test_unusual_parameters_go_to_the_library(value: Any) -> None:
    assert signature_base([("@status", "200")], [("keyid", value)]) is None
