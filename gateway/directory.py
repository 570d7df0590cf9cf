"""The directory: which members, subsystems and services exist, and their keys.

Built once from ``directory.yaml`` and the JWKS files and inline keys it names;
keys published at a subsystem's JWKS URL are fetched as :mod:`gateway.clientkeys`
says. Lookups take parsed
identifiers, so a string never reaches a dict key unchecked. A subsystem's keys are
indexed by ``kid`` under that subsystem only: a key registered for one client can
never verify a credential that names another.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.clientkeys import (
    ALLOWED_ALGORITHMS,
    RegisteredKey,
    RemoteJwks,
    parse_jwk_list,
    parse_jwks,
)
from gateway.errors import ConfigError, MediatorError
from gateway.identifiers import ClientId, ServiceId
from gateway.settings import DirectoryFile, ServiceEntry, SubsystemEntry
from gateway.yamlconf import ErrorCollector, line_of, read_yaml, validate

__all__ = [
    "ALLOWED_ALGORITHMS",
    "Directory",
    "RegisteredKey",
    "Service",
    "Subsystem",
    "load_jwks",
    "parse_jwks",
]


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
    #: Keys the subsystem publishes at a JWKS URL, fetched and cached by the node.
    remote: RemoteJwks | None = None

    async def key(self, kid: str) -> RegisteredKey | None:
        """The registered key ``kid``: a static one, else one the URL publishes."""
        key = self.keys.get(kid)
        if key is None and self.remote is not None:
            return await self.remote.get(kid)
        return key


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
        """Load ``directory.yaml`` and the JWKS files it names; raise ConfigError.

        Every subsystem is checked before anything is raised: several bad ones
        raise GroupedConfigError, one problem for each, located at its line.
        """
        document = read_yaml(path)
        data = validate(document, DirectoryFile, path)
        subsystems: dict[ClientId, Subsystem] = {}
        services: dict[ServiceId, Service] = {}
        collector = ErrorCollector()
        for m, member in enumerate(data.members):
            for s, entry in enumerate(member.subsystems):
                at = _Where(path, document, ("members", m, "subsystems", s))
                added: list[ClientId] = []
                with collector.attempt():
                    subsystem = _subsystem(f"{member.id}/{entry.code}", entry, at)
                    if subsystem.id.instance != data.instance:
                        reason = f"{subsystem.id}: instance is not {data.instance}"
                        raise at.error("code", reason)
                    if subsystem.id in subsystems:
                        raise at.error("code", f"{subsystem.id} is listed twice")
                    subsystems[subsystem.id] = subsystem
                    added.append(subsystem.id)
                for client in added:
                    for index, svc in enumerate(entry.services):
                        sid = ServiceId(client, svc.code)
                        with collector.attempt():
                            if sid in services:
                                place = _Where(path, document, (*at.loc, "services"))
                                raise place.error(index, f"{sid} is listed twice")
                            services[sid] = Service(sid, str(svc.url).rstrip("/"), svc)
        collector.raise_any()
        return cls(data.instance, subsystems, services)

    def subsystem(self, client: ClientId) -> Subsystem | None:
        return self._subsystems.get(client)

    def service(self, service: ServiceId) -> Service | None:
        return self._services.get(service)

    def subsystems(self) -> list[Subsystem]:
        return sorted(self._subsystems.values(), key=lambda s: str(s.id))

    def services(self) -> list[Service]:
        return sorted(self._services.values(), key=lambda s: str(s.id))


@dataclass(frozen=True, slots=True)
class _Where:
    """A place in ``directory.yaml``, for errors that name its field and line."""

    path: Path
    document: Any
    loc: tuple[int | str, ...]

    def error(self, key: int | str, reason: str) -> ConfigError:
        loc = (*self.loc, key)
        where = ".".join(str(part) for part in loc)
        line = line_of(self.document, loc)
        return ConfigError(str(self.path), f"{where}: {reason}", line=line)


def _subsystem(text: str, entry: SubsystemEntry, at: _Where) -> Subsystem:
    """One subsystem with its keys; raise ConfigError for a bad id or key set."""
    try:
        client = ClientId.parse(text)
    except MediatorError as exc:
        raise at.error("code", f"{text!r} is not a valid subsystem id") from exc
    keys = _static_keys(entry, at)
    return Subsystem(client, entry.title, keys, _remote_keys(entry, client))


def load_jwks(path: Path) -> dict[str, RegisteredKey]:
    """Read a JWKS file of public keys; raise ConfigError for anything else in it."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "not a readable JSON Web Key Set") from exc
    return parse_jwks(document, str(path))


def _static_keys(entry: SubsystemEntry, at: _Where) -> dict[str, RegisteredKey]:
    path = at.path
    keys = load_jwks(path.parent / entry.keys) if entry.keys else {}
    inline = parse_jwk_list(entry.keys_inline, f"{path}: {entry.code}.keys_inline")
    for kid in keys.keys() & inline.keys():
        raise at.error("keys_inline", f"{entry.code}: key {kid!r} is given twice")
    return keys | inline


def _remote_keys(entry: SubsystemEntry, client: ClientId) -> RemoteJwks | None:
    source = entry.keys_url
    if source is None:
        return None
    return RemoteJwks(
        str(source.url),
        owner=str(client),
        ttl_s=source.ttl_s,
        cooldown_s=source.cooldown_s,
        max_stale_s=source.max_stale_s,
        timeout_s=source.timeout_s,
    )
