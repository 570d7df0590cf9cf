"""Client authentication by a signed JWT assertion (RFC 7523 style).

A departmental system proves who it is with ``Authorization: Bearer <jwt>``: a
compact JWS it signed with a key registered for its subsystem, whose ``iss`` and
``sub`` are its client id (``WB/GOV/WCD/kanyashree``) and whose ``aud`` is this
node. The identity comes only from that verified credential.

The checks run as numbered steps and stop at the first failure:

1. the header: present, not over the size limit, scheme ``Bearer`` and one space;
2. the token's form: exactly three unpadded base64url segments (no JWE, no JSON
   serialization), a header that names no ``crit``, ``zip``, ``jku``, ``x5u``,
   ``jwk`` or ``x5c``, an ``alg`` of a registered kind and a ``kid``;
3. the key: the subsystem named by ``iss``, and its key ``kid`` (a dict key, never
   a path or URL); the algorithm is the key's, never the token's;
4. the signature, over exactly the bytes whose claims are then read;
5. the claims: ``iss`` = ``sub``, ``aud``, numeric ``exp``/``iat``/``nbf`` with
   leeway, a lifetime within policy, and a ``jti``;
6. replay: the ``jti`` is used once per issuer, recorded only after all of the above.

:meth:`ClientAuthenticator.authenticate` runs all six. An exchange runs 1-5 with
:meth:`~ClientAuthenticator.verify` and records the use later, in the same
Redis round trip as its rate limit (:mod:`gateway.exchange`), but always before
it acts on the request or refuses it for a later reason.

Errors carry a wire reason and a finer ``log_reason``; neither ever contains the
token, a claim value or a library's exception text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import jwt
from jwt.algorithms import get_default_algorithms
from jwt.exceptions import PyJWTError

from gateway.directory import ALLOWED_ALGORITHMS, Directory, RegisteredKey
from gateway.errors import AuthenticationError, MediatorError, PayloadError, Reason
from gateway.identifiers import ClientId
from gateway.jsonbody import BOM, parse_json
from gateway.replay import ReplayCache, token_digest
from gateway.settings import AuthSettings

#: Header parameters that make a token refer to keys or processing this node
#: refuses: keys named by URL or embedded in the token (C29), critical extensions
#: (RFC 7515 section 4.1.11, CVE-2026-32597), compression and encryption (C32).
_REFUSED_HEADER = {
    "crit": "crit_unsupported",
    "jku": "key_reference_refused",
    "x5u": "key_reference_refused",
    "jwk": "key_reference_refused",
    "x5c": "key_reference_refused",
    "zip": "zip_refused",
    "enc": "jwe_refused",
    "b64": "b64_refused",
}
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
_MAX_JTI: Final = 128
_MAX_FACT: Final = 64
_MAX_JSON_DEPTH: Final = 8
#: pyjwt's implementations of the algorithms a registered key may have.
_ALGORITHMS: Final = {
    name: algorithm
    for name, algorithm in get_default_algorithms().items()
    if name in ALLOWED_ALGORITHMS
}


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """A client whose assertion was verified; ``jti_hash`` is the SHA-256 of its jti."""

    client_id: ClientId
    kid: str
    jti_hash: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class TokenUse:
    """One use of a verified assertion, as the replay check records it: the
    issuer, the token id (never logged) and how long it must be remembered."""

    namespace: str
    token_id: str = field(repr=False)
    ttl_s: int


def longest_use_ttl(settings: AuthSettings) -> int:
    """The longest ``ttl_s`` a :class:`TokenUse` gets under ``settings``: ``exp``
    is at most a lifetime after an ``iat`` at most a leeway ahead, and a use is
    remembered for a leeway after ``exp``."""
    return settings.max_token_lifetime_s + 2 * settings.leeway_s


def replayed() -> AuthenticationError:
    """The error for an assertion used before (step 2)."""
    return _reject(Reason.TOKEN_REPLAYED, "jti_replayed")


async def spend(replay: ReplayCache, use: TokenUse) -> None:
    """Record the use of a verified assertion in ``replay``.

    :raises AuthenticationError: ``token_replayed`` if it was used before.
    :raises NodeError: ``replay_store_unavailable`` from the replay cache.
    """
    if not await replay.first_use(use.namespace, use.token_id, use.ttl_s):
        raise replayed()


class AssertionKey(Protocol):
    """A private key that signs client assertions, with its kid and JWS algorithm."""

    @property
    def kid(self) -> str: ...

    @property
    def private_key(self) -> Any: ...

    @property
    def jws_algorithm(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A departmental client's signing key: ``EdDSA``, ``ES256`` or ``RS256``."""

    kid: str
    private_key: Any
    jws_algorithm: str


