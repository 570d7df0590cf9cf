"""X-Road REST metaservices, answered by the node itself.

The paths and wire forms follow the X-Road Service Metadata Protocol (PR-META) and
its REST complement (PR-MREST):

- ``GET /listClients[?xRoadInstance=I]`` lists the members and subsystems of the
  directory (also served at ``/r1/listClients``);
- ``GET /r1/{provider}/listMethods`` lists the provider's services and the endpoints
  that any access right opens on them;
- ``GET /r1/{provider}/allowedMethods`` lists only what the authenticated caller
  may call (from the access rights, default deny);
- ``GET /r1/{provider}/getOpenAPI?serviceCode=C`` returns the service's OpenAPI
  document with the provider's own address replaced by this node's URL.

JSON is the default; ``Accept: text/xml`` or ``application/xml`` gives XML built with
:mod:`xml.etree.ElementTree`, which escapes every text and attribute value. Every
call is authenticated like an exchange and logged like one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs
from xml.etree import ElementTree as ET

import orjson

from gateway import wire
from gateway.auth import ClientAuthenticator
from gateway.errors import (
    ConfigError,
    MediatorError,
    Reason,
    ResolutionError,
)
from gateway.exchange import Inbound, Outbound, authenticate
from gateway.framing import method_not_allowed
from gateway.identifiers import ClientId, ServiceId
from gateway.record import Decision, ExchangeRecord
from gateway.settings import DirectoryFile
from gateway.yamlconf import load_model
from policies.access import AccessPolicy

LIST_CLIENTS: Final = "listClients"
LIST_METHODS: Final = "listMethods"
ALLOWED_METHODS: Final = "allowedMethods"
GET_OPENAPI: Final = "getOpenAPI"
#: Service codes reserved for metaservices on every provider subsystem.
PROVIDER_CODES: Final = frozenset({LIST_METHODS, ALLOWED_METHODS, GET_OPENAPI})

XROAD_NS: Final = "http://x-road.eu/xsd/xroad.xsd"
ID_NS: Final = "http://x-road.eu/xsd/identifiers"
ET.register_namespace("xroad", XROAD_NS)
ET.register_namespace("id", ID_NS)

_PART: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_PATH_PARAM: Final = re.compile(r"\{[^/{}]+\}")
_MAX_QUERY: Final = 512


def metaservice_of(raw_path: bytes) -> str | None:
    """The metaservice a raw request path names, or None for anything else.

    Only the exact forms are recognised: ``/listClients``, ``/r1/listClients`` and
    ``/r1/I/C/M/S/{listMethods|allowedMethods|getOpenAPI}``. Identifier parts are
    checked later, by :class:`~gateway.identifiers.ClientId`.
    """
    if raw_path in (b"/listClients", b"/r1/listClients"):
        return LIST_CLIENTS
    if not raw_path.startswith(b"/r1/"):
        return None
    segments = raw_path[4:].split(b"/")
    if len(segments) != 5:
        return None
    code = segments[4].decode("ascii", errors="replace")
    return code if code in PROVIDER_CODES else None


@dataclass(frozen=True, slots=True)
class _Entity:
    """A member or subsystem of the directory as listClients shows it."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str | None
    name: str


@dataclass(frozen=True, slots=True)
class _ServiceInfo:
    id: ServiceId
    provider_url: str
    openapi: dict[str, Any] | None


