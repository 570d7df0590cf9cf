"""Client assertions: hostile inputs of C27, C29, C30, C32 and C33; happy paths."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from gateway.auth import (
    AuthenticatedClient,
    ClientAuthenticator,
    ClientKey,
    longest_use_ttl,
    make_assertion,
    safe_token_facts,
)
from gateway.directory import Directory, RegisteredKey, Subsystem
from gateway.errors import AuthenticationError, NodeError, Reason
from gateway.identifiers import ClientId
from gateway.replay import MemoryReplayCache
from gateway.settings import AuthSettings

NOW = 1796378400
AUDIENCE = "gw.mediator.example"
KANYASHREE = ClientId.parse("WB/GOV/WCD/kanyashree")
IFMS = ClientId.parse("WB/GOV/FIN/ifms")
EXAM = ClientId.parse("WB/GOV/SED/examboard")
MDM = ClientId.parse("WB/GOV/SED/mdmportal")

ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EXAM_KEY = ed25519.Ed25519PrivateKey.generate()
MDM_KEY = ed25519.Ed25519PrivateKey.generate()
ATTACKER_KEY = ed25519.Ed25519PrivateKey.generate()

CLIENT_KEYS = {
    KANYASHREE: ClientKey("k-2026-1", ED_KEY, "EdDSA"),
    IFMS: ClientKey("ifms-1", EC_KEY, "ES256"),
    EXAM: ClientKey("2026-1", EXAM_KEY, "EdDSA"),
    MDM: ClientKey("2026-1", MDM_KEY, "EdDSA"),
}
RSA_CLIENT = ClientId.parse("WB/GOV/SED/banglarshiksha")
CLIENT_KEYS[RSA_CLIENT] = ClientKey("bs-rsa", RSA_KEY, "RS256")


def _directory() -> Directory:
    subsystems = {
        client: Subsystem(
            client,
            "",
            {
                key.kid: RegisteredKey(
                    key.kid, key.jws_algorithm, key.private_key.public_key()
                )
            },
        )
        for client, key in CLIENT_KEYS.items()
    }
    return Directory("WB", subsystems, {})


def _authenticator(replay: MemoryReplayCache | None = None) -> ClientAuthenticator:
    settings = AuthSettings(audience=AUDIENCE, max_token_lifetime_s=300, leeway_s=60)
    return ClientAuthenticator(
        _directory(),
        settings,
        replay if replay is not None else MemoryReplayCache(),
        clock=lambda: NOW,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(client: ClientId = KANYASHREE, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": str(client),
        "sub": str(client),
        "aud": AUDIENCE,
        "iat": NOW - 10,
        "exp": NOW + 240,
        "jti": "J1",
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _token(
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    *,
    key: Any = ED_KEY,
    alg: str = "EdDSA",
) -> str:
    """A compact JWS with exactly this header, signed with ``key`` as ``alg``."""
    head = (
        header if header is not None else {"alg": alg, "kid": "k-2026-1", "typ": "JWT"}
    )
    body = claims if claims is not None else _claims()
    signing_input = (
        f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(body).encode())}"
    )
    algorithm = get_default_algorithms()[alg]
    signature = algorithm.sign(signing_input.encode(), algorithm.prepare_key(key))
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(
    header: dict[str, Any], claims: dict[str, Any], signature: str = ""
) -> str:
    head, body = (_b64(json.dumps(part).encode()) for part in (header, claims))
    return f"{head}.{body}.{signature}"


async def _fails(token: str | None, *, prefix: str = "Bearer ") -> AuthenticationError:
    authorization = None if token is None else prefix + token
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate(authorization)
    return info.value


async def _refused_then_genuine(
    bad: str, genuine: str
) -> tuple[AuthenticationError, AuthenticatedClient]:
    """Present ``bad`` and then ``genuine`` (same jti) to one authenticator."""
    authenticator = _authenticator()
    with pytest.raises(AuthenticationError) as info:
        await authenticator.authenticate(f"Bearer {bad}")
    return info.value, await authenticator.authenticate(f"Bearer {genuine}")


# -- happy paths -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("client", [KANYASHREE, IFMS, RSA_CLIENT])
async def test_assertion_of_each_algorithm_authenticates(client: ClientId) -> None:
    token = make_assertion(
        client_id=client, key=CLIENT_KEYS[client], audience=AUDIENCE, now=NOW, jti="a1"
    )

    result = await _authenticator().authenticate(f"Bearer {token}")

    assert result.client_id == client
    assert result.kid == CLIENT_KEYS[client].kid
    assert result.expires_at == NOW + 60
    assert result.jti_hash == hashlib.sha256(b"a1").hexdigest()


@pytest.mark.anyio
async def test_scheme_is_case_insensitive() -> None:
    token = _token()

    result = await _authenticator().authenticate(f"bEARER {token}")

    assert result.client_id == KANYASHREE


# -- C27: alg none and friends ---------------------------------------------------------

C27_TOKEN = (
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2lkcC5tZWRpYXRvci5leGFtcGxl"
    "L3JlYWxtcy9lZHUiLCJzdWIiOiJtZG0tcG9ydGFsIiwiYXVkIjoiZ3cubWVkaWF0b3IuZXhhbXBsZSIsImV4"
    "cCI6MTc5NjM3ODcwMCwiaWF0IjoxNzk2Mzc4MzQwLCJqdGkiOiI2ZjFjMmE5ZS0wYjdkLTRjNTUtOWEzMS0y"
    "ZThkN2M0YjFmMDAifQ."
)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "log_reason"),
    [
        pytest.param(C27_TOKEN, "alg_not_allowed", id="case-input"),
        pytest.param(
            _unsigned({"alg": "none"}, _claims()), "alg_not_allowed", id="none"
        ),
        pytest.param(
            _unsigned({"alg": "None"}, _claims()), "alg_not_allowed", id="None"
        ),
        pytest.param(
            _unsigned({"alg": "NONE"}, _claims()), "alg_not_allowed", id="NONE"
        ),
        pytest.param(
            _unsigned({"alg": "none", "kid": "k-2026-1"}, _claims(), "Z2FyYmFnZQ"),
            "alg_not_allowed",
            id="none-with-garbage-signature",
        ),
        pytest.param(_unsigned({"alg": ""}, _claims()), "alg_not_allowed", id="empty"),
        pytest.param(
            _unsigned({"kid": "k-2026-1"}, _claims()), "alg_not_allowed", id="no-alg"
        ),
        pytest.param(C27_TOKEN.rstrip("."), "malformed_token", id="two-segments"),
    ],
)
async def test_c27_unsigned_tokens_are_refused(token: str, log_reason: str) -> None:
    error = await _fails(token)

    assert error.reason is Reason.INVALID_TOKEN
    assert error.log_reason == log_reason
    assert error.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert token not in str(error)


# -- C29: kid injection and key binding ------------------------------------------------


def _hs256_empty_key(header: dict[str, Any]) -> str:
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims()).encode())}"
    )
    mac = hmac.new(b"", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "log_reason"),
    [
        pytest.param(
            _hs256_empty_key({"alg": "HS256", "kid": "../../../../dev/null"}),
            "alg_not_allowed",
            id="A-hs256-kid-path",
        ),
        pytest.param(
            _token({"alg": "EdDSA", "kid": "k-2026-1' OR '1'='1"}),
            "kid_unknown",
            id="B-kid-sql",
        ),
        pytest.param(
            _token(
                {
                    "alg": "EdDSA",
                    "kid": "k-2026-1",
                    "jku": "https://attacker.example/j",
                },
                key=ATTACKER_KEY,
            ),
            "key_reference_refused",
            id="C-jku",
        ),
        pytest.param(
            _token(
                {
                    "alg": "EdDSA",
                    "kid": "k-2026-1",
                    "x5u": "https://attacker.example/c",
                },
                key=ATTACKER_KEY,
            ),
            "key_reference_refused",
            id="C-x5u",
        ),
        pytest.param(
            _token(
                {
                    "alg": "EdDSA",
                    "kid": "k-2026-1",
                    "jwk": {"kty": "OKP", "crv": "Ed25519"},
                },
                key=ATTACKER_KEY,
            ),
            "key_reference_refused",
            id="C-embedded-jwk",
        ),
        pytest.param(
            _token(
                {"alg": "EdDSA", "kid": "2026-1"},
                _claims(EXAM),
                key=MDM_KEY,
            ),
            "signature_invalid",
            id="D-other-clients-key-same-kid",
        ),
    ],
)
async def test_c29_key_selection_cannot_be_steered(token: str, log_reason: str) -> None:
    error = await _fails(token)

    assert error.reason is Reason.INVALID_TOKEN
    assert error.log_reason == log_reason


@pytest.mark.anyio
async def test_c29_token_signed_by_own_shared_kid_key_is_accepted() -> None:
    token = _token({"alg": "EdDSA", "kid": "2026-1"}, _claims(MDM), key=MDM_KEY)

    result = await _authenticator().authenticate(f"Bearer {token}")

    assert result.client_id == MDM


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client", "alg", "key"),
    [(KANYASHREE, "EdDSA", ED_KEY), (IFMS, "ES256", EC_KEY)],
    ids=["EdDSA", "ES256"],
)
@pytest.mark.parametrize("cut", [1, 2, 32], ids=["one-byte", "two-bytes", "half"])
async def test_truncated_signature_is_invalid_and_burns_nothing(
    client: ClientId, alg: str, key: Any, cut: int
) -> None:
    kid = CLIENT_KEYS[client].kid
    genuine = _token({"alg": alg, "kid": kid}, _claims(client), key=key, alg=alg)
    head, body, signature = genuine.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    truncated = f"{head}.{body}.{_b64(raw[:-cut])}"

    error, result = await _refused_then_genuine(truncated, genuine)

    assert error.log_reason == "signature_invalid"
    assert result.client_id == client


@pytest.mark.anyio
async def test_signature_in_a_second_base64_spelling_is_malformed() -> None:
    # 64 bytes end in a 2-bit remainder: a last character with those bits set
    # decodes to the same bytes, but is not the one spelling RFC 7515 allows.
    head, body, signature = _token().split(".")
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    other = alphabet[alphabet.index(last) | 0b0011]
    assert other != last

    error = await _fails(f"{head}.{body}.{signature[:-1]}{other}")

    assert error.log_reason == "malformed_token"


@pytest.mark.anyio
async def test_rsa_key_under_2048_bits_is_refused_even_with_a_valid_signature() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    client = ClientId.parse("WB/GOV/SED/oldportal")
    registered = {"old": RegisteredKey("old", "RS256", weak.public_key())}
    subsystems = {client: Subsystem(client, "", registered)}
    settings = AuthSettings(audience=AUDIENCE, max_token_lifetime_s=300, leeway_s=60)
    authenticator = ClientAuthenticator(
        Directory("WB", subsystems, {}),
        settings,
        MemoryReplayCache(),
        clock=lambda: NOW,
    )
    token = _token(
        {"alg": "RS256", "kid": "old"}, _claims(client), key=weak, alg="RS256"
    )

    with pytest.raises(AuthenticationError) as info:
        await authenticator.authenticate(f"Bearer {token}")

    assert info.value.reason is Reason.INVALID_TOKEN
    assert info.value.log_reason == "key_too_short"


@pytest.mark.anyio
async def test_unregistered_issuer_is_unknown_client() -> None:
    token = _token(claims=_claims(ClientId.parse("WB/GOV/XX/nobody")))

    error = await _fails(token)

    assert error.reason is Reason.UNKNOWN_CLIENT


# -- C30: exp, nbf and clock skew ------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("claims", "reason", "log_reason"),
    [
        pytest.param(
            _claims(exp=None), Reason.INVALID_TOKEN, "exp_missing", id="A-no-exp"
        ),
        pytest.param(
            _claims(exp=NOW - 120, iat=NOW - 300),
            Reason.TOKEN_EXPIRED,
            "token_expired",
            id="B-expired",
        ),
        pytest.param(
            _claims(nbf=NOW + 600, iat=NOW, exp=NOW + 300),
            Reason.TOKEN_NOT_YET_VALID,
            "token_not_yet_valid",
            id="E-nbf-future",
        ),
        pytest.param(
            _claims(exp=NOW + 31536000, iat=NOW),
            Reason.INVALID_TOKEN,
            "lifetime_too_long",
            id="F-lifetime",
        ),
        pytest.param(
            _claims(iat=NOW + 30, exp=NOW + 10),
            Reason.INVALID_TOKEN,
            "exp_not_after_iat",
            id="exp-before-iat-within-leeway",
        ),
        pytest.param(
            _claims(iat=NOW, exp=NOW),
            Reason.INVALID_TOKEN,
            "exp_not_after_iat",
            id="zero-lifetime",
        ),
        pytest.param(
            _claims(exp=str(NOW + 300)),
            Reason.INVALID_TOKEN,
            "exp_not_numeric",
            id="G-exp-string",
        ),
        pytest.param(
            _claims(iat=None), Reason.INVALID_TOKEN, "iat_missing", id="no-iat"
        ),
        pytest.param(
            _claims(iat=True), Reason.INVALID_TOKEN, "iat_not_numeric", id="iat-bool"
        ),
        pytest.param(
            _claims(iat=NOW + 120, exp=NOW + 300),
            Reason.TOKEN_NOT_YET_VALID,
            "token_not_yet_valid",
            id="iat-future",
        ),
        pytest.param(
            _claims(aud="other.example"),
            Reason.INVALID_TOKEN,
            "audience_mismatch",
            id="audience",
        ),
        pytest.param(
            _claims(aud=[AUDIENCE, "x"]),
            Reason.INVALID_TOKEN,
            "audience_mismatch",
            id="audience-list",
        ),
        pytest.param(
            _claims(sub=str(IFMS)),
            Reason.INVALID_TOKEN,
            "issuer_subject_mismatch",
            id="sub-differs",
        ),
        pytest.param(
            _claims(jti=None), Reason.INVALID_TOKEN, "jti_missing", id="no-jti"
        ),
        pytest.param(
            _claims(jti="x" * 129), Reason.INVALID_TOKEN, "jti_invalid", id="long-jti"
        ),
    ],
)
async def test_c30_claims_are_checked(
    claims: dict[str, Any], reason: Reason, log_reason: str
) -> None:
    error = await _fails(_token(claims=claims))

    assert error.reason is reason
    assert error.log_reason == log_reason


@pytest.mark.anyio
@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(_claims(exp=NOW - 30, iat=NOW - 200), id="C-exp-within-leeway"),
        pytest.param(_claims(nbf=NOW + 2, iat=NOW + 2, exp=NOW + 300), id="D-nbf-skew"),
    ],
)
async def test_c30_small_clock_skew_is_accepted(claims: dict[str, Any]) -> None:
    result = await _authenticator().authenticate(f"Bearer {_token(claims=claims)}")

    assert result.client_id == KANYASHREE


# -- C32: structure strictness ---------------------------------------------------------


def _c32_json_serialization() -> str:
    genuine = _token().split(".")
    forged = _b64(json.dumps(_claims(iss=str(IFMS), sub=str(IFMS))).encode())
    return json.dumps(
        {
            f"{genuine[0]}.{forged}.": 1,
            "protected": genuine[0],
            "payload": genuine[1],
            "signature": genuine[2],
        }
    )


def _padded(token: str) -> str:
    parts = token.split(".")
    return ".".join(p + "=" * (-len(p) % 4) for p in parts)


def _standard_alphabet() -> str:
    # Re-encode until a segment needs '+' or '/': flip the claims' jti until it does.
    for n in range(200):
        claims = _claims(jti=f"j{n}~~??>>")
        raw = _token(claims=claims)
        std = raw.replace("-", "+").replace("_", "/")
        if std != raw:
            return std
    raise AssertionError("no token needed '+' or '/'")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "log_reason"),
    [
        pytest.param(
            _token(
                {
                    "alg": "EdDSA",
                    "kid": "k-2026-1",
                    "crit": ["wb-policy"],
                    "wb-policy": 1,
                }
            ),
            "crit_unsupported",
            id="A-crit",
        ),
        pytest.param(
            _c32_json_serialization(), "malformed_token", id="B-json-serialization"
        ),
        pytest.param(
            ".".join(
                [
                    _b64(b'{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}'),
                    "AAAA",
                    "AAAA",
                    "AAAA" * 1_500,
                    "AAAA",
                ]
            ),
            "jwe_refused",
            id="C-jwe-zip",
        ),
        pytest.param(_padded(_token()), "malformed_token", id="E-padding"),
        pytest.param(_standard_alphabet(), "malformed_token", id="E-plus-slash"),
        pytest.param(
            _token({"alg": "EdDSA", "kid": "k-2026-1", "zip": "DEF"}),
            "zip_refused",
            id="zip-on-jws",
        ),
        pytest.param(_token({"alg": "EdDSA"}), "kid_missing", id="no-kid"),
    ],
)
async def test_c32_only_strict_compact_jws_is_accepted(
    token: str, log_reason: str
) -> None:
    error = await _fails(token)

    assert error.reason is Reason.INVALID_TOKEN
    assert error.log_reason == log_reason


@pytest.mark.anyio
async def test_c32_d_oversized_header_is_refused_before_parsing() -> None:
    error = await _fails("A" * 200_000)

    assert error.log_reason == "header_too_large"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("authorization", "reason", "log_reason"),
    [
        (None, Reason.MISSING_CREDENTIAL, "missing_credential"),
        ("", Reason.MISSING_CREDENTIAL, "missing_credential"),
        ("Basic dXNlcjpwYXNz", Reason.INVALID_TOKEN, "scheme_not_bearer"),
        ("Bearer", Reason.INVALID_TOKEN, "scheme_not_bearer"),
        ("Bearer  abc.def.ghi", Reason.INVALID_TOKEN, "malformed_token"),
    ],
)
async def test_authorization_header_form(
    authorization: str | None, reason: Reason, log_reason: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate(authorization)

    assert info.value.reason is reason
    assert info.value.log_reason == log_reason


# -- C33: replay -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_c33_a_second_use_is_replayed() -> None:
    authenticator = _authenticator()
    token = _token()
    await authenticator.authenticate(f"Bearer {token}")

    with pytest.raises(AuthenticationError) as info:
        await authenticator.authenticate(f"Bearer {token}")

    assert info.value.reason is Reason.TOKEN_REPLAYED


@pytest.mark.anyio
async def test_c33_c_forged_copy_does_not_burn_the_jti() -> None:
    genuine = _token(claims=_claims(jti="J2"))
    head, body, _ = genuine.split(".")
    forged = f"{head}.{body}.{_b64(b'x' * 64)}"

    error, result = await _refused_then_genuine(forged, genuine)

    assert error.log_reason == "signature_invalid"
    assert result.client_id == KANYASHREE


@pytest.mark.anyio
async def test_c33_f_same_jti_of_two_issuers_are_both_accepted() -> None:
    authenticator = _authenticator()
    first = _token(claims=_claims(jti="1"))
    second = make_assertion(
        client_id=IFMS, key=CLIENT_KEYS[IFMS], audience=AUDIENCE, now=NOW, jti="1"
    )

    await authenticator.authenticate(f"Bearer {first}")
    result = await authenticator.authenticate(f"Bearer {second}")

    assert result.client_id == IFMS


@pytest.mark.anyio
async def test_replay_ttl_covers_token_lifetime_and_leeway() -> None:
    seen: list[int] = []

    class Recording(MemoryReplayCache):
        async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
            seen.append(ttl_s)
            return await super().first_use(namespace, token_id, ttl_s)

    await _authenticator(Recording()).authenticate(f"Bearer {_token()}")

    assert seen == [240 + 60]


@pytest.mark.anyio
async def test_the_longest_replay_ttl_is_what_a_redis_store_holds_after_evictions() -> (
    None
):
    """A token issued a leeway ahead with the longest lifetime is remembered for
    ``longest_use_ttl``: a Redis store that lost keys refuses uses that long."""
    seen: list[int] = []

    class Recording(MemoryReplayCache):
        async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
            seen.append(ttl_s)
            return await super().first_use(namespace, token_id, ttl_s)

    claims = _claims(iat=NOW + 60, nbf=None, exp=NOW + 60 + 300)
    await _authenticator(Recording()).authenticate(f"Bearer {_token(claims=claims)}")

    settings = AuthSettings(audience=AUDIENCE, max_token_lifetime_s=300, leeway_s=60)
    assert seen == [longest_use_ttl(settings)] == [420]


@pytest.mark.anyio
async def test_replay_store_failure_passes_through() -> None:
    class Broken(MemoryReplayCache):
        async def first_use(self, namespace: str, token_id: str, ttl_s: int) -> bool:
            raise NodeError(Reason.REPLAY_STORE_UNAVAILABLE)

    with pytest.raises(NodeError) as info:
        await _authenticator(Broken()).authenticate(f"Bearer {_token()}")

    assert info.value.reason is Reason.REPLAY_STORE_UNAVAILABLE


# -- logging facts ---------------------------------------------------------------------


def test_safe_token_facts_are_escaped_and_truncated() -> None:
    header = {"alg": "none", "kid": "k\n\x1b[31m" + "x" * 200}
    token = _unsigned(header, _claims(jti="j\u202e1"))

    facts = safe_token_facts(token)

    assert facts["iss"] == str(KANYASHREE)
    assert facts["kid"].startswith("k\\x0a\\x1b[31m") or facts["kid"].startswith("k\\n")
    assert len(facts["kid"]) == 64
    assert facts["jti"] == "j\\u202e1"


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "%%%.%%%.%%%", "A" * 20_000])
def test_safe_token_facts_never_raise(token: str) -> None:
    assert isinstance(safe_token_facts(token), dict)
