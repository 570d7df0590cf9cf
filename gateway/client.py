"""The departmental system's side of an exchange, as a small Python client.

It does what any X-Road REST client of this mediator must do: a fresh one-time
assertion per request, ``X-Road-Client`` and ``X-Road-Purpose`` headers, and a check
of the node's response signature against the node's published keys. The demo and
the end-to-end tests use it; an integrator can read it as the reference.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import OKPAlgorithm

from gateway import wire
from gateway.auth import make_assertion
from gateway.directory import RegisteredKey, parse_jwks
from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.keyfiles import ECDSA_P256, ED25519
from gateway.keyring import SigningKey
from gateway.verifying import verify_response


def new_client_key(kid: str) -> tuple[SigningKey, dict[str, Any]]:
    """A new Ed25519 key for a departmental system and its public JWK."""
    private = ed25519.Ed25519PrivateKey.generate()
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return SigningKey(kid, "ed25519", private), jwk


def read_client_key(path: Path, kid: str) -> SigningKey:
    """A departmental system's private key from an unencrypted PKCS#8 PEM file.

    ``kid`` is the id the key is registered under; the file does not carry it.

    :raises ConfigError: the file cannot be read, is not an unencrypted PEM key,
        or holds a key other than Ed25519 or ECDSA P-256.
    """
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        # The library's message is not repeated: it may quote the file.
        raise ConfigError(str(path), "not a readable unencrypted PEM key") from exc
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return SigningKey(kid, ED25519, private)
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
        private.curve, ec.SECP256R1
    ):
        return SigningKey(kid, ECDSA_P256, private)
    raise ConfigError(str(path), "a client key must be Ed25519 or ECDSA P-256")


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as the client saw it."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed_ms: float
    signature_ok: bool

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    @property
    def error_type(self) -> str | None:
        value: str | None = self.headers.get(wire.XROAD_ERROR)
        return value


class DepartmentClient:
    """Calls services through a mediator node as one subsystem."""

    def __init__(
        self,
        *,
        client_id: ClientId,
        key: SigningKey,
        audience: str,
        base_url: str,
        http: httpx.AsyncClient,
        node_keys: Mapping[str, RegisteredKey] | None = None,
        host: str | None = None,
    ) -> None:
        self.client_id = client_id
        self._key = key
        self._audience = audience
        self._base_url = base_url.rstrip("/")
        self._http = http
        self._node_keys = dict(node_keys or {})
        self._host = host

    @property
    def node_keys(self) -> dict[str, RegisteredKey]:
        """The node's public keys this client checks answers with."""
        return dict(self._node_keys)

    async def load_node_keys(self) -> None:
        """Fetch the node's published keys from ``/.well-known/jwks.json``."""
        response = await self._http.get(f"{self._base_url}/.well-known/jwks.json")
        response.raise_for_status()
        self._node_keys = parse_jwks(response.json(), "node jwks")

    def assertion(self, *, lifetime_s: int = 60) -> str:
        return make_assertion(
            client_id=self.client_id,
            key=self._key,
            audience=self._audience,
            lifetime_s=lifetime_s,
        )

    async def call(
        self,
        method: str,
        service: ServiceId,
        path: str = "",
        *,
        json: Any = None,
        purpose: str | None = None,
        query: Mapping[str, str] | None = None,
        token: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send one request; the answer's signature is checked when keys are known."""
        headers = {
            "authorization": f"Bearer {token or self.assertion()}",
            wire.XROAD_CLIENT: str(self.client_id),
        }
        if self._host is not None:
            headers["host"] = self._host
        if purpose is not None:
            headers[wire.PURPOSE] = purpose
        content = None
        if json is not None:
            content = orjson.dumps(json)
            headers[wire.CONTENT_TYPE] = "application/json"
        headers.update(extra_headers or {})
        url = f"{self._base_url}/r1/{service}{path}"

        started = time.perf_counter()
        response = await self._http.request(
            method, url, headers=headers, content=content, params=query
        )
        body = await response.aread()
        elapsed = (time.perf_counter() - started) * 1000
        return Answer(
            response.status_code,
            response.headers,
            body,
            round(elapsed, 3),
            self._signature_ok(response, body),
        )

    def _signature_ok(self, response: httpx.Response, body: bytes) -> bool:
        if not self._node_keys:
            return False
        try:
            verify_response(
                status=response.status_code,
                headers=dict(response.headers.items()),
                body=body,
                keys=self._node_keys,
                max_age_s=300,
            )
        except MediatorError:
            return False
        return True
