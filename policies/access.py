"""Access rights: which client may call which endpoints of which service (step 4).

Rights come from ``access.yaml``. Each right names one client, one service and the
endpoints (method and path pattern) it opens; anything no right names is denied.
Path patterns are matched against the endpoint path that the node has already
decoded once and normalised, so a pattern never sees ``%2F``, dot-segments, empty
segments or control characters:

- a literal segment matches itself exactly;
- ``{name}`` matches exactly one non-empty segment and captures it as ``name``;
- ``**``, allowed as the last segment only, matches the rest, including nothing.

``HEAD`` is allowed wherever ``GET`` is (RFC 9110 section 9.3.2).
Patterns are compiled once into a table keyed by (client, service, method).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import limits
from pydantic import Field

from gateway.clientip import Network, parse_networks
from gateway.errors import AccessDeniedError, ConfigError, MediatorError, Reason
from gateway.identifiers import ClientId, ServiceId
from gateway.yamlconf import ErrorCollector, Strict, line_of, read_yaml, validate

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}", re.ASCII)
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()+,;=:@-]+", re.ASCII)
_RULE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}", re.ASCII)


# -- the file ------------------------------------------------------------------------


class EndpointEntry(Strict):
    method: str
    path: str = Field(min_length=1, max_length=512)


class RightEntry(Strict):
    id: str
    service: str
    client: str
    endpoints: tuple[EndpointEntry, ...] = Field(min_length=1)
    purposes: tuple[str, ...] = ()
    rate: str | None = None
    #: Optional: client addresses (CIDR) this right is limited to (C14).
    source_ips: tuple[str, ...] = ()


class AccessFile(Strict):
    """The whole of ``access.yaml``."""

    rights: tuple[RightEntry, ...] = ()


# -- the compiled policy -------------------------------------------------------------


@dataclass(frozen=True)
class AccessRule:
    """One right: its id goes into the message log of every exchange it allows."""

    id: str
    service: ServiceId
    client: ClientId
    purposes: tuple[str, ...]
    rate: str | None
    #: Networks the client's address must be in; empty: any address.
    source_ips: tuple[Network, ...] = ()


class AccessMatch(NamedTuple):
    """An allowed request: the rule, the endpoint pattern and its path parameters."""

    rule: AccessRule
    method: str
    pattern: str
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Endpoint:
    method: str
    pattern: str
    regex: re.Pattern[str]
    rule: AccessRule


_Key = tuple[str, ...]


def _key(client: ClientId, service: ServiceId, method: str) -> _Key:
    # A flat tuple of strings: the dataclasses' generated __eq__ and __hash__ on
    # nested identifiers cost more than the rest of a decision together.
    provider = service.provider
    return (
        client.instance,
        client.member_class,
        client.member_code,
        client.subsystem,
        provider.instance,
        provider.member_class,
        provider.member_code,
        provider.subsystem,
        service.code,
        method,
    )


class AccessPolicy:
    """Compiled access rights; default deny."""

    def __init__(self, endpoints: list[_Endpoint]) -> None:
        self._endpoints = tuple(endpoints)
        table: dict[_Key, list[_Endpoint]] = {}
        for endpoint in endpoints:
            methods = [endpoint.method]
            if endpoint.method == "GET":
                methods.append("HEAD")
            for method in methods:
                key = _key(endpoint.rule.client, endpoint.rule.service, method)
                table.setdefault(key, []).append(endpoint)
        self._table = {key: tuple(found) for key, found in table.items()}

    @classmethod
    def load(cls, path: Path, known_purposes: Collection[str]) -> AccessPolicy:
        """Load and compile ``access.yaml``.

        Raises ConfigError with the file and line for a malformed file, an unknown key,
        a bad identifier, method, path pattern or rate, a rule id used twice, or a
        purpose that ``known_purposes`` does not contain. Several bad rules (or
        endpoints of a rule) raise GroupedConfigError, one problem for each.
        """
        data = read_yaml(path)
        parsed = validate(data, AccessFile, path)
        endpoints: list[_Endpoint] = []
        seen: set[str] = set()
        collector = ErrorCollector()
        for index, entry in enumerate(parsed.rights):
            where = _Where(path, data, ("rights", index))
            with collector.attempt():
                if entry.id in seen:
                    raise where.error("id", f"rule id {entry.id!r} is used twice")
                seen.add(entry.id)
                rule = _rule(entry, known_purposes, where)
                endpoints.extend(_endpoints(entry, rule, where))
        collector.raise_any()
        return cls(endpoints)

    def match(
        self, client: ClientId, service: ServiceId, method: str, path: str
    ) -> AccessMatch:
        """The first rule whose endpoint matches; raise AccessDeniedError otherwise."""
        candidates = self._table.get(_key(client, service, method), ())
        for endpoint in candidates:
            found = endpoint.regex.fullmatch(path)
            if found is not None:
                return AccessMatch(
                    endpoint.rule, method, endpoint.pattern, found.groupdict()
                )
        raise AccessDeniedError(Reason.ACCESS_DENIED, log_reason="no_matching_rule")

    def check(
        self, client: ClientId, service: ServiceId, method: str, path: str
    ) -> AccessRule:
        """The rule that allows this request; raise AccessDeniedError(ACCESS_DENIED)."""
        for endpoint in self._table.get(_key(client, service, method), ()):
            if endpoint.regex.fullmatch(path) is not None:
                return endpoint.rule
        raise AccessDeniedError(Reason.ACCESS_DENIED, log_reason="no_matching_rule")

    def allowed(
        self, client: ClientId, provider: ClientId
    ) -> list[tuple[ServiceId, str, str]]:
        """(service, method, pattern) that ``client`` may call on ``provider``."""
        return sorted(
            {
                (e.rule.service, e.method, e.pattern)
                for e in self._endpoints
                if e.rule.client == client and e.rule.service.provider == provider
            }
        )

    def rules(self) -> list[AccessRule]:
        """Every rule, in file order."""
        return list(dict.fromkeys(e.rule for e in self._endpoints))


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regex for one endpoint path pattern; raise ValueError if malformed."""
    if not pattern.startswith("/"):
        raise ValueError("a path pattern starts with '/'")
    if pattern == "/":
        return re.compile("/", re.ASCII)
    segments = pattern[1:].split("/")
    parts: list[str] = []
    names: set[str] = set()
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        parts.append(_segment_regex(segment, last, names))
    return re.compile("".join(parts), re.ASCII)