class MetaServices:
    """The metaservices of one node, built once from its deployment."""

    def __init__(
        self,
        *,
        instance: str,
        entities: list[_Entity],
        services: dict[ServiceId, _ServiceInfo],
        access: AccessPolicy,
        authenticator: ClientAuthenticator,
        public_url: str,
        node_id: str,
    ) -> None:
        self._instance = instance
        self._entities = entities
        self._services = services
        self._access = access
        self._authenticator = authenticator
        self._public_url = public_url.rstrip("/")
        self._node_id = node_id
        self._clients = [
            ClientId(e.instance, e.member_class, e.member_code, e.subsystem)
            for e in entities
            if e.subsystem is not None
        ]

    @classmethod
    def load(
        cls,
        config_dir: Path,
        *,
        access: AccessPolicy,
        authenticator: ClientAuthenticator,
        public_url: str,
        node_id: str,
    ) -> MetaServices:
        """Read ``directory.yaml`` and the OpenAPI documents it names.

        :raises ConfigError: if a document is missing, not JSON or not an object.
        """
        data = load_model(config_dir / "directory.yaml", DirectoryFile)
        entities: list[_Entity] = []
        services: dict[ServiceId, _ServiceInfo] = {}
        for member in data.members:
            instance, member_class, member_code = member.id.split("/")
            entities.append(
                _Entity(instance, member_class, member_code, None, member.title)
            )
            for sub in member.subsystems:
                entities.append(
                    _Entity(instance, member_class, member_code, sub.code, sub.title)
                )
                provider = ClientId(instance, member_class, member_code, sub.code)
                for svc in sub.services:
                    sid = ServiceId(provider, svc.code)
                    document = (
                        _read_openapi(config_dir / svc.openapi) if svc.openapi else None
                    )
                    url = str(svc.url).rstrip("/")
                    services[sid] = _ServiceInfo(sid, url, document)
        return cls(
            instance=data.instance,
            entities=entities,
            services=services,
            access=access,
            authenticator=authenticator,
            public_url=public_url,
            node_id=node_id,
        )

    async def run(self, request: Inbound, record: ExchangeRecord) -> Outbound:
        """Answer one metaservice call; raise MediatorError as the pipeline does."""
        record.enter("authenticate")
        client = await authenticate(self._authenticator, request.headers, record)

        record.enter("resolve")
        if request.method not in ("GET", "HEAD"):
            raise method_not_allowed(("GET", "HEAD"), log_reason="metaservice")
        code = metaservice_of(request.raw_path)
        query = _query(request.query)
        xml = _wants_xml(request.headers.get("accept"))
        if code == LIST_CLIENTS:
            record.service_id = f"{self._node_id}/{LIST_CLIENTS}"
            outbound = self._list_clients(query, xml=xml)
        else:
            provider = _provider(request.raw_path)
            record.service_id = f"{provider}/{code}"
            outbound = self._provider_call(code, provider, client, query, xml=xml)

        record.decision = Decision.SERVED
        if request.method == "HEAD":
            return Outbound(outbound.status, outbound.headers, b"", None)
        return outbound

    def _provider_call(
        self,
        code: str | None,
        provider: ClientId,
        client: ClientId,
        query: dict[str, str],
        *,
        xml: bool,
    ) -> Outbound:
        if code == GET_OPENAPI:
            return self._get_openapi(provider, query)
        if not any(sid.provider == provider for sid in self._services):
            raise ResolutionError(Reason.UNKNOWN_SERVICE, log_reason="unknown_provider")
        clients = [client] if code == ALLOWED_METHODS else self._clients
        methods = self.methods(provider, clients, keep_empty=code == LIST_METHODS)
        if xml:
            return _xml(_methods_xml(methods))
        return _json({"service": [_service_json(sid, e) for sid, e in methods]})

    def methods(
        self, provider: ClientId, clients: Iterable[ClientId], *, keep_empty: bool
    ) -> list[tuple[_ServiceInfo, list[tuple[str, str]]]]:
        """Each service of ``provider`` with the (method, path) ``clients`` may call."""
        opened: dict[ServiceId, set[tuple[str, str]]] = {}
        for client in clients:
            for sid, method, pattern in self._access.allowed(client, provider):
                opened.setdefault(sid, set()).add((method, xroad_path(pattern)))
        found = []
        for sid in sorted(s for s in self._services if s.provider == provider):
            endpoints = sorted(opened.get(sid, ()))
            if endpoints or keep_empty:
                found.append((self._services[sid], endpoints))
        return found

    def _list_clients(self, query: dict[str, str], *, xml: bool) -> Outbound:
        instance = query.get("xRoadInstance")
        if instance is not None and not _PART.fullmatch(instance):
            raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_instance")
        entities = [e for e in self._entities if instance in (None, e.instance)]
        if xml:
            return _xml(_clients_xml(entities))
        return _json({"member": [_entity_json(e) for e in entities]})

    def _get_openapi(self, provider: ClientId, query: dict[str, str]) -> Outbound:
        code = query.get("serviceCode")
        if code is None or not _PART.fullmatch(code):
            raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_service_code")
        info = self._services.get(ServiceId(provider, code))
        if info is None or info.openapi is None:
            raise ResolutionError(Reason.UNKNOWN_SERVICE, log_reason="no_openapi")
        node_url = f"{self._public_url}/r1/{info.id}"
        return _json(_rewrite(info.openapi, info.provider_url, node_url))


def xroad_path(pattern: str) -> str:
    """An access-rule path pattern in X-Road's endpoint notation (``*``, ``**``)."""
    return _PATH_PARAM.sub("*", pattern)


def _provider(raw_path: bytes) -> ClientId:
    parts = raw_path.decode("ascii", errors="replace").split("/")
    return ClientId(*parts[2:6])


