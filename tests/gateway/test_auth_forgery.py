"""Client assertions, adversarially: the signature is checked over exactly the
segments whose header and claims are read, and nothing refused burns a jti."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from jwt.algorithms import get_default_algorithms

from gateway.auth import AuthenticatedClient, ClientAuthenticator
from gateway.directory import Directory, RegisteredKey, Subsystem
from gateway.errors import AuthenticationError, Reason
from gateway.identifiers import ClientId
from gateway.replay import MemoryReplayCache
from gateway.settings import AuthSettings
from tests.gateway.test_auth import (
    AUDIENCE,
    EC_KEY,
    ED_KEY,
    IFMS,
    KANYASHREE,
    NOW,
    RSA_CLIENT,
    RSA_KEY,
)

pytestmark = pytest.mark.anyio

ED_CLIENT, EC_CLIENT = KANYASHREE, IFMS
OTHER_ED_KEY = ed25519.Ed25519PrivateKey.generate()
#: The order of P-256: ``(r, n - s)`` verifies wherever ``(r, s)`` does.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

#: client -> (kid, JWS algorithm, private key)
KEYS: dict[ClientId, tuple[str, str, Any]] = {
    ED_CLIENT: ("ed-1", "EdDSA", ED_KEY),
    EC_CLIENT: ("ec-1", "ES256", EC_KEY),
    RSA_CLIENT: ("rsa-1", "RS256", RSA_KEY),
}


def _authenticator(
    registered: dict[ClientId, dict[str, RegisteredKey]] | None = None,
    replay: MemoryReplayCache | None = None,
) -> ClientAuthenticator:
    if registered is None:
        registered = {
            client: {kid: RegisteredKey(kid, alg, key.public_key())}
            for client, (kid, alg, key) in KEYS.items()
        }
    subsystems = {
        client: Subsystem(client, "", keys) for client, keys in registered.items()
    }
    settings = AuthSettings(audience=AUDIENCE, max_token_lifetime_s=300, leeway_s=60)
    return ClientAuthenticator(
        Directory("WB", subsystems, {}),
        settings,
        replay if replay is not None else MemoryReplayCache(),
        clock=lambda: NOW,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _claims(client: ClientId = ED_CLIENT, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": str(client),
        "sub": str(client),
        "aud": AUDIENCE,
        "iat": NOW - 10,
        "exp": NOW + 240,
        "jti": "forged-1",
    }
    claims.update(changes)
    return claims


def _header(client: ClientId = ED_CLIENT, **changes: Any) -> dict[str, Any]:
    kid, alg, _ = KEYS[client]
    return {"alg": alg, "kid": kid, "typ": "JWT", **changes}


def _sign_segments(head: str, body: str, alg: str, key: Any) -> str:
    algorithm = get_default_algorithms()[alg]
    signature = algorithm.sign(f"{head}.{body}".encode(), algorithm.prepare_key(key))
    return f"{head}.{body}.{_b64(signature)}"


def _token(
    client: ClientId = ED_CLIENT,
    *,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    raw_header: bytes | None = None,
    raw_claims: bytes | None = None,
    alg: str | None = None,
    key: Any = None,
) -> str:
    """A compact JWS signed over exactly the segments it carries."""
    _, own_alg, own_key = KEYS[client]
    head_bytes = raw_header or json.dumps(header or _header(client)).encode()
    body_bytes = raw_claims or json.dumps(claims or _claims(client)).encode()
    return _sign_segments(
        _b64(head_bytes),
        _b64(body_bytes),
        alg or own_alg,
        own_key if key is None else key,
    )


async def _refused(
    token: str, authenticator: ClientAuthenticator | None = None
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await (authenticator or _authenticator()).authenticate(f"Bearer {token}")
    return info.value


async def _refused_then_genuine(
    bad: list[str], genuine: str
) -> tuple[list[str], AuthenticatedClient]:
    """Every ``bad`` token is refused, then ``genuine`` (same jti) is accepted."""
    authenticator = _authenticator()
    reasons = []
    for token in bad:
        error = await _refused(token, authenticator)
        reasons.append(error.log_reason)
    return reasons, await authenticator.authenticate(f"Bearer {genuine}")


def _swap_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


# -- the signature covers exactly header.payload ---------------------------------------


@pytest.mark.parametrize("client", list(KEYS), ids=lambda c: KEYS[c][1])
async def test_a_valid_signature_of_other_claims_does_not_carry_over(
    client: ClientId,
) -> None:
    """A signature lifted from another genuine token fails over these claims."""
    donor = _token(client, claims=_claims(client, jti="donor"))
    wanted = _b64(json.dumps(_claims(client, jti="wanted")).encode())
    forged = _swap_segment(donor, 1, wanted)

    error = await _refused(forged)

    assert error.log_reason == "signature_invalid"


async def test_a_valid_signature_of_another_header_does_not_carry_over() -> None:
    genuine = _token(header=_header(typ="JWT"))
    other_head = _b64(json.dumps(_header(typ="at+jwt")).encode())

    error = await _refused(_swap_segment(genuine, 0, other_head))

    assert error.log_reason == "signature_invalid"


async def test_claims_are_read_from_the_signed_segment_not_a_decoded_equivalent() -> (
    None
):
    """Same claims, other bytes (spacing): the signature over the first spelling
    does not verify the second, though both parse to equal claims."""
    compact = json.dumps(_claims(), separators=(",", ":")).encode()
    spaced = json.dumps(_claims(), indent=1).encode()
    genuine = _token(raw_claims=compact)

    error = await _refused(_swap_segment(genuine, 1, _b64(spaced)))

    assert error.log_reason == "signature_invalid"


async def test_a_signature_by_another_ed25519_key_is_refused() -> None:
    error = await _refused(_token(key=OTHER_ED_KEY))

    assert error.log_reason == "signature_invalid"


# -- base64url edge cases --------------------------------------------------------------


def _second_spelling(segment: str) -> str | None:
    """The segment with its unused low bits set: same bytes, non-canonical text."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 0b1111, 3: 0b0011}.get(len(segment) % 4)
    if spare is None:
        return None
    last = alphabet.index(segment[-1])
    other = alphabet[last | spare]
    return None if other == segment[-1] else segment[:-1] + other


