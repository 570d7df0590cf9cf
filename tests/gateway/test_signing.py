"""RFC 9421 signatures and RFC 9530 digests: RFC vectors, round trips and tampering.

Every test runs twice: once as the node runs, where a signature in the strict
form is read and checked by :mod:`gateway.sigverify`, and once with that form
never recognised, so that the library reads and checks every signature.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_message_signatures import HTTPMessageSigner, algorithms

from gateway import signing, sigverify
from gateway.directory import RegisteredKey
from gateway.errors import AuthenticationError, NodeError, Reason, UpstreamError
from gateway.keyring import SigningKey
from gateway.signing import (
    OPTIONAL_REQUEST,
    OPTIONAL_RESPONSE,
    Fields,
    RequestView,
    ResponseView,
    _sign,
    check_content_digest,
    content_digest,
    request_hash,
    sign_request,
    sign_response,
    view_fields,
)
from gateway.verifying import verify_request, verify_response

NOW = 1796378400
URL = "https://registry.wbsed.internal:8443/api/students/by-udise/19110900503?x=1"
BODY = b'{"school": "19110900503"}'
HEADERS = {
    "content-type": "application/json",
    "x-road-client": "WB/GOV/WCD/kanyashree",
    "x-road-id": "6f1c2a9e-0b7d-4c55-9a31-2e8d7c4b1f00",
    "accept": "application/json",
}

# RFC 9421 appendix B.1.4 (test-key-ed25519) and B.2.6 (its signature).
RFC_ED25519_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vu"
    "Qv5lIp5WPpBKRCw==:"
)
RFC_HELLO = b'{"hello": "world"}'


def _ed25519() -> tuple[SigningKey, dict[str, RegisteredKey]]:
    private = ed25519.Ed25519PrivateKey.generate()
    registered = RegisteredKey("node-ed", "EdDSA", private.public_key())
    return SigningKey("node-ed", "ed25519", private), {"node-ed": registered}


def _p256() -> tuple[SigningKey, dict[str, RegisteredKey]]:
    private = ec.generate_private_key(ec.SECP256R1())
    registered = RegisteredKey("node-ec", "ES256", private.public_key())
    return SigningKey("node-ec", "ecdsa-p256-sha256", private), {"node-ec": registered}


KEYS = {"ed25519": _ed25519(), "p256": _p256()}


def _no_strict_form(*_args: Any, **_kwargs: Any) -> None:
    return None


@pytest.fixture(autouse=True, params=["sigverify", "library"])
def verify_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Verify through the strict form where it applies, or through the library only."""
    if request.param == "library":
        monkeypatch.setattr(sigverify, "parse_tagged", _no_strict_form)
    return str(request.param)


def _signed(
    key: SigningKey, headers: dict[str, str] | None = None, **kwargs: Any
) -> dict[str, str]:
    base = dict(HEADERS if headers is None else headers)
    added = sign_request(
        key, method="POST", url=URL, headers=base, body=BODY, created=NOW, **kwargs
    )
    return {**base, **added}


def _verify(headers: dict[str, str], keys: Any, **changes: Any) -> Any:
    args: dict[str, Any] = {
        "method": "POST",
        "url": URL,
        "headers": headers,
        "body": BODY,
        "keys": keys,
        "max_age_s": 300,
        "now": NOW + 1,
    }
    args.update(changes)
    return verify_request(**args)


# -- RFC vectors -----------------------------------------------------------------------


def test_rfc9421_b26_ed25519_signature_is_reproduced() -> None:
    private = serialization.load_pem_private_key(RFC_ED25519_PRIVATE, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    key = SigningKey("test-key-ed25519", "ed25519", private)
    view = RequestView(
        "POST",
        "http://example.com/foo?param=Value&Pet=dog",
        Fields(
            [
                ("Host", "example.com"),
                ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
                ("Content-Type", "application/json"),
                ("Content-Length", "18"),
            ]
        ),
    )
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)

    prepared = signer.prepare(
        view,
        key_id="test-key-ed25519",
        created=datetime.datetime.fromtimestamp(1618884473, datetime.UTC),
        label="sig-b26",
        include_alg=False,
        covered_component_ids=(
            "date",
            "@method",
            "@path",
            "@authority",
            "content-type",
            "content-length",
        ),
    )
    signer.apply(view, prepared, key.sign(prepared.signature_base))

    assert view.headers.get("signature-input") == RFC_B26_INPUT
    assert view.headers.get("signature") == RFC_B26_SIGNATURE


