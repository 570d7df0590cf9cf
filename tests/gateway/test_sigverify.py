"""The strict signature form: what it accepts, RFC 9421 vectors, no library needed."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

from gateway import sigbase, signing, verifying
from gateway.digest import check_content_digest, content_digest
from gateway.directory import RegisteredKey
from gateway.errors import AuthenticationError, Reason, UpstreamError
from gateway.keyring import SigningKey
from gateway.signing import TAG, sign_request, sign_response
from gateway.sigverify import (
    Refused,
    VerifiedSignature,
    check_times,
    digest_matches,
    parse,
    parse_tagged,
    verify,
)
from gateway.verifying import verify_request
from gateway.verifying import verify_response as signing_verify_response

NOW = 1796378400
URL = "https://registry.wbsed.internal:8443/api/students/by-udise/19110900503?x=1"
BODY = b'{"school": "19110900503"}'
HEADERS = {
    "content-type": "application/json",
    "x-road-client": "WB/GOV/WCD/kanyashree",
    "x-road-id": "6f1c2a9e-0b7d-4c55-9a31-2e8d7c4b1f00",
}
REQUEST_COMPONENTS = ["@method", "@target-uri", "content-digest", *HEADERS]
KNOWN = frozenset({"@status", "content-digest", "content-type", "x-road-id"})
INPUT = (
    'mediator=("@status" "content-digest");created=1796378400;keyid="node-ed"'
    ';alg="ed25519";tag="shiksha-mediator"'
)
SIGNATURE = f"mediator=:{base64.b64encode(bytes(64)).decode()}:"

# RFC 9421 appendix B.1.3 (test-key-ecc-p256, public) and B.2.4 (a response
# signed with it); B.1.4 (test-key-ed25519) and B.2.6 (a request signed with it).
RFC_P256_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----
"""
RFC_B24_INPUT = (
    'sig-b24=("@status" "content-type" "content-digest" "content-length")'
    ';created=1618884473;keyid="test-key-ecc-p256"'
)
RFC_B24_SIGNATURE = (
    "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCd"
    "lYUEkLIj+32oiasw==:"
)
RFC_GOOD_DOG = b'{"message": "good dog"}'
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
RFC_CREATED = 1618884473


def _ed25519() -> tuple[
    ed25519.Ed25519PrivateKey, SigningKey, dict[str, RegisteredKey]
]:
    private = ed25519.Ed25519PrivateKey.generate()
    registered = RegisteredKey("node-ed", "EdDSA", private.public_key())
    return private, SigningKey("node-ed", "ed25519", private), {"node-ed": registered}


def _p256() -> tuple[ec.EllipticCurvePrivateKey, SigningKey, dict[str, RegisteredKey]]:
    private = ec.generate_private_key(ec.SECP256R1())
    registered = RegisteredKey("node-ec", "ES256", private.public_key())
    signer = SigningKey("node-ec", "ecdsa-p256-sha256", private)
    return private, signer, {"node-ec": registered}


ED_PRIVATE, ED_KEY, ED_KEYS = _ed25519()
_, EC_KEY, EC_KEYS = _p256()
KEYS = {"ed25519": (ED_KEY, ED_KEYS), "p256": (EC_KEY, EC_KEYS)}


# -- the strict form -------------------------------------------------------------------


def test_own_form_is_parsed() -> None:
    signed = parse(INPUT, SIGNATURE, KNOWN)

    assert signed is not None
    assert signed.components == ("@status", "content-digest")
    assert (signed.keyid, signed.alg, signed.tag) == ("node-ed", "ed25519", TAG)
    assert (signed.created, signed.expires, signed.nonce) == (NOW, None, None)
    assert signed.text == INPUT.removeprefix("mediator=")
    assert signed.signature == bytes(64)


@pytest.mark.parametrize(
    ("signature_input", "signature"),
    [
        (
            'sig-1=("content-digest" "@status");created=1;keyid="k";alg="ed25519"'
            ';expires=2;nonce="a b;c=(d)";tag="t"',
            "sig-1=::",
        ),
        ('*x.y_z-1=();keyid=""', "*x.y_z-1=:AAAA:"),
        ('a=("x-road-id");keyid="k";created=0', "a=:AA==:"),
    ],
)
def test_plain_variants_are_parsed(signature_input: str, signature: str) -> None:
    assert parse(signature_input, signature, KNOWN) is not None