@pytest.mark.parametrize("index", [0, 1], ids=["header", "payload"])
async def test_a_segment_signed_in_a_second_spelling_is_malformed(index: int) -> None:
    """Even a signature made over the non-canonical text is refused (RFC 7515)."""
    for pad in range(8):
        claims = _claims(jti="p" * (pad + 1))
        head = _b64(json.dumps(_header(typ="J" * (pad + 1))).encode())
        body = _b64(json.dumps(claims).encode())
        parts = [head, body]
        other = _second_spelling(parts[index])
        if other is not None:
            parts[index] = other
            break
    else:
        pytest.fail("no segment length with spare bits was found")
    assert _unb64(other) == _unb64([head, body][index])
    token = _sign_segments(parts[0], parts[1], "EdDSA", ED_KEY)

    error = await _refused(token)

    assert error.log_reason == "malformed_token"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t + "=", id="trailing-pad"),
        pytest.param(lambda t: t + "==", id="trailing-double-pad"),
        pytest.param(lambda t: t + "AAA", id="sig-length-1-mod-4"),
        pytest.param(lambda t: t + "\n", id="trailing-newline"),
        pytest.param(lambda t: t + " ", id="trailing-space"),
        pytest.param(lambda t: t.replace(".", " .", 1), id="space-before-dot"),
        pytest.param(lambda t: t.replace(".", ".\t", 1), id="tab-after-dot"),
        pytest.param(lambda t: t[:10] + "\u0410" + t[11:], id="cyrillic-A"),
        pytest.param(lambda t: t[:10] + "\uff41" + t[11:], id="fullwidth-a"),
        pytest.param(lambda t: t[:10] + "\u0661" + t[11:], id="arabic-digit"),
        pytest.param(lambda t: t[:10] + "+" + t[11:], id="plus"),
        pytest.param(lambda t: t[:10] + "/" + t[11:], id="slash"),
        pytest.param(lambda t: t[:10] + "%" + t[11:], id="percent"),
        pytest.param(lambda t: t + ".", id="four-segments"),
        pytest.param(lambda t: "." + t, id="leading-dot"),
        pytest.param(lambda t: t.rsplit(".", 1)[0] + ".", id="empty-signature"),
        pytest.param(lambda t: "." + t.split(".", 1)[1], id="empty-header"),
        pytest.param(
            lambda t: t.split(".")[0] + ".." + t.split(".")[2], id="empty-payload"
        ),
        pytest.param(lambda t: "..", id="all-empty"),
    ],
)
async def test_base64url_and_form_edge_cases_are_refused(
    mutate: Callable[[str], str],
) -> None:
    genuine = _token()
    error = await _refused(mutate(genuine))

    assert error.reason is Reason.INVALID_TOKEN
    assert error.log_reason in {"malformed_token", "signature_missing"}