def test_rfc9530_content_digest_of_the_rfc_body() -> None:
    assert content_digest(RFC_HELLO) == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )


# -- Content-Digest --------------------------------------------------------------------

SHA512_HELLO = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwE"
    "mTHWXvJwew==:"
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (content_digest(RFC_HELLO), True),
        (SHA512_HELLO, True),
        (f"{content_digest(RFC_HELLO)}, {SHA512_HELLO}", True),
        (content_digest(b"other"), False),
        (f"{content_digest(RFC_HELLO)}, {content_digest(b'x')}", False),
        (None, False),
        ("", False),
        ("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", False),
        ("md5=:AAAAAAAAAAAAAAAAAAAAAA==:", False),
        ("sha-256=:AAAA:", False),
        (f"{content_digest(RFC_HELLO)};p=1", False),
        (f"{content_digest(RFC_HELLO)}, {content_digest(RFC_HELLO)}", False),
        ("sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, md5=:AA==:", False),
        ("sha-256=:\u00e9:", False),
    ],
)
def test_check_content_digest(header: str | None, expected: bool) -> None:
    assert check_content_digest(header, RFC_HELLO) is expected


# -- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(KEYS))
def test_signed_request_verifies(name: str) -> None:
    key, keys = KEYS[name]

    result = _verify(_signed(key, nonce="n-1"), keys)

    assert result.kid == key.kid
    assert result.created == NOW
    assert result.nonce == "n-1"
    assert result.algorithm == key.algorithm


def test_signature_covers_the_policy_components() -> None:
    key, _ = KEYS["ed25519"]

    signature_input = _signed(key)["signature-input"]

    assert signature_input.startswith(
        'mediator=("@method" "@target-uri" "content-digest" "content-type" '
        '"x-road-client" "x-road-id");created=1796378400;keyid="node-ed";'
        'alg="ed25519";tag="shiksha-mediator"'
    )


def test_ecdsa_signature_is_raw_r_and_s() -> None:
    key, _ = KEYS["p256"]

    assert len(key.sign(b"data")) == 64


def test_keys_can_be_a_resolver() -> None:
    key, keys = KEYS["ed25519"]

    result = _verify(_signed(key), keys.get)

    assert result.kid == key.kid


# -- tampering and policy --------------------------------------------------------------