def _reject(reason: Reason, log_reason: str) -> AuthenticationError:
    return AuthenticationError(reason, log_reason=log_reason)


def _invalid(log_reason: str) -> AuthenticationError:
    return _reject(Reason.INVALID_TOKEN, log_reason)


class ClientAuthenticator:
    """Authenticates clients by their signed assertions against the directory."""

    def __init__(
        self,
        directory: Directory,
        settings: AuthSettings,
        replay: ReplayCache,
        *,
        max_authorization_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._settings = settings
        self._replay = replay
        self._max_bytes = max_authorization_bytes
        self._clock = clock

    async def authenticate(self, authorization: str | None) -> AuthenticatedClient:
        """Verify an ``Authorization`` header value and return the client it proves.

        :raises AuthenticationError: ``missing_credential``, ``invalid_token``,
            ``token_expired``, ``token_not_yet_valid``, ``token_replayed`` or
            ``unknown_client``, with a finer ``log_reason``.
        :raises NodeError: ``replay_store_unavailable`` from the replay cache.
        """
        verified, use = await self.verify(authorization)
        await spend(self._replay, use)
        return verified

    async def verify(
        self, authorization: str | None
    ) -> tuple[AuthenticatedClient, TokenUse]:
        """Everything :meth:`authenticate` checks but replay, and the use to record.

        The caller must record the use (:func:`spend`, or with the rate limit,
        :meth:`gateway.throttle.Throttle.first_use_and_hit`) before it acts on
        the request or refuses it for any later reason.

        :raises AuthenticationError: as :meth:`authenticate`, but never
            ``token_replayed``.
        """
        # Step 1 and 2: the header and the token's form, before any key is used.
        token = self._bearer_token(authorization)
        segments, header = _checked_form(token)
        payload = _json_object(_b64url(segments[1]))
        if payload is None:
            raise _invalid("malformed_token")

        # Step 3: the key, from the issuer's registered keys only.
        client, key = await self._registered_key(payload, header)

        # Step 4: the signature over the two segments just parsed, so the
        # claims read next are exactly the verified bytes.
        _verify_signature(segments, key)

        # Step 5: the claims.
        now = self._clock()
        expires_at, jti = self._check_claims(payload, client, now)

        # Step 6, replay, is the caller's: only for a token that passed
        # everything else (C33 C).
        ttl = math.ceil(expires_at - now + self._settings.leeway_s)
        use = TokenUse(str(client), jti, max(ttl, 1))
        verified = AuthenticatedClient(
            client, key.kid, token_digest(jti), int(expires_at)
        )
        return verified, use

    def _bearer_token(self, authorization: str | None) -> str:
        if not authorization:
            raise _reject(Reason.MISSING_CREDENTIAL, "missing_credential")
        if len(authorization.encode("utf-8", "surrogatepass")) > self._max_bytes:
            raise _invalid("header_too_large")

        scheme, space, token = authorization.partition(" ")
        if not space or scheme.lower() != "bearer":
            raise _invalid("scheme_not_bearer")
        if not token:
            raise _reject(Reason.MISSING_CREDENTIAL, "missing_credential")
        return token

    async def _registered_key(
        self, payload: dict[str, Any], header: dict[str, Any]
    ) -> tuple[ClientId, RegisteredKey]:
        issuer = payload.get("iss")
        if not isinstance(issuer, str):
            raise _invalid("issuer_missing")

        try:
            client = ClientId.parse(issuer)
        except MediatorError as exc:
            raise _reject(Reason.UNKNOWN_CLIENT, "issuer_malformed") from exc
        subsystem = self._directory.subsystem(client)
        if subsystem is None:
            raise _reject(Reason.UNKNOWN_CLIENT, "client_unknown")

        key = await subsystem.key(header["kid"])
        if key is None:
            raise _invalid("kid_unknown")
        if key.algorithm != header["alg"] or key.algorithm not in ALLOWED_ALGORITHMS:
            raise _invalid("alg_not_allowed")
        return client, key

    def _check_claims(
        self, claims: dict[str, Any], client: ClientId, now: float
    ) -> tuple[float, str]:
        settings = self._settings
        leeway = settings.leeway_s
        if claims.get("iss") != str(client) or claims.get("sub") != str(client):
            raise _invalid("issuer_subject_mismatch")
        audience = claims.get("aud")
        if not isinstance(audience, str) or audience != settings.audience:
            raise _invalid("audience_mismatch")

        exp, iat, nbf = (_numeric(claims, name) for name in ("exp", "iat", "nbf"))
        if exp is None or iat is None:
            raise _invalid("exp_missing" if exp is None else "iat_missing")
        if exp - iat > settings.max_token_lifetime_s:
            raise _invalid("lifetime_too_long")
        if exp <= iat:
            # Expired when issued: no clock skew makes such a token valid.
            raise _invalid("exp_not_after_iat")
        if now > exp + leeway:
            raise _reject(Reason.TOKEN_EXPIRED, "token_expired")
        if iat > now + leeway or (nbf is not None and nbf > now + leeway):
            raise _reject(Reason.TOKEN_NOT_YET_VALID, "token_not_yet_valid")

        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= _MAX_JTI:
            raise _invalid("jti_missing" if jti is None else "jti_invalid")
        return exp, jti


# -- token form ------------------------------------------------------------------------


def _checked_form(token: str) -> tuple[list[str], dict[str, Any]]:
    """The token's three segments and its checked header."""
    segments = token.split(".")
    if len(segments) == 5:
        raise _invalid("jwe_refused")
    if len(segments) != 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise _invalid("malformed_token")
    if not segments[0] or not segments[1]:
        raise _invalid("malformed_token")

    header = _json_object(_b64url(segments[0]))
    if header is None:
        raise _invalid("malformed_token")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise _invalid("alg_not_allowed")
    for name, log_reason in _REFUSED_HEADER.items():
        if name in header:
            raise _invalid(log_reason)

    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 128:
        raise _invalid("kid_missing" if kid is None else "kid_invalid")
    if not segments[2]:
        raise _invalid("signature_missing")
    return segments, header


def _b64url(segment: str) -> bytes | None:
    """Strict base64url without padding: the only spelling of the bytes (RFC 7515)."""
    if len(segment) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        return None
    return data


def _json_object(data: bytes | None) -> dict[str, Any] | None:
    # The node's one strict parser: depth before recursion (C23), no NaN, no
    # huge integers, no duplicate members; a token has no byte-order mark.
    if data is None or data.startswith(BOM):
        return None
    try:
        value = parse_json(data, max_depth=_MAX_JSON_DEPTH)
    except PayloadError:
        return None
    return value if isinstance(value, dict) else None


def _verify_signature(segments: list[str], key: RegisteredKey) -> None:
    """Check the JWS signature with the key's own algorithm (RFC 7515 section 5.2).

    The segments were checked as strict base64url already, so this goes to the
    library's algorithm directly rather than through ``PyJWS.decode``, which
    would split, decode and parse the token a second time.
    """
    signature = _b64url(segments[2])
    if signature is None:
        raise _invalid("malformed_token")
    try:
        algorithm = _ALGORITHMS[key.algorithm]
        public_key = algorithm.prepare_key(key.key)
        if algorithm.check_key_length(public_key):
            raise _invalid("key_too_short")
        signing_input = f"{segments[0]}.{segments[1]}".encode("ascii")
        valid = algorithm.verify(signing_input, public_key, signature)
    except (PyJWTError, ValueError, TypeError) as exc:
        raise _invalid("signature_invalid") from exc
    if not valid:
        raise _invalid("signature_invalid")


def _numeric(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 section 2): a JSON number, never a string."""
    value = claims.get(name)
    if value is None:
        if name in claims:
            raise _invalid(f"{name}_not_numeric")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name}_not_numeric")
    if not math.isfinite(value):
        raise _invalid(f"{name}_not_numeric")
    return float(value)


# -- for clients and logs --------------------------------------------------------------


def make_assertion(
    *,
    client_id: ClientId,
    key: AssertionKey,
    audience: str,
    lifetime_s: int = 60,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """A signed client assertion for ``client_id``, as departmental clients send it."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": str(client_id),
        "sub": str(client_id),
        "aud": audience,
        "iat": issued,
        "exp": issued + lifetime_s,
        "jti": jti or secrets.token_urlsafe(18),
    }
    return jwt.encode(
        claims,
        key.private_key,
        algorithm=key.jws_algorithm,
        headers={"kid": key.kid, "typ": "JWT"},
    )


def safe_token_facts(token: str) -> dict[str, str]:
    """``iss``, ``kid`` and ``jti`` of a token for logs: escaped, each <= 64 chars.

    Never raises; anything unreadable is left out. Nothing is verified here.
    """
    segments = token.split(".", 3)
    if len(token) > 16_384 or len(segments) < 2:
        return {}
    header = _json_object(_lenient_b64url(segments[0])) or {}
    payload = _json_object(_lenient_b64url(segments[1])) or {}
    facts = {
        "iss": payload.get("iss"),
        "kid": header.get("kid"),
        "jti": payload.get("jti"),
    }
    return {name: _escaped(value) for name, value in facts.items() if value is not None}


def _lenient_b64url(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _escaped(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    printable = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)
    return printable[:_MAX_FACT]