async def test_a_token_at_the_header_size_limit_verifies_and_one_over_does_not() -> (
    None
):
    """A long (padded-out) claim set still verifies over all of its bytes."""
    base = len("Bearer ") + len(_token(claims=_claims(pad="")))
    # Each 3 bytes of JSON add 4 characters of base64url.
    pad = "x" * ((8192 - base) * 3 // 4)
    while len("Bearer " + _token(claims=_claims(pad=pad))) > 8192:
        pad = pad[:-1]
    fits = _token(claims=_claims(pad=pad))
    over = _token(claims=_claims(pad=pad + "xxxx"))

    result = await _authenticator().authenticate(f"Bearer {fits}")
    error = await _refused(over)

    assert result.client_id == ED_CLIENT
    assert error.log_reason == "header_too_large"


# -- algorithms: the key's, never the token's ------------------------------------------


def _hmac_token(secret: bytes, client: ClientId = RSA_CLIENT) -> str:
    kid, _, _ = KEYS[client]
    head = _b64(json.dumps({"alg": "HS256", "kid": kid}).encode())
    body = _b64(json.dumps(_claims(client)).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(mac)}"


def _public_pem(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.mark.parametrize(
    ("token", "log_reason"),
    [
        pytest.param(
            _hmac_token(_public_pem(RSA_KEY)), "alg_not_allowed", id="HS256-rsa-pem"
        ),
        pytest.param(
            _hmac_token(_public_pem(EC_KEY), EC_CLIENT),
            "alg_not_allowed",
            id="HS256-ec-pem",
        ),
        pytest.param(
            _token(
                ED_CLIENT,
                header=_header(ED_CLIENT, alg="ES256"),
                alg="ES256",
                key=EC_KEY,
            ),
            "alg_not_allowed",
            id="ES256-token-EdDSA-key",
        ),
        pytest.param(
            _token(
                EC_CLIENT,
                header=_header(EC_CLIENT, alg="EdDSA"),
                alg="EdDSA",
                key=ED_KEY,
            ),
            "alg_not_allowed",
            id="EdDSA-token-ES256-key",
        ),
        pytest.param(
            _token(RSA_CLIENT, header=_header(RSA_CLIENT, alg="PS256"), alg="PS256"),
            "alg_not_allowed",
            id="PS256-token-RS256-key",
        ),
        pytest.param(
            _token(RSA_CLIENT, header=_header(RSA_CLIENT, alg="RS512"), alg="RS512"),
            "alg_not_allowed",
            id="RS512-token-RS256-key",
        ),
        pytest.param(
            _token(header=_header(alg="none"))[:-86] + _b64(b"x"),
            "alg_not_allowed",
            id="none",
        ),
    ],
)
async def test_the_tokens_alg_never_chooses_the_verification(
    token: str, log_reason: str
) -> None:
    error = await _refused(token)

    assert error.log_reason == log_reason


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        pytest.param("ES256", ed25519.Ed25519PrivateKey.generate(), id="ES256-ed25519"),
        pytest.param("EdDSA", ec.generate_private_key(ec.SECP256R1()), id="EdDSA-ec"),
        pytest.param("ES256", ec.generate_private_key(ec.SECP384R1()), id="ES256-p384"),
        pytest.param("RS256", ec.generate_private_key(ec.SECP256R1()), id="RS256-ec"),
    ],
)
async def test_a_registered_key_of_the_wrong_kind_refuses_without_crashing(
    alg: str, key: Any
) -> None:
    """A directory entry whose key does not fit its alg verifies nothing."""
    client = ClientId.parse("WB/GOV/SED/misfit")
    registered = {client: {"m": RegisteredKey("m", alg, key.public_key())}}
    head = _b64(json.dumps({"alg": alg, "kid": "m"}).encode())
    body = _b64(json.dumps(_claims(client)).encode())
    token = f"{head}.{body}.{_b64(b'z' * 64)}"

    error = await _refused(token, _authenticator(registered))

    assert error.reason is Reason.INVALID_TOKEN
    assert error.log_reason == "signature_invalid"


