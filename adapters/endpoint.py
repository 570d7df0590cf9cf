"""One endpoint of an adapter: maps a client request to canonical and a response back.

The request side runs these steps, leaving at the first failure:

1. match the client path and take its ``{name}`` segments;
2. fold Bengali digits to ASCII, if the endpoint opts in with ``digits: ascii``;
3. check path parameters against their patterns;
4. validate the client body against the client-side request schema;
5. build the canonical body, path and query;
6. validate the canonical body against the canonical request schema.

Failures in steps 1-4 are the client's: ``PayloadError(SCHEMA_VIOLATION)``; failures in
5-6 are ``PayloadError(MAPPING_FAILED)``. Either carries a JSON pointer, never a value.

The response side maps only 2xx bodies: any other status, and a 2xx without a body,
passes through untouched so that the provider's own error answer reaches the client.
A 2xx body that does not validate or map is the provider's fault:
``UpstreamError(UPSTREAM_RESPONSE_INVALID)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

from adapters.compile import (
    EMPTY_SCOPE,
    Builder,
    MappingCompiler,
    MappingError,
    Scope,
    encode_query,
    fold_digits,
)
from adapters.paths import PathPattern, PathSyntaxError, PathTemplate
from adapters.schemas import Schema, SchemaLoader
from adapters.spec import EndpointSpec, Mapping, RequestSpec, ResponseSpec
from gateway.errors import PayloadError, Reason, UpstreamError


@dataclass(frozen=True, slots=True)
class MappedRequest:
    """The canonical request: method, endpoint path after the service code, query."""

    method: str
    path: str
    query: str
    body: Any | None


@dataclass(frozen=True, slots=True)
class _Request:
    params: dict[str, re.Pattern[str]]
    client_schema: Schema | None
    canonical_schema: Schema | None
    digits: bool
    method: str
    template: PathTemplate | None
    path_params: Builder | None
    query: Literal["passthrough", "drop"] | Builder
    body: Literal["passthrough", "none"] | Builder


@dataclass(frozen=True, slots=True)
class _Response:
    client_schema: Schema | None
    canonical_schema: Schema | None
    body: Literal["passthrough"] | Builder


class EndpointAdapter:
    """The compiled mapping of one endpoint; ``name`` is ``adapter:endpoint``."""

    def __init__(
        self,
        name: str,
        method: str,
        pattern: PathPattern,
        request: _Request,
        response: _Response,
    ) -> None:
        self.name = name
        self.method = method
        self.pattern = pattern
        self._request = request
        self._response = response

    def matches(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters if this endpoint handles ``method path``, else None."""
        if method.upper() != self.method:
            return None
        return self.pattern.match(path)

    def map_request(
        self, method: str, path: str, query: str, body: Any | None
    ) -> MappedRequest:
        """Map a client request to the canonical request; raise PayloadError."""
        spec = self._request

        # Step 1: the path parameters.
        params = self.matches(method, path)
        if params is None:
            raise PayloadError(Reason.MAPPING_FAILED, log_reason="endpoint_mismatch")

        # Step 2: the digit folding the adapter asked for.
        if spec.digits:
            body, params = fold_digits(body), fold_digits(params)
            query = fold_digits(query)

        # Steps 3 and 4: the client's side is valid.
        for name, regex in spec.params.items():
            if not regex.fullmatch(params[name]):
                raise PayloadError(
                    Reason.SCHEMA_VIOLATION, log_reason=f"path_parameter.{name}"
                )
        _client_valid(spec.client_schema, body)

        # Step 5: the canonical request.
        scope = Scope(params, parse_qs(query, keep_blank_values=True) if query else {})
        try:
            mapped = self._build(scope, path, query, body)
        except MappingError as failure:
            raise PayloadError(
                Reason.MAPPING_FAILED,
                pointer=failure.pointer,
                log_reason=f"mapping_failed.{failure.why}",
            ) from None

        # Step 6: the canonical side is valid.
        where = _first_error(spec.canonical_schema, mapped.body)
        if where is not None:
            raise PayloadError(
                Reason.MAPPING_FAILED, pointer=where, log_reason="canonical_request"
            )
        return mapped

    def _build(self, scope: Scope, path: str, query: str, body: Any) -> MappedRequest:
        spec = self._request
        if spec.template is not None:
            path = self._path(spec.template, scope, body)
        if spec.query == "drop":
            query = ""
        elif spec.query != "passthrough":
            query = encode_query(spec.query({} if body is None else body, scope))
        if spec.body == "none":
            body = None
        elif spec.body != "passthrough":
            body = spec.body({} if body is None else body, scope)
        return MappedRequest(spec.method, path, query, body)

    def _path(self, template: PathTemplate, scope: Scope, body: Any) -> str:
        values = dict(scope.params)
        builder = self._request.path_params
        if builder is not None:
            for name, value in builder({} if body is None else body, scope).items():
                if isinstance(value, bool) or not isinstance(value, str | int):
                    raise MappingError(None, "path_value_type")
                values[name] = str(value)
        if not template.names <= values.keys():
            raise MappingError(None, "path_value_missing")
        path = template.render(values)
        if path is None:
            raise MappingError(None, "unsafe_path_value")
        return path

    def map_response(self, status: int, body: Any | None) -> Any | None:
        """Map a canonical 2xx body to the client's; other statuses pass unchanged.

        Raises UpstreamError(UPSTREAM_RESPONSE_INVALID) if the body fails either
        schema or cannot be mapped.
        """
        spec = self._response
        if not 200 <= status < 300 or body is None:
            return body
        _provider_valid(spec.canonical_schema, body, "canonical_response")
        if spec.body != "passthrough":
            try:
                body = spec.body(body, EMPTY_SCOPE)
            except MappingError as failure:
                raise UpstreamError(
                    Reason.UPSTREAM_RESPONSE_INVALID,
                    log_reason=f"response_mapping.{failure.why}:{failure.pointer}",
                ) from None
        _provider_valid(spec.client_schema, body, "client_response")
        return body