def _query(raw: bytes) -> dict[str, str]:
    if len(raw) > _MAX_QUERY:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="query_too_long")
    try:
        parsed = parse_qs(raw.decode("ascii"), strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="bad_query") from exc
    if any(len(values) != 1 for values in parsed.values()):
        raise ResolutionError(Reason.INVALID_QUERY, log_reason="repeated_parameter")
    return {name: values[0] for name, values in parsed.items()}


def _wants_xml(accept: str | None) -> bool:
    if not accept:
        return False
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "application/json" in types:
        return False
    return "text/xml" in types or "application/xml" in types


def _rewrite(node: Any, provider_url: str, node_url: str) -> Any:
    """A copy of an OpenAPI document that names the node wherever the provider was."""
    if isinstance(node, dict):
        copied = {k: _rewrite(v, provider_url, node_url) for k, v in node.items()}
        if "servers" in copied:
            copied["servers"] = [{"url": node_url}]
        return copied
    if isinstance(node, list):
        return [_rewrite(item, provider_url, node_url) for item in node]
    if isinstance(node, str):
        return node.replace(provider_url, node_url)
    return node


def _read_openapi(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "not a readable OpenAPI JSON document") from exc
    if not isinstance(document, dict) or "openapi" not in document:
        raise ConfigError(str(path), "an OpenAPI document needs an 'openapi' field")
    document["servers"] = document.get("servers") or []
    return document


def _entity_json(entity: _Entity) -> dict[str, Any]:
    ident: dict[str, str] = {
        "member_class": entity.member_class,
        "member_code": entity.member_code,
        "object_type": "SUBSYSTEM" if entity.subsystem else "MEMBER",
        "xroad_instance": entity.instance,
    }
    if entity.subsystem is not None:
        ident["subsystem_code"] = entity.subsystem
    return {"id": ident, "name": entity.name}


def _service_json(info: _ServiceInfo, endpoints: list[tuple[str, str]]) -> Any:
    provider = info.id.provider
    return {
        "member_class": provider.member_class,
        "member_code": provider.member_code,
        "object_type": "SERVICE",
        "service_code": info.id.code,
        "service_type": "OPENAPI" if info.openapi is not None else "REST",
        "subsystem_code": provider.subsystem,
        "xroad_instance": provider.instance,
        "endpoint_list": [{"method": m, "path": p} for m, p in endpoints],
    }


def _x(name: str) -> str:
    return f"{{{XROAD_NS}}}{name}"


def _i(name: str) -> str:
    return f"{{{ID_NS}}}{name}"


def _id_parts(parent: ET.Element, parts: Iterable[tuple[str, str | None]]) -> None:
    for name, value in parts:
        if value is not None:
            ET.SubElement(parent, _i(name)).text = value


def _clients_xml(entities: list[_Entity]) -> ET.Element:
    root = ET.Element(_x("clientList"))
    for entity in entities:
        member = ET.SubElement(root, _x("member"))
        kind = "SUBSYSTEM" if entity.subsystem else "MEMBER"
        ident = ET.SubElement(member, _x("id"), {_i("objectType"): kind})
        _id_parts(
            ident,
            (
                ("xRoadInstance", entity.instance),
                ("memberClass", entity.member_class),
                ("memberCode", entity.member_code),
                ("subsystemCode", entity.subsystem),
            ),
        )
        ET.SubElement(member, _x("name")).text = entity.name
    return root


def _methods_xml(
    methods: list[tuple[_ServiceInfo, list[tuple[str, str]]]],
) -> ET.Element:
    root = ET.Element(_x("restServiceDetailsList"))
    for info, endpoints in methods:
        provider = info.id.provider
        service = ET.SubElement(root, _x("service"), {_i("objectType"): "SERVICE"})
        _id_parts(
            service,
            (
                ("xRoadInstance", provider.instance),
                ("memberClass", provider.member_class),
                ("memberCode", provider.member_code),
                ("subsystemCode", provider.subsystem),
                ("serviceCode", info.id.code),
            ),
        )
        ET.SubElement(service, _x("serviceType")).text = (
            "OPENAPI" if info.openapi is not None else "REST"
        )
        listing = ET.SubElement(service, _x("endpointList"))
        for method, path in endpoints:
            ET.SubElement(listing, _x("endpoint"), {"method": method, "path": path})
    return root


def _json(document: Any) -> Outbound:
    headers = {wire.CONTENT_TYPE: "application/json"}
    return Outbound(200, headers, orjson.dumps(document), None)


def _xml(root: ET.Element) -> Outbound:
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Outbound(200, {wire.CONTENT_TYPE: "text/xml; charset=utf-8"}, body, None)


__all__ = ["MediatorError", "MetaServices", "metaservice_of", "xroad_path"]