@pytest.mark.parametrize(
    "signature_input",
    [
        pytest.param(INPUT + ', other=("@status");tag="x"', id="second-member"),
        pytest.param(INPUT.replace("mediator=", "other="), id="label-differs"),
        pytest.param(INPUT.replace("mediator=", "Mediator="), id="upper-case-label"),
        pytest.param(" " + INPUT, id="leading-space"),
        pytest.param(INPUT + " ", id="trailing-space"),
        pytest.param(INPUT.replace(";keyid", "; keyid"), id="space-after-semicolon"),
        pytest.param(INPUT.replace('("@', '( "@'), id="space-in-list"),
        pytest.param(INPUT.replace('" "', '"  "'), id="two-spaces"),
        pytest.param(INPUT.replace('"@status"', '"@Status"'), id="upper-case-id"),
        pytest.param(INPUT.replace('"@status"', '"date"'), id="unknown-id"),
        pytest.param(INPUT.replace('"@status"', '"content-digest"'), id="repeated-id"),
        pytest.param(INPUT.replace('digest"', 'digest";sf'), id="id-parameter"),
        pytest.param(INPUT.replace('"@status"', "@status"), id="unquoted-id"),
        pytest.param(INPUT.replace('"node-ed"', "node-ed"), id="token-keyid"),
        pytest.param(INPUT.replace('"node-ed"', '"no\\"de"'), id="escaped-keyid"),
        pytest.param(INPUT.replace('"node-ed"', '"n\u00f6de"'), id="non-ascii-keyid"),
        pytest.param(INPUT.replace('"node-ed"', '"tab\tkeyid"'), id="tab-keyid"),
        pytest.param(INPUT.replace('keyid="node-ed";', ""), id="no-keyid"),
        pytest.param(INPUT.replace("=1796378400", "=01796378400"), id="leading-zero"),
        pytest.param(INPUT.replace("=1796378400", "=-1"), id="negative"),
        pytest.param(INPUT.replace("=1796378400", "=1" + "0" * 15), id="16-digits"),
        pytest.param(INPUT.replace("=1796378400", "=1796378400.5"), id="decimal"),
        pytest.param(
            INPUT.replace("=1796378400", '="1796378400"'), id="string-created"
        ),
        pytest.param(INPUT.replace("created=1796378400", "created"), id="flag"),
        pytest.param(INPUT.replace('"node-ed"', "7"), id="integer-keyid"),
        pytest.param(INPUT + ';foo="x"', id="unknown-parameter"),
        pytest.param(INPUT + ';keyid="other"', id="repeated-parameter"),
        pytest.param(INPUT + ";", id="trailing-semicolon"),
        pytest.param(INPUT.replace("(", "").replace(")", ""), id="no-inner-list"),
        pytest.param(INPUT + "\n", id="newline"),
    ],
)
def test_other_signature_inputs_are_left_to_the_library(signature_input: str) -> None:
    assert parse(signature_input, SIGNATURE, KNOWN) is None


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(SIGNATURE.replace("==:", ":"), id="unpadded"),
        pytest.param(SIGNATURE.replace("AAAA", "AA!A", 1), id="bad-character"),
        pytest.param(SIGNATURE.replace("AAAA", "AA-_", 1), id="url-alphabet"),
        pytest.param(SIGNATURE.replace("==:", "===:"), id="three-pads"),
        pytest.param(SIGNATURE.replace("==:", "=A:"), id="data-after-pad"),
        pytest.param(SIGNATURE.rstrip(":"), id="unterminated"),
        pytest.param(SIGNATURE + ";x=1", id="parameter"),
        pytest.param(SIGNATURE + ", other=:AAAA:", id="second-member"),
        pytest.param(SIGNATURE.replace("mediator", "other"), id="label-differs"),
        pytest.param(SIGNATURE.replace(":", '"', 2), id="string"),
        pytest.param(" " + SIGNATURE, id="leading-space"),
    ],
)
def test_other_signatures_are_left_to_the_library(signature: str) -> None:
    assert parse(INPUT, signature, KNOWN) is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"signature-input": INPUT}, id="no-signature"),
        pytest.param({"signature": SIGNATURE}, id="no-signature-input"),
        pytest.param(
            {"signature-input": INPUT, "signature": SIGNATURE, "Signature": SIGNATURE},
            id="two-signature-lines",
        ),
        pytest.param(
            {"signature-input": INPUT.replace(TAG, "other"), "signature": SIGNATURE},
            id="other-tag",
        ),
        pytest.param(
            {
                "signature-input": INPUT.replace(';tag="shiksha-mediator"', ""),
                "signature": SIGNATURE,
            },
            id="no-tag",
        ),
    ],
)
def test_untagged_or_repeated_fields_are_left_to_the_library(
    headers: dict[str, str],
) -> None:
    assert parse_tagged(headers, tag=TAG, known=KNOWN) is None