def _segment_regex(segment: str, last: bool, names: set[str]) -> str:
    if segment == "**":
        if not last:
            raise ValueError("'**' may only be the last segment")
        return "(?:/.*)?"
    param = _PARAM.fullmatch(segment)
    if param is not None:
        name = param.group(1)
        if name in names:
            raise ValueError(f"parameter {{{name}}} appears twice")
        names.add(name)
        return f"/(?P<{name}>[^/]+)"
    if not _LITERAL.fullmatch(segment) or segment in {".", ".."}:
        raise ValueError(f"segment {segment!r} is not a literal, {{name}} or '**'")
    return "/" + re.escape(segment)


# -- building rules with located errors ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    path: Path
    data: Any
    loc: tuple[int | str, ...]

    def error(self, key: int | str, reason: str) -> ConfigError:
        loc = (*self.loc, key)
        line = line_of(self.data, loc)
        where = ".".join(str(part) for part in loc)
        return ConfigError(str(self.path), f"{where}: {reason}", line=line)


def _rule(entry: RightEntry, known: Collection[str], where: _Where) -> AccessRule:
    if not _RULE_ID.fullmatch(entry.id):
        raise where.error("id", "a rule id is lower-case letters, digits, '.-_'")
    try:
        client = ClientId.parse(entry.client)
    except MediatorError as exc:
        raise where.error("client", "not a subsystem id") from exc
    try:
        service = ServiceId.parse(entry.service)
    except MediatorError as exc:
        raise where.error("service", "not a service id") from exc
    for index, purpose in enumerate(entry.purposes):
        if purpose not in known:
            raise _Where(where.path, where.data, (*where.loc, "purposes")).error(
                index, f"unknown purpose {purpose!r}"
            )
    if entry.rate is not None:
        _check_rate(entry.rate, where)
    try:
        networks = parse_networks(entry.source_ips)
    except ValueError as exc:
        raise where.error("source_ips", "not an address or CIDR network") from exc
    purposes = tuple(entry.purposes)
    return AccessRule(entry.id, service, client, purposes, entry.rate, networks)


def _check_rate(rate: str, where: _Where) -> None:
    try:
        limits.parse(rate)
    except ValueError as exc:
        raise where.error(
            "rate", f"{rate!r} is not a rate such as '50/second'"
        ) from exc


def _endpoints(entry: RightEntry, rule: AccessRule, where: _Where) -> list[_Endpoint]:
    endpoints: list[_Endpoint] = []
    collector = ErrorCollector()
    for index, endpoint in enumerate(entry.endpoints):
        at = _Where(where.path, where.data, (*where.loc, "endpoints", index))
        with collector.attempt():
            endpoints.append(_endpoint(endpoint, rule, at))
    collector.raise_any()
    return endpoints


def _endpoint(endpoint: EndpointEntry, rule: AccessRule, at: _Where) -> _Endpoint:
    if endpoint.method not in METHODS:
        raise at.error("method", f"method must be one of {', '.join(sorted(METHODS))}")
    try:
        regex = compile_pattern(endpoint.path)
    except ValueError as exc:
        raise at.error("path", str(exc)) from exc
    return _Endpoint(endpoint.method, endpoint.path, regex, rule)