def _first_error(schema: Schema | None, body: Any) -> str | None:
    return None if schema is None else schema.first_error(body)


def _client_valid(schema: Schema | None, body: Any) -> None:
    where = _first_error(schema, body)
    if where is not None:
        raise PayloadError(Reason.SCHEMA_VIOLATION, pointer=where)


def _provider_valid(schema: Schema | None, body: Any, side: str) -> None:
    where = _first_error(schema, body)
    if where is not None:
        raise UpstreamError(
            Reason.UPSTREAM_RESPONSE_INVALID, log_reason=f"{side}:{where}"
        )


def compile_endpoint(
    adapter: str,
    index: int,
    spec: EndpointSpec,
    compiler: MappingCompiler,
    schemas: SchemaLoader,
) -> EndpointAdapter:
    """Compile one endpoint spec; raise ConfigError naming the file and line."""
    loc: list[str | int] = ["endpoints", index]
    try:
        pattern = PathPattern.parse(spec.match.path)
    except PathSyntaxError as exc:
        raise compiler.error([*loc, "match", "path"], str(exc)) from exc
    request = _compile_request(spec, pattern, [*loc, "request"], compiler, schemas)
    response = _compile_response(spec.response, [*loc, "response"], compiler, schemas)
    name = f"{adapter}:{spec.name}"
    return EndpointAdapter(name, spec.match.method, pattern, request, response)


def _compile_request(
    endpoint: EndpointSpec,
    pattern: PathPattern,
    loc: list[str | int],
    compiler: MappingCompiler,
    schemas: SchemaLoader,
) -> _Request:
    spec = endpoint.request
    names = pattern.names
    return _Request(
        params=_param_patterns(spec, names, loc, compiler),
        client_schema=_schema(spec.schema_, [*loc, "schema"], compiler, schemas),
        canonical_schema=_schema(
            spec.canonical_schema, [*loc, "canonical_schema"], compiler, schemas
        ),
        digits=spec.digits == "ascii",
        method=spec.method or endpoint.match.method,
        template=_template(spec, names, loc, compiler),
        path_params=_mapping(
            spec.path_params or None, [*loc, "path_params"], compiler, names
        ),
        query=_choice(spec.query, [*loc, "query"], compiler, names),
        body=_choice(spec.body, [*loc, "body"], compiler, names),
    )


def _compile_response(
    spec: ResponseSpec,
    loc: list[str | int],
    compiler: MappingCompiler,
    schemas: SchemaLoader,
) -> _Response:
    return _Response(
        client_schema=_schema(spec.schema_, [*loc, "schema"], compiler, schemas),
        canonical_schema=_schema(
            spec.canonical_schema, [*loc, "canonical_schema"], compiler, schemas
        ),
        body=_choice(spec.body, [*loc, "body"], compiler, None),
    )


def _param_patterns(
    spec: RequestSpec,
    names: frozenset[str],
    loc: list[str | int],
    compiler: MappingCompiler,
) -> dict[str, re.Pattern[str]]:
    patterns: dict[str, re.Pattern[str]] = {}
    for name, text in spec.params.items():
        if name not in names:
            raise compiler.error([*loc, "params", name], "no such path parameter")
        try:
            patterns[name] = re.compile(text, re.ASCII)
        except re.error as exc:
            raise compiler.error([*loc, "params", name], "not a regex") from exc
    return patterns


def _template(
    spec: RequestSpec,
    names: frozenset[str],
    loc: list[str | int],
    compiler: MappingCompiler,
) -> PathTemplate | None:
    if spec.path is None:
        return None
    try:
        template = PathTemplate.parse(spec.path)
    except PathSyntaxError as exc:
        raise compiler.error([*loc, "path"], str(exc)) from exc
    known = names | spec.path_params.keys()
    unknown = sorted(template.names - known)
    if unknown:
        raise compiler.error([*loc, "path"], f"{{{unknown[0]}}} has no value")
    unused = sorted(spec.path_params.keys() - template.names)
    if unused:
        raise compiler.error([*loc, "path_params", unused[0]], "not used in path")
    return template


def _schema(
    name: str | None,
    loc: list[str | int],
    compiler: MappingCompiler,
    schemas: SchemaLoader,
) -> Schema | None:
    if name is None:
        return None
    return schemas.load(name, compiler.file, compiler.line(loc))


def _mapping(
    fields: Mapping | None,
    loc: list[str | int],
    compiler: MappingCompiler,
    params: frozenset[str] | None,
) -> Builder | None:
    if fields is None:
        return None
    return compiler.object(fields, loc, params)


def _choice(
    value: str | Mapping,
    loc: list[str | int],
    compiler: MappingCompiler,
    params: frozenset[str] | None,
) -> Any:
    if isinstance(value, str):
        return value
    return compiler.object(value, loc, params)