def test_field_names_are_matched_in_any_case() -> None:
    headers = {"Signature-Input": INPUT, "SIGNATURE": SIGNATURE}

    assert parse_tagged(headers, tag=TAG, known=KNOWN) is not None


# -- times and digests -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "expires", "log_reason"),
    [
        (None, None, "created_missing"),
        ("1796378400", None, "created_missing"),
        (True, None, "created_missing"),
        (NOW + 61, None, "created_in_future"),
        (NOW - 301, None, "signature_too_old"),
        (NOW, "later", "expires_malformed"),
        (NOW, NOW - 61, "signature_expired"),
    ],
)
def test_times_are_refused(created: object, expires: object, log_reason: str) -> None:
    with pytest.raises(Refused) as info:
        check_times(created, expires, now=NOW, max_age_s=300)

    assert info.value.log_reason == log_reason
    assert info.value.too_old is (
        log_reason in {"signature_too_old", "signature_expired"}
    )


@pytest.mark.parametrize(
    ("created", "expires"), [(NOW + 60, None), (NOW - 300, None), (NOW, NOW - 60)]
)
def test_times_at_the_limits_are_accepted(created: int, expires: int | None) -> None:
    assert check_times(created, expires, now=NOW, max_age_s=300) == created


@pytest.mark.parametrize(
    "header",
    [
        content_digest(BODY),
        content_digest(b"other"),
        f"sha-512=:{base64.b64encode(hashlib.sha512(BODY).digest()).decode()}:",
        content_digest(BODY).replace("=:", "=: "),
        content_digest(BODY).upper(),
        f"{content_digest(BODY)}, {content_digest(BODY)}",
        None,
        "",
    ],
)
def test_digest_matches_as_the_full_check(header: str | None) -> None:
    assert digest_matches(header, BODY) is check_content_digest(header, BODY)


# -- RFC 9421 appendix B ---------------------------------------------------------------


def _rfc_b24() -> tuple[Any, dict[str, str]]:
    key = serialization.load_pem_public_key(RFC_P256_PUBLIC)
    digest = base64.b64encode(hashlib.sha512(RFC_GOOD_DOG).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "Content-Digest": f"sha-512=:{digest}:",
        "Content-Length": "23",
        "Signature-Input": RFC_B24_INPUT,
        "Signature": RFC_B24_SIGNATURE,
    }
    return key, headers


def _verify_rfc_b24(status: int) -> VerifiedSignature | None:
    key, headers = _rfc_b24()
    known = {"@status", "content-type", "content-digest", "content-length"}
    signed = parse(RFC_B24_INPUT, RFC_B24_SIGNATURE, known)
    assert signed is not None
    return verify(
        signed,
        key=key,
        algorithm="ecdsa-p256-sha256",
        derived=sigbase.response_derived(status),
        headers=headers,
        required=["@status", "content-digest"],
        now=RFC_CREATED,
        max_age_s=300,
    )


def test_rfc9421_b24_ecdsa_p256_response_verifies() -> None:
    verified = _verify_rfc_b24(200)

    assert verified == VerifiedSignature(
        "test-key-ecc-p256", "ecdsa-p256-sha256", RFC_CREATED, None
    )