def _tamper_header(name: str, value: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda headers: {**headers, name: value}


def _drop(name: str) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda headers: {k: v for k, v in headers.items() if k != name}


@pytest.mark.parametrize(
    ("change", "verify_changes", "log_reason"),
    [
        (None, {"body": b'{"school": "19110900504"}'}, "digest_mismatch"),
        (None, {"method": "PUT"}, "signature_invalid"),
        (None, {"url": URL.replace("x=1", "x=2")}, "signature_invalid"),
        (_tamper_header("x-road-client", "WB/GOV/FIN/ifms"), {}, "signature_invalid"),
        (_tamper_header("content-type", "text/plain"), {}, "signature_invalid"),
        (_tamper_header("x-road-id", "other"), {}, "signature_invalid"),
        (_drop("signature"), {}, "signature_invalid"),
        (_drop("signature-input"), {}, "signature_missing"),
        (_drop("content-digest"), {}, "digest_mismatch"),
        (_tamper_header("content-digest", content_digest(b"x")), {}, "digest_mismatch"),
        (None, {"keys": {}}, "key_unknown"),
    ],
)
def test_tampered_request_is_invalid(
    change: Callable[[dict[str, str]], dict[str, str]] | None,
    verify_changes: dict[str, Any],
    log_reason: str,
) -> None:
    key, keys = KEYS["ed25519"]
    headers = _signed(key)
    if change is not None:
        headers = change(headers)
    changes = dict(verify_changes)

    with pytest.raises(AuthenticationError) as info:
        _verify(headers, changes.pop("keys", keys), **changes)

    assert info.value.reason is Reason.INVALID_SIGNATURE
    if log_reason:
        assert info.value.log_reason == log_reason


def test_unsigned_header_added_later_must_be_covered() -> None:
    key, keys = KEYS["ed25519"]
    headers = _signed(key, {"content-type": "application/json"})
    headers["x-road-client"] = "WB/GOV/FIN/ifms"

    with pytest.raises(AuthenticationError, match="invalid_signature"):
        _verify(headers, keys)


def test_wrong_key_with_same_kid_is_invalid() -> None:
    key, _ = KEYS["ed25519"]
    other = ed25519.Ed25519PrivateKey.generate().public_key()

    with pytest.raises(AuthenticationError) as info:
        _verify(_signed(key), {"node-ed": RegisteredKey("node-ed", "EdDSA", other)})

    assert info.value.log_reason == "signature_invalid"


def test_alg_parameter_disagreeing_with_registered_key_is_invalid() -> None:
    key, _ = KEYS["ed25519"]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    registered = {"node-ed": RegisteredKey("node-ed", "RS256", rsa_key.public_key())}

    with pytest.raises(AuthenticationError) as info:
        _verify(_signed(key), registered)

    assert info.value.reason is Reason.INVALID_SIGNATURE


def test_signature_without_our_tag_is_not_selected() -> None:
    key, keys = KEYS["ed25519"]
    headers = _signed(key)
    headers["signature-input"] = headers["signature-input"].replace(
        'tag="shiksha-mediator"', 'tag="other"'
    )

    with pytest.raises(AuthenticationError) as info:
        _verify(headers, keys)

    assert info.value.log_reason == "signature_missing"


@pytest.mark.parametrize(
    ("now", "reason", "log_reason"),
    [
        pytest.param(NOW - 1, None, None, id="C30-H-created-1s-ahead"),
        pytest.param(NOW - 60, None, None, id="created-60s-ahead"),
        pytest.param(
            NOW - 61,
            Reason.INVALID_SIGNATURE,
            "created_in_future",
            id="created-61s-ahead",
        ),
        pytest.param(NOW + 300, None, None, id="max-age"),
        pytest.param(
            NOW + 3600,
            Reason.SIGNATURE_TOO_OLD,
            "signature_too_old",
            id="C30-I-hour-old",
        ),
    ],
)
def test_created_skew_and_age(
    now: int, reason: Reason | None, log_reason: str | None
) -> None:
    key, keys = KEYS["ed25519"]
    headers = _signed(key)

    if reason is None:
        assert _verify(headers, keys, now=now).created == NOW
        return
    with pytest.raises(AuthenticationError) as info:
        _verify(headers, keys, now=now)
    assert info.value.reason is reason
    assert info.value.log_reason == log_reason


# -- responses -------------------------------------------------------------------------


def _signed_response(key: SigningKey, request_hash_value: str) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "x-road-id": "6f1c2a9e",
        "x-road-request-hash": request_hash_value,
    }
    added = sign_response(key, status=200, headers=headers, body=BODY, created=NOW)
    return {**headers, **added}


def test_request_hash_is_base64_sha512_of_the_signature_headers() -> None:
    key, _ = KEYS["ed25519"]
    signed = _signed(key)

    value = request_hash(signed["signature-input"], signed["signature"])

    assert len(value) == 88
    assert value != request_hash(signed["signature-input"], signed["signature"] + " ")


@pytest.mark.parametrize("name", sorted(KEYS))
def test_signed_response_verifies_and_binds_the_request(name: str) -> None:
    key, keys = KEYS[name]
    bound = request_hash("a", "b")
    headers = _signed_response(key, bound)

    result = verify_response(
        status=200,
        headers=headers,
        body=BODY,
        keys=keys,
        max_age_s=300,
        now=NOW,
        expected_request_hash=bound,
    )

    assert result.kid == key.kid
    assert "x-road-request-hash" in headers["signature-input"]


@pytest.mark.parametrize(
    ("changes", "log_reason"),
    [
        ({"status": 201}, "signature_invalid"),
        ({"body": b"{}"}, "digest_mismatch"),
        ({"expected_request_hash": request_hash("a", "c")}, "request_hash_mismatch"),
        ({"now": NOW + 301}, "signature_too_old"),
        ({"keys": {}}, "key_unknown"),
    ],
)
def test_tampered_response_is_upstream_signature_invalid(
    changes: dict[str, Any], log_reason: str
) -> None:
    key, keys = KEYS["ed25519"]
    args: dict[str, Any] = {
        "status": 200,
        "headers": _signed_response(key, request_hash("a", "b")),
        "body": BODY,
        "keys": keys,
        "max_age_s": 300,
        "now": NOW,
        "expected_request_hash": request_hash("a", "b"),
    }
    args.update(changes)

    with pytest.raises(UpstreamError) as info:
        verify_response(**args)

    assert info.value.reason is Reason.UPSTREAM_SIGNATURE_INVALID
    assert info.value.log_reason == log_reason


