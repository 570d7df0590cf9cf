"""The directory: which members, subsystems and services exist, and their keys.

Built once from ``directory.yaml`` and the JWKS files it names. Lookups take parsed
identifiers, so a string never reaches a dict key unchecked. A subsystem's keys are
indexed by ``kid`` under that subsystem only: a key registered for one client can
never verify a credential that names another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from jwt.exceptions import PyJWKError, PyJWKSetError

from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import DirectoryFile, ServiceEntry
from gateway.yamlconf import load_model

#: Algorithms a registered key may use. HMAC and ``none`` are never accepted: a
#: mediator must not share secrets with its clients, and ``none`` proves nothing.
ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256"})


@dataclass(frozen=True, slots=True)
class RegisteredKey:
    kid: str
    algorithm: str
    key: Any


@dataclass(frozen=True, slots=True)
class Service:
    id: ServiceId
    url: str
    entry: ServiceEntry


@dataclass(frozen=True, slots=True)
class Subsystem:
    id: ClientId
    title: str
    keys: dict[str, RegisteredKey] = field(default_factory=dict)


class Directory:
    """Members, subsystems, services and registered public keys of one deployment."""

    def __init__(
        self,
        instance: str,
        subsystems: dict[ClientId, Subsystem],
        services: dict[ServiceId, Service],
    ) -> None:
        self.instance = instance
        self._subsystems = subsystems
        self._services = services

    @classmethod
    def load(cls, path: Path) -> Directory:
        """Load ``directory.yaml`` and the JWKS files it names; raise ConfigError."""
        data = load_model(path, DirectoryFile)
        subsystems: dict[ClientId, Subsystem] = {}
        services: dict[ServiceId, Service] = {}
        for member in data.members:
            for entry in member.subsystems:
                client = _client_id(f"{member.id}/{entry.code}", path)
                if client.instance != data.instance:
                    raise ConfigError(
                        str(path), f"{client}: instance is not {data.instance}"
                    )
                if client in subsystems:
                    raise ConfigError(str(path), f"{client} is listed twice")
                keys = load_jwks(path.parent / entry.keys) if entry.keys else {}
                subsystems[client] = Subsystem(client, entry.title, keys)
                for svc in entry.services:
                    sid = ServiceId(client, svc.code)
                    if sid in services:
                        raise ConfigError(str(path), f"{sid} is listed twice")
                    services[sid] = Service(sid, str(svc.url).rstrip("/"), svc)
        return cls(data.instance, subsystems, services)

    def subsystem(self, client: ClientId) -> Subsystem | None:
        return self._subsystems.get(client)

    def service(self, service: ServiceId) -> Service | None:
        return self._services.get(service)

    def subsystems(self) -> list[Subsystem]:
        return sorted(self._subsystems.values(), key=lambda s: str(s.id))

    def services(self) -> list[Service]:
        return sorted(self._services.values(), key=lambda s: str(s.id))


def _client_id(text: str, path: Path) -> ClientId:
    try:
        return ClientId.parse(text)
    except MediatorError as exc:
        raise ConfigError(str(path), f"{text!r} is not a valid subsystem id") from exc


def load_jwks(path: Path) -> dict[str, RegisteredKey]:
    """Read a JWKS file of public keys; raise ConfigError for anything else in it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "not a readable JSON Web Key Set") from exc
    return parse_jwks(document, str(path))


def parse_jwks(document: Any, source: str) -> dict[str, RegisteredKey]:
    """Public keys of a JWKS document by ``kid``; raise ConfigError if unusable.

    Every key needs a ``kid`` and an ``alg`` from :data:`ALLOWED_ALGORITHMS`, a
    ``kid`` appears once, and private key material is refused.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigError(source, "a JWKS needs a 'keys' list")
    keys: dict[str, RegisteredKey] = {}
    for jwk in document["keys"]:
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
        if kid in keys:
            raise ConfigError(source, f"key {kid!r} appears twice")
        try:
            parsed = jwt.PyJWK.from_dict(jwk)
        except (PyJWKError, PyJWKSetError, ValueError, TypeError) as exc:
            raise ConfigError(source, f"key {kid!r} is not a valid public key") from exc
        keys[kid] = RegisteredKey(kid, str(alg), parsed.key)
    return keys