def test_rfc9421_b24_with_another_status_is_refused() -> None:
    with pytest.raises(Refused, match="signature_invalid"):
        _verify_rfc_b24(201)


def test_rfc9421_b24_verifies_with_the_library_too() -> None:
    key, headers = _rfc_b24()
    resolver = MappingKeyResolver(
        public_keys={"test-key-ecc-p256": key}, private_keys={}
    )
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ECDSA_P256_SHA256, key_resolver=resolver
    )
    response = signing.ResponseView(200, signing.Fields(headers.items()))

    assert verifier.verify(response, max_age=None)[0].label == "sig-b24"


def _verify_rfc_b26(path: str) -> VerifiedSignature | None:
    private = serialization.load_pem_private_key(RFC_ED25519_PRIVATE, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    headers = {
        "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "Content-Type": "application/json",
        "Content-Length": "18",
    }
    known = {"date", "@method", "@path", "@authority", "content-type", "content-length"}
    signed = parse(RFC_B26_INPUT, RFC_B26_SIGNATURE, known)
    assert signed is not None
    derived = [("@method", "POST"), ("@path", path), ("@authority", "example.com")]
    return verify(
        signed,
        key=private.public_key(),
        algorithm="ed25519",
        derived=derived,
        headers=headers,
        required=["@method"],
        now=RFC_CREATED + 1,
        max_age_s=300,
    )


def test_rfc9421_b26_ed25519_request_verifies() -> None:
    verified = _verify_rfc_b26("/foo")

    assert verified == VerifiedSignature(
        "test-key-ed25519", "ed25519", RFC_CREATED, None
    )


def test_rfc9421_b26_with_another_path_is_refused() -> None:
    with pytest.raises(Refused, match="signature_invalid"):
        _verify_rfc_b26("/bar")


# -- decided without the library -------------------------------------------------------


class _Unused:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the library verified the signature")


@pytest.fixture
def no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the library parses or verifies a signature."""
    monkeypatch.setattr(verifying, "_Verifier", _Unused)
    monkeypatch.setattr(verifying, "_tagged_keyid", _Unused)


def _request(headers: dict[str, str], keys: Any, **changes: Any) -> Any:
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


def _crafted(
    params: list[sigbase.Param], signature: bytes | None = None
) -> dict[str, str]:
    """A request signed over our components with the given parameters, in order."""
    digest = content_digest(BODY)
    derived = sigbase.request_derived("POST", URL)
    assert derived is not None
    built = sigbase.signature_base(
        [*derived, ("content-digest", digest), *HEADERS.items()], params
    )
    assert built is not None
    value = ED_PRIVATE.sign(built[0]) if signature is None else signature
    return {
        **HEADERS,
        "content-digest": digest,
        "signature-input": f"sig={built[1]}",
        "signature": f"sig=:{base64.b64encode(value).decode()}:",
    }


@pytest.mark.usefixtures("no_library")
@pytest.mark.parametrize("name", sorted(KEYS))
def test_own_request_is_verified_without_the_library(name: str) -> None:
    key, keys = KEYS[name]
    added = sign_request(
        key, method="POST", url=URL, headers=HEADERS, body=BODY, created=NOW, nonce="n"
    )

    verified = _request({**HEADERS, **added}, keys)

    assert (verified.kid, verified.created, verified.nonce) == (key.kid, NOW, "n")


@pytest.mark.usefixtures("no_library")
@pytest.mark.parametrize("name", sorted(KEYS))
def test_own_response_is_verified_without_the_library(name: str) -> None:
    key, keys = KEYS[name]
    headers = {"content-type": "application/json", "x-road-request-hash": "h" * 88}
    added = sign_response(key, status=200, headers=headers, body=BODY, created=NOW)

    verified = signing_verify_response(
        status=200,
        headers={**headers, **added},
        body=BODY,
        keys=keys,
        max_age_s=300,
        now=NOW,
    )

    assert verified.algorithm == key.algorithm


def test_crafted_request_in_another_order_verifies_without_the_library(
    no_library: None,
) -> None:
    params: list[sigbase.Param] = [
        ("tag", TAG),
        ("nonce", "n-2"),
        ("keyid", "node-ed"),
        ("expires", NOW + 60),
        ("created", NOW),
    ]

    verified = _request(_crafted(params), ED_KEYS)

    assert verified == VerifiedSignature("node-ed", "ed25519", NOW, "n-2")


_TAGGED: list[sigbase.Param] = [("keyid", "node-ed"), ("tag", TAG)]


@pytest.mark.usefixtures("no_library")
@pytest.mark.parametrize(
    ("headers", "changes", "reason", "log_reason"),
    [
        pytest.param(
            _crafted([("created", NOW), *_TAGGED]),
            {"now": NOW + 301},
            Reason.SIGNATURE_TOO_OLD,
            "signature_too_old",
            id="too-old",
        ),
        pytest.param(
            _crafted([("created", NOW), *_TAGGED]),
            {"now": NOW - 61},
            Reason.INVALID_SIGNATURE,
            "created_in_future",
            id="future",
        ),
        pytest.param(
            _crafted(_TAGGED),
            {},
            Reason.INVALID_SIGNATURE,
            "created_missing",
            id="no-created",
        ),
        pytest.param(
            _crafted([("created", NOW), ("expires", NOW - 61), *_TAGGED]),
            {},
            Reason.SIGNATURE_TOO_OLD,
            "signature_expired",
            id="expired",
        ),
        pytest.param(
            _crafted([("created", NOW), ("alg", "ecdsa-p256-sha256"), *_TAGGED]),
            {},
            Reason.INVALID_SIGNATURE,
            "signature_invalid",
            id="alg-disagrees",
        ),
        pytest.param(
            {**_crafted([("created", NOW), *_TAGGED]), "x-road-id": "other"},
            {},
            Reason.INVALID_SIGNATURE,
            "signature_invalid",
            id="header-changed",
        ),
        pytest.param(
            _crafted([("created", NOW), *_TAGGED], signature=bytes(64)),
            {},
            Reason.INVALID_SIGNATURE,
            "signature_invalid",
            id="zero-signature",
        ),
        pytest.param(
            _crafted([("created", NOW), *_TAGGED], signature=b"short"),
            {},
            Reason.INVALID_SIGNATURE,
            "signature_invalid",
            id="short-signature",
        ),
        pytest.param(
            _crafted([("created", NOW), *_TAGGED]),
            {"body": b"{}"},
            Reason.INVALID_SIGNATURE,
            "digest_mismatch",
            id="body-changed",
        ),
    ],
)
def test_refusals_without_the_library(
    headers: dict[str, str], changes: dict[str, Any], reason: Reason, log_reason: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        _request(headers, ED_KEYS, **changes)

    assert (info.value.reason, info.value.log_reason) == (reason, log_reason)


def test_uncovered_header_is_refused_without_the_library(no_library: None) -> None:
    headers = {"content-type": "application/json"}
    added = sign_response(ED_KEY, status=200, headers=headers, body=BODY, created=NOW)
    received = {**headers, **added, "x-road-id": "added-later"}

    with pytest.raises(UpstreamError) as info:
        signing_verify_response(
            status=200,
            headers=received,
            body=BODY,
            keys=ED_KEYS,
            max_age_s=300,
            now=NOW,
        )

    assert info.value.log_reason == "signature_invalid"


@pytest.mark.parametrize(
    ("registered", "headers"),
    [
        pytest.param(
            RegisteredKey("node-ed", "ES256", ED_PRIVATE.public_key()),
            {},
            id="key-of-another-type",
        ),
        pytest.param(
            RegisteredKey(
                "node-ed", "ES256", ec.generate_private_key(ec.SECP384R1()).public_key()
            ),
            {},
            id="key-on-another-curve",
        ),
        pytest.param(
            RegisteredKey("node-ed", "EdDSA", ED_PRIVATE.public_key()),
            {"x-road-id": " padded"},
            id="padded-field",
        ),
    ],
)
def test_unusual_keys_and_values_go_to_the_library(
    registered: RegisteredKey, headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verifying, "_Verifier", _Unused)
    received = {**_crafted([("created", NOW), *_TAGGED]), **headers}

    with pytest.raises(AssertionError, match="library verified"):
        _request(received, {"node-ed": registered})