async def test_an_rsa_key_of_2047_bits_is_too_short() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=2047)
    client = ClientId.parse("WB/GOV/SED/oldportal")
    registered = {client: {"w": RegisteredKey("w", "RS256", weak.public_key())}}
    head = _b64(json.dumps({"alg": "RS256", "kid": "w"}).encode())
    body = _b64(json.dumps(_claims(client)).encode())
    token = _sign_segments(head, body, "RS256", weak)

    error = await _refused(token, _authenticator(registered))

    assert error.log_reason == "key_too_short"


# -- ES256 signature encodings ---------------------------------------------------------


def _ec_parts(token: str) -> tuple[str, int, int]:
    head, body, signature = token.split(".")
    raw = _unb64(signature)
    return f"{head}.{body}", int.from_bytes(raw[:32]), int.from_bytes(raw[32:])


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(encode_dss_signature, id="DER"),
        pytest.param(lambda r, s: r.to_bytes(33) + s.to_bytes(32), id="r-33-bytes"),
        pytest.param(lambda r, s: r.to_bytes(32) + s.to_bytes(33), id="s-33-bytes"),
        pytest.param(lambda r, s: r.to_bytes(32) + s.to_bytes(32)[:-1], id="63-bytes"),
        pytest.param(
            lambda r, s: r.to_bytes(32) + s.to_bytes(32) + b"\0", id="65-bytes"
        ),
        pytest.param(lambda r, s: r.to_bytes(48) + s.to_bytes(48), id="P-384-width"),
        pytest.param(lambda r, s: bytes(64), id="zeros"),
        pytest.param(lambda r, s: r.to_bytes(32) + bytes(32), id="s-zero"),
        pytest.param(
            lambda r, s: r.to_bytes(32) + (s + P256_ORDER).to_bytes(33)[-32:],
            id="s-plus-n-truncated",
        ),
        pytest.param(
            lambda r, s: (r + P256_ORDER).to_bytes(33)[-32:] + s.to_bytes(32),
            id="r-plus-n-truncated",
        ),
    ],
)
async def test_es256_signatures_only_in_raw_r_s_of_32_bytes_each(
    signature: Callable[[int, int], bytes],
) -> None:
    genuine = _token(EC_CLIENT, claims=_claims(EC_CLIENT))
    signing_input, r, s = _ec_parts(genuine)
    forged = f"{signing_input}.{_b64(signature(r, s))}"

    reasons, result = await _refused_then_genuine([forged], genuine)

    assert reasons == ["signature_invalid"]
    assert result.client_id == EC_CLIENT