def test_response_request_hash_header_is_covered() -> None:
    key, keys = KEYS["ed25519"]
    headers = _signed_response(key, request_hash("a", "b"))
    headers["x-road-request-hash"] = request_hash("a", "c")

    with pytest.raises(UpstreamError):
        verify_response(
            status=200, headers=headers, body=BODY, keys=keys, max_age_s=300, now=NOW
        )


# -- the direct signature base against the library's -----------------------------------


def _library_request(key: SigningKey, headers: dict[str, str], url: str) -> Any:
    view = RequestView("POST", url, view_fields(headers, OPTIONAL_REQUEST))
    covered = ["@method", "@target-uri", "content-digest"]
    return _sign(
        key,
        view=view,
        covered=covered,
        optional=OPTIONAL_REQUEST,
        body=BODY,
        created=NOW,
        nonce="n-7",
    )


def _library_response(key: SigningKey, headers: dict[str, str], status: int) -> Any:
    view = ResponseView(status, view_fields(headers, OPTIONAL_RESPONSE))
    return _sign(
        key,
        view=view,
        covered=["@status", "content-digest"],
        optional=OPTIONAL_RESPONSE,
        body=BODY,
        created=NOW,
        nonce=None,
    )


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        (URL, HEADERS),
        ("http://127.0.0.1:8701/api/students/verify-enrolment", {"x-road-id": "m"}),
        ("http://Registry.Example", {"Content-Type": "application/json"}),
        ("http://[::1]:8701/api", HEADERS),
        (URL, {**HEADERS, "x-road-id": " padded "}),
    ],
)
def test_request_signature_equals_the_library_signature(
    url: str, headers: dict[str, str]
) -> None:
    key, _keys = KEYS["ed25519"]

    ours = sign_request(
        key,
        method="POST",
        url=url,
        headers=headers,
        body=BODY,
        created=NOW,
        nonce="n-7",
    )

    # Ed25519 is deterministic: equal signatures mean byte-equal signature bases.
    assert ours == _library_request(key, headers, url)


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"content-type": "application/json", "x-road-id": "m"}),
        (502, {"x-road-id": "m", "x-road-request-hash": "h" * 88}),
        (204, {}),
        (200, {"x-road-id": "m", "X-Road-Error": "Server.x", "Etag": '"v1"'}),
    ],
)
def test_response_signature_equals_the_library_signature(
    status: int, headers: dict[str, str]
) -> None:
    key, _keys = KEYS["ed25519"]

    ours = sign_response(key, status=status, headers=headers, body=BODY, created=NOW)

    assert ours == _library_response(key, headers, status)


def test_non_ascii_value_is_refused_by_the_library_as_before() -> None:
    key, _keys = KEYS["ed25519"]
    headers = {"x-road-id": "caf\u00e9"}

    with pytest.raises(NodeError, match="internal_error"):
        sign_response(key, status=200, headers=headers, body=BODY)


def test_ecdsa_fast_signature_verifies_with_the_library() -> None:
    key, keys = KEYS["p256"]
    headers = _signed(key, nonce="n-7")
    library = _library_request(key, HEADERS, URL)

    assert headers["signature-input"] == library["signature-input"]
    assert _verify(headers, keys).kid == "node-ec"


class _NoLibrarySigner:
    def __init__(self, **_kwargs: Any) -> None:
        raise AssertionError("the library signer was used")


def test_own_messages_are_signed_without_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "HTTPMessageSigner", _NoLibrarySigner)
    key, keys = KEYS["ed25519"]

    headers = _signed(key)

    assert _verify(headers, keys).kid == "node-ed"


def test_unusual_messages_fall_back_to_the_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(signing, "HTTPMessageSigner", _NoLibrarySigner)
    key, _keys = KEYS["ed25519"]

    with pytest.raises(AssertionError, match="library signer was used"):
        sign_request(key, method="POST", url="http://[::1]/a", headers={}, body=BODY)
