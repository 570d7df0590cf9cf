"""Clients' public keys: parsed from JWKS documents, or fetched from a JWKS URL.

A subsystem's keys are named by ``kid`` and come from a file, from JWKs inline in
``directory.yaml``, or from a JWKS URL the subsystem publishes (C34). A URL is
fetched only as configured (never an address from a token, never a redirect),
and :class:`RemoteJwks` keeps it current:

1. a set older than ``ttl_s`` is fetched again on the next use;
2. an unknown ``kid`` asks for a fetch, at most one per ``cooldown_s``, so a
   client that rotated is served at once and a flood of made-up kids costs one
   fetch per cool-down;
3. while the endpoint fails, the last good set is used for ``max_stale_s``, and
   after that every key is refused (fail closed);
4. a document that repeats a kid, or is not a valid public JWKS, is refused and
   the last good set is kept, with a warning.

Each fetch logs one ``jwks_refresh`` event with its reason and outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog
from jwt.exceptions import PyJWKError, PyJWKSetError

from gateway.errors import ConfigError, PayloadError
from gateway.jsonbody import parse_json

log = structlog.get_logger("gateway.clientkeys")

#: Algorithms a registered key may use. HMAC and ``none`` are never accepted: a
#: mediator must not share secrets with its clients, and ``none`` proves nothing.
ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256"})
#: Largest JWKS document the node reads from a URL.
MAX_JWKS_BYTES = 64 * 1024
_MAX_JSON_DEPTH = 8


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    kid: str
    algorithm: str
    key: Any


def parse_jwks(document: Any, source: str) -> dict[str, RegisteredKey]:
    """Public keys of a JWKS document by ``kid``; raise ConfigError if unusable.

    Every key needs a ``kid`` and an ``alg`` from :data:`ALLOWED_ALGORITHMS`, a
    ``kid`` appears once, and private key material is refused.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(source, "a JWKS needs a 'keys' list")
    return parse_jwk_list(document["keys"], source)


def parse_jwk_list(jwks: Any, source: str) -> dict[str, RegisteredKey]:
    """Public keys of a list of JWKs by ``kid``; raise ConfigError as parse_jwks."""
    keys: dict[str, RegisteredKey] = {}
    for jwk in jwks:
        key = _parse_jwk(jwk, source)
        if key.kid in keys:
            raise ConfigError(source, f"key {key.kid!r} appears twice")
        keys[key.kid] = key
    return keys


def _parse_jwk(jwk: Any, source: str) -> RegisteredKey:
    if not isinstance(jwk, dict):
        raise ConfigError(source, "each key must be an object")
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or len(kid) > 128:
        raise ConfigError(source, "each key needs a kid of 1-128 characters")
    if alg not in ALLOWED_ALGORITHMS:
        raise ConfigError(
            source, f"key {kid!r}: alg must be one of EdDSA, ES256, RS256"
        )
    if "d" in jwk or jwk.get("kty") == "oct":
        raise ConfigError(source, f"key {kid!r}: only public keys belong here")
    try:
        parsed = jwt.PyJWK.from_dict(jwk)
    except (PyJWKError, PyJWKSetError, ValueError, TypeError) as exc:
        raise ConfigError(source, f"key {kid!r} is not a valid public key") from exc
    return RegisteredKey(kid, str(alg), parsed.key)


class RemoteJwks:
    """The keys a subsystem publishes at a JWKS URL, cached as the module says."""

    def __init__(
        self,
        url: str,
        *,
        owner: str,
        ttl_s: float = 3600,
        cooldown_s: float = 30,
        max_stale_s: float = 86_400,
        timeout_s: float = 5,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.owner = owner
        self.ttl_s = ttl_s
        self.cooldown_s = cooldown_s
        self.max_stale_s = max_stale_s
        self._timeout = timeout_s
        self._transport = transport
        self._clock = clock
        self._keys: dict[str, RegisteredKey] = {}
        self._good_at: float | None = None
        self._tried_at: float | None = None
        self._lock = asyncio.Lock()
        #: Fetches made so far (for tests and metrics).
        self.fetches = 0

    async def get(self, kid: str) -> RegisteredKey | None:
        """The key ``kid`` if the subsystem publishes it; None otherwise.

        None also when the last good set is older than ``max_stale_s``. Never
        raises: a failed fetch is logged and the cached set stays.
        """
        if self._due("ttl"):
            await self._refresh("ttl")
        elif kid not in self._keys and self._due("unknown_kid"):
            await self._refresh("unknown_kid")
        if not self._fresh_enough():
            return None
        return self._keys.get(kid)

    def _due(self, reason: str) -> bool:
        now = self._clock()
        if self._tried_at is not None and now - self._tried_at < self.cooldown_s:
            return False
        if reason == "ttl":
            return self._good_at is None or now - self._good_at >= self.ttl_s
        return True

    def _fresh_enough(self) -> bool:
        if self._good_at is None:
            return False
        if self._clock() - self._good_at <= self.max_stale_s:
            return True
        log.warning("jwks_stale", client_id=self.owner, detail="keys refused")
        return False

    async def _refresh(self, reason: str) -> None:
        async with self._lock:
            # Another request may have fetched while this one waited.
            if not self._due(reason):
                return
            self._tried_at = self._clock()
            self.fetches += 1
            outcome, detail = await self._fetch()
        log.log(
            20 if outcome == "ok" else 30,
            "jwks_refresh",
            client_id=self.owner,
            reason=reason,
            outcome=outcome,
            keys=len(self._keys),
            **detail,
        )

    async def _fetch(self) -> tuple[str, dict[str, Any]]:
        try:
            document = await self._download()
        except _FetchError as exc:
            return "failed", {"error": exc.what}
        try:
            keys = parse_jwks(document, self.url)
        except ConfigError as exc:
            return "rejected", {"error": exc.reason}
        self._keys, self._good_at = keys, self._clock()
        return "ok", {}

    async def _download(self) -> Any:
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,
        ) as client:
            try:
                async with client.stream("GET", self.url) as response:
                    if response.status_code != httpx.codes.OK:
                        raise _FetchError(f"status_{response.status_code}")
                    body = await _read_limited(response)
            except httpx.HTTPError as exc:
                raise _FetchError(type(exc).__name__) from exc
        try:
            return parse_json(body, max_depth=_MAX_JSON_DEPTH)
        except PayloadError as exc:
            raise _FetchError("not_json") from exc


class _FetchError(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


async def _read_limited(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_JWKS_BYTES:
            raise _FetchError("too_large")
        chunks.append(chunk)
    return b"".join(chunks)