async def test_a_der_signature_the_library_made_is_refused_too() -> None:
    """A client that sends the DER form cryptography returns is not accepted."""
    head = _b64(json.dumps(_header(EC_CLIENT)).encode())
    body = _b64(json.dumps(_claims(EC_CLIENT)).encode())
    der = EC_KEY.sign(
        f"{head}.{body}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    assert decode_dss_signature(der)

    error = await _refused(f"{head}.{body}.{_b64(der)}")

    assert error.log_reason == "signature_invalid"


async def test_a_high_s_copy_of_a_used_es256_token_is_a_replay() -> None:
    """ECDSA is malleable: ``(r, n - s)`` verifies too, so only the jti stops it."""
    authenticator = _authenticator()
    genuine = _token(EC_CLIENT, claims=_claims(EC_CLIENT))
    signing_input, r, s = _ec_parts(genuine)
    twin = f"{signing_input}.{_b64(r.to_bytes(32) + (P256_ORDER - s).to_bytes(32))}"
    await authenticator.authenticate(f"Bearer {genuine}")

    error = await _refused(twin, authenticator)

    assert error.reason is Reason.TOKEN_REPLAYED


async def test_a_short_rsa_signature_copy_of_a_used_token_is_a_replay() -> None:
    """Whatever second spelling a signature has, the jti is spent once."""
    authenticator = _authenticator()
    genuine = _token(RSA_CLIENT, claims=_claims(RSA_CLIENT))
    head, body, signature = genuine.split(".")
    raw = _unb64(signature)
    await authenticator.authenticate(f"Bearer {genuine}")
    twin = f"{head}.{body}.{_b64(bytes(1) + raw)}"

    error = await _refused(twin, authenticator)

    assert error.reason in {Reason.TOKEN_REPLAYED, Reason.INVALID_TOKEN}


# -- nothing refused burns the jti -----------------------------------------------------


async def test_no_forgery_burns_the_genuine_tokens_jti() -> None:
    genuine = _token()
    head, body, signature = genuine.split(".")
    forgeries = [
        f"{head}.{body}.{_b64(b'x' * 64)}",
        _token(key=OTHER_ED_KEY),
        _token(header=_header(kid="ed-unknown")),
        _token(header=_header(alg="ES256"), alg="ES256", key=EC_KEY),
        f"{head}.{body}.{signature[:-2]}",
        f"{head}.{body}.{signature}=",
        _token(claims=_claims(aud="other.example")),
        _token(claims=_claims(exp=NOW - 3600, iat=NOW - 3700)),
        _token(header=_header(crit=["b64"], b64=False)),
    ]

    reasons, result = await _refused_then_genuine(forgeries, genuine)

    assert len(reasons) == len(forgeries)
    assert result.client_id == ED_CLIENT


# -- JSON: duplicates, escapes, types --------------------------------------------------


@pytest.mark.parametrize(
    ("raw_header", "raw_claims"),
    [
        pytest.param(
            b'{"alg":"EdDSA","kid":"ed-1","kid":"ed-2"}', None, id="header-dup-kid"
        ),
        pytest.param(
            b'{"alg":"EdDSA","kid":"ed-1","\\u006bid":"ed-2"}',
            None,
            id="header-escaped-dup-kid",
        ),
        pytest.param(
            b'{"alg":"EdDSA","alg":"none","kid":"ed-1"}', None, id="header-dup-alg"
        ),
        pytest.param(
            None,
            json.dumps(_claims()).encode()[:-1] + b',"iss":"WB/GOV/FIN/ifms"}',
            id="payload-dup-iss",
        ),
        pytest.param(
            None,
            json.dumps(_claims()).encode()[:-1] + b',"j\\u0074i":"other"}',
            id="payload-escaped-dup-jti",
        ),
        pytest.param(
            None,
            json.dumps(_claims()).encode()[:-1] + b',"exp":9999999999}',
            id="payload-dup-exp",
        ),
        pytest.param(None, b"\xef\xbb\xbf" + json.dumps(_claims()).encode(), id="bom"),
        pytest.param(None, json.dumps([_claims()]).encode(), id="payload-array"),
        pytest.param(None, b'"' + b"x" * 10 + b'"', id="payload-string"),
        pytest.param(b'["EdDSA"]', None, id="header-array"),
        pytest.param(
            None,
            json.dumps(_claims()).encode().replace(b"forged-1", b"\xff\xfe"),
            id="payload-not-utf8",
        ),
    ],
)
async def test_ambiguous_json_is_refused_even_when_signed(
    raw_header: bytes | None, raw_claims: bytes | None
) -> None:
    """Signed by the client's own key, so only the parser can refuse it."""
    token = _token(raw_header=raw_header, raw_claims=raw_claims)

    error = await _refused(token)

    assert error.reason in {Reason.INVALID_TOKEN, Reason.UNKNOWN_CLIENT}
    assert error.log_reason in {"malformed_token", "alg_not_allowed"}


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"iss": ["WB/GOV/WCD/kanyashree"]}, id="iss-list"),
        pytest.param({"jti": 1}, id="jti-number"),
        pytest.param({"jti": ""}, id="jti-empty"),
        pytest.param({"exp": float("inf")}, id="exp-infinity"),
        pytest.param({"exp": 10**400}, id="exp-huge-int"),
        pytest.param({"exp": None}, id="exp-null"),
        pytest.param({"aud": None}, id="aud-null"),
    ],
)
async def test_odd_claim_types_are_refused_after_a_valid_signature(
    changes: dict[str, Any],
) -> None:
    claims = _claims(**changes)
    raw = json.dumps(claims, allow_nan=True).encode()
    error = await _refused(_token(raw_claims=raw))

    assert error.reason in {Reason.INVALID_TOKEN, Reason.UNKNOWN_CLIENT}
