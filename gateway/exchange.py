"""The exchange pipeline: one request from a departmental system to a provider.

The steps, as ``shared/DESIGN.md`` numbers them, and where each is decided:

1. frame       one Host, clean headers, body within its cap         (gateway.framing)
2. authenticate  identity from a verified client assertion only      (gateway.auth)
3. resolve     the service id and endpoint, decoded once, normalised (gateway.paths)
4. allow       access rights per service and endpoint, default deny  (policies.access)
5. throttle    rate and concurrency per client and service; the
               assertion's ``jti`` was accepted once in step 2       (gateway.throttle)
6. purpose     the declared purpose must be allowed for the client   (policies)
7. adapt       the client's schema mapped to the canonical one; the
               consent check of step 6 runs here, on the canonical
               request, because that is where the data subject is    (adapters,
                                                                      policies)
8. forward     signed (RFC 9421 + Content-Digest), its request record
               made durable first, then pooled and timed out         (gateway.signing,
                                                                      gateway.msglog,
                                                                      gateway.upstream)
9. verify      a provider with registered keys must sign its answer  (gateway.verifying)
10. release    only the purpose's fields, then mapped back           (policies,
                                                                      adapters)
11. sign       the response, bound to the forwarded request's
               signature through ``X-Road-Request-Hash``            (gateway.signing)
12. log        the record is durable before the answer is sent: the
               response record of a forwarded exchange, the only
               record of one that never left the node               (gateway.msglog)

Each step raises a :class:`~gateway.errors.MediatorError` subclass and stops the
exchange; the caller turns it into the X-Road error body, and every exchange, denied
or failed, is logged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from adapters import AdapterSet, EndpointAdapter
from gateway import relay, wire
from gateway.admission import Admission
from gateway.auth import AuthenticatedClient, ClientAuthenticator
from gateway.clientip import allowed_from
from gateway.directory import Directory, Service
from gateway.errors import (
    AccessDeniedError,
    AuthenticationError,
    MediatorError,
    NodeError,
    Reason,
    ResolutionError,
    UpstreamError,
)
from gateway.framing import Headers
from gateway.identifiers import ClientId
from gateway.jsonbody import dump_json, parse_json
from gateway.keyring import Keyring
from gateway.paths import Target, resolve
from gateway.record import Decision, ExchangeRecord, sha256_hex
from gateway.settings import NodeSettings
from gateway.signing import request_hash, sign_request
from gateway.subjects import SubjectHasher
from gateway.upstream import Upstream, UpstreamResponse, identity_body
from gateway.verifying import verify_response
from policies import Policies, check_consent, check_purpose, subject_of
from policies.access import AccessMatch
from policies.consent import ConsentBackend
from policies.purposes import Purpose

_JSON = "application/json"


class LogAppend(Protocol):
    """Appends a record to the message log and returns once it is committed
    (and, with ``flush``, on stable storage)."""

    def __call__(
        self,
        record: Mapping[str, Any],
        *,
        bodies: tuple[bytes | None, bytes | None] | None = None,
        flush: bool = True,
    ) -> Awaitable[object]: ...


@dataclass(frozen=True, slots=True)
class Inbound:
    """The request as framed by step 1."""

    method: str
    raw_path: bytes
    query: bytes
    headers: Headers
    body: bytes
    #: The client's address as the node decided it (gateway.clientip), or None.
    client_ip: str | None = None


@dataclass(frozen=True, slots=True)
class Outbound:
    """The answer for the client, before the node signs it."""

    status: int
    headers: dict[str, str]
    body: bytes
    forwarded_signature: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class _Forward:
    service: Service
    method: str
    path: str
    query: str
    body: bytes
    content_type: str | None
    #: The body as a document (canonical after an adapter), parsed once.
    document: Any = None


class ExchangePipeline:
    """Steps 2-10 of an exchange over services built once per node."""

    def __init__(
        self,
        *,
        settings: NodeSettings,
        directory: Directory,
        policies: Policies,
        adapters: AdapterSet,
        authenticator: ClientAuthenticator,
        admission: Admission,
        consents: ConsentBackend,
        keyring: Keyring,
        upstream: Upstream,
        subjects: SubjectHasher,
        log_request: LogAppend,
    ) -> None:
        self._settings = settings
        self._directory = directory
        self._policies = policies
        self._adapters = adapters
        self._authenticator = authenticator
        self._admission = admission
        self._consents = consents
        self._keyring = keyring
        self._upstream = upstream
        self._subjects = subjects
        self._log_request = log_request

    async def run(self, request: Inbound, record: ExchangeRecord) -> Outbound:
        """Steps 2-10 for one framed request; raise MediatorError at the first."""
        # Step 2: authenticate. Identity only from the verified assertion; its
        # use is recorded with the rate limit in step 5, or before any refusal
        # on the way there (gateway.admission).
        record.enter("authenticate")
        verified, use = await self._authenticator.verify(
            request.headers.only(wire.AUTHORIZATION, Reason.INVALID_HEADER)
        )
        client = verified.client_id
        try:
            target, service, allowed = self._route(request, verified, record)
        except Exception:
            # Whatever the refusal, even a defect's: the token is used first.
            await self._admission.record_use(use)
            raise
        rule = allowed.rule

        # Step 5: throttle, keyed by the authenticated client and the service.
        record.enter("throttle")
        await self._admission.admit(use, client, target.service, rule.rate)
        async with self._admission.throttle.in_flight(client):
            # Step 6: purpose.
            record.enter("purpose")
            declared = request.headers.only(wire.PURPOSE, Reason.INVALID_HEADER)
            purpose = check_purpose(rule, declared, self._policies.purposes)
            if purpose is not None:
                record.purpose = f"{purpose.id}@{purpose.version}"
                record.lawful_basis = str(purpose.lawful_basis)

            # Step 7: adapt the request, then consent on the canonical request.
            record.enter("adapt_request")
            adapter = self._adapters.find(
                client, target.service, request.method, target.endpoint
            )
            forward = self._adapt_request(request, service, target, adapter, record)
            if purpose is not None:
                await self._consent(purpose, client, allowed.params, forward, record)

            # Steps 8 and 9: sign, forward, verify.
            response, signature = await self._forward(
                request, client, forward, purpose, record
            )

            # Step 10: release and adapt the response.
            record.enter("release")
            body = self._release(response, purpose, adapter)
        headers = relay.forwarded_headers(response)
        if body is not None and response.body:
            headers[wire.CONTENT_TYPE] = _JSON
        payload = response.body if body is None else body
        if request.method == "HEAD":
            payload = b""
        record.decision = Decision.FORWARDED
        return Outbound(response.status, headers, payload, signature)

    def _route(
        self, request: Inbound, verified: AuthenticatedClient, record: ExchangeRecord
    ) -> tuple[Target, Service, AccessMatch]:
        """The rest of step 2, and steps 3 and 4: the service and the rule."""
        client = _claimed(verified, request.headers, record)

        # Step 3: resolve the service and the endpoint, decoded once.
        record.enter("resolve")
        target = resolve(request.raw_path, request.query)
        record.service_id, record.endpoint = str(target.service), target.endpoint
        service = self._directory.service(target.service)
        if service is None:
            raise ResolutionError(Reason.UNKNOWN_SERVICE)

        # Step 4: allow. Default deny, on the normalised endpoint only.
        record.enter("allow")
        allowed = self._policies.access.match(
            client, target.service, request.method, target.endpoint
        )
        record.rule_id = allowed.rule.id
        if not allowed_from(request.client_ip, allowed.rule.source_ips):
            raise AccessDeniedError(
                Reason.ACCESS_DENIED, log_reason="source_ip_not_allowed"
            )
        return target, service, allowed

    def _adapt_request(
        self,
        request: Inbound,
        service: Service,
        target: Any,
        adapter: EndpointAdapter | None,
        record: ExchangeRecord,
    ) -> _Forward:
        content_type = request.headers.only(wire.CONTENT_TYPE, Reason.INVALID_HEADER)
        parsed: Any = None
        body = request.body
        if body:
            relay.require_json(content_type)
            parsed = parse_json(
                body,
                max_depth=self._settings.limits.max_json_depth,
                content_type=content_type,
            )
            body = relay.strip_bom(body)
        if adapter is None:
            endpoint = relay.service_relative(target.endpoint_encoded)
            return _Forward(
                service,
                request.method,
                endpoint,
                target.query,
                body,
                content_type,
                parsed,
            )

        record.adapter = adapter.name
        mapped = adapter.map_request(
            request.method, target.endpoint, target.query, parsed
        )
        mapped_body = b"" if mapped.body is None else dump_json(mapped.body)
        return _Forward(
            service,
            mapped.method,
            relay.encode_path(mapped.path),
            mapped.query,
            mapped_body,
            _JSON if mapped.body is not None else None,
            mapped.body,
        )

    async def _consent(
        self,
        purpose: Purpose,
        client: ClientId,
        params: Mapping[str, str],
        forward: _Forward,
        record: ExchangeRecord,
    ) -> None:
        subject = subject_of(purpose, params, forward.document)
        if subject is not None:
            record.subject_hash = self._subjects.hash(subject)
        consent = await check_consent(
            self._consents, purpose, subject, client, time.time()
        )
        if consent is not None:
            record.consent_id = consent.consent_id

    async def _forward(
        self,
        request: Inbound,
        client: ClientId,
        forward: _Forward,
        purpose: Purpose | None,
        record: ExchangeRecord,
    ) -> tuple[UpstreamResponse, tuple[str, str]]:
        # Step 8: sign, log the request, forward.
        record.enter("forward")
        url = forward.service.url + forward.path
        if forward.query:
            url = f"{url}?{forward.query}"
        headers = {
            name: value
            for name, value in request.headers.items
            if name in wire.FORWARDED_REQUEST_HEADERS
        }
        headers.pop(wire.CONTENT_TYPE, None)
        if forward.content_type is not None and forward.body:
            headers[wire.CONTENT_TYPE] = forward.content_type
        headers[wire.XROAD_CLIENT] = str(client)
        if request.client_ip is not None:
            # Built by the node from the peer and trusted proxies only (C14).
            headers["x-forwarded-for"] = request.client_ip
        headers[wire.XROAD_ID] = record.message_id
        headers[wire.XROAD_REQUEST_ID] = record.request_id
        headers["accept-encoding"] = "identity"
        if purpose is not None:
            headers[wire.PURPOSE_FORWARDED] = f"{purpose.id}@{purpose.version}"
        key = self._keyring.active()
        headers.update(
            sign_request(
                key, method=forward.method, url=url, headers=headers, body=forward.body
            )
        )
        record.request_signature_kid = key.kid
        record.forwarded_body_sha256 = sha256_hex(forward.body)
        record.upstream_called = True
        # Fail closed: nothing leaves the node before its request record is
        # committed; a log that cannot take it raises LOG_UNAVAILABLE (503).
        # The response record's flush puts both on stable storage before the
        # answer; if the node dies in between, no answer left it either.
        await self._log_request(
            record.to_request_log(), bodies=(record.request_body, None), flush=False
        )
        record.request_logged = True
        timeout = forward.service.entry.timeout_s
        max_bytes = (
            forward.service.entry.max_body_bytes or self._settings.limits.max_body_bytes
        )
        try:
            response = await self._upstream.send(
                forward.method,
                url,
                headers,
                forward.body,
                timeout_s=timeout,
                max_body_bytes=max_bytes,
            )
        except UpstreamError as error:
            # Every request the provider was sent, the failed retry included (C17).
            record.upstream_attempts = max(record.upstream_attempts, error.attempts)
            raise
        record.upstream_attempts = response.attempts
        record.upstream_status = response.status
        if response.notes:
            # Bytes after a bodyless answer were dropped (C06): served, but noted.
            record.reason = Reason.UPSTREAM_PROTOCOL_VIOLATION.value
        record.upstream_body_sha256 = sha256_hex(response.body)

        # Step 9: verify the provider's signature when it has registered keys.
        record.enter("verify")
        provider = self._directory.subsystem(forward.service.id.provider)
        if provider is not None and provider.keys:
            verified = verify_response(
                status=response.status,
                headers=dict(response.headers),
                body=response.body,
                keys=provider.keys,
                max_age_s=self._settings.auth.signature_max_age_s,
                head=forward.method == "HEAD",
            )
            record.upstream_signature_kid = verified.kid
        # Only now, with the provider's bytes verified, remove any content coding, so
        # that compression can never carry data past release (case C07).
        response = identity_body(response, max_body_bytes=max_bytes)
        forwarded = (headers[wire.SIGNATURE_INPUT], headers[wire.SIGNATURE])
        return response, forwarded

    def _release(
        self,
        response: UpstreamResponse,
        purpose: Purpose | None,
        adapter: EndpointAdapter | None,
    ) -> bytes | None:
        """The body for the client, or None to pass the provider's bytes untouched."""
        if purpose is None and adapter is None:
            return relay.without_bom(response)
        if not response.body:
            return None
        ok = 200 <= response.status < 300
        try:
            document = parse_json(
                response.body, content_type=relay.content_type(response)
            )
        except MediatorError as exc:
            raise UpstreamError(
                Reason.UPSTREAM_RESPONSE_INVALID, log_reason=f"upstream_{exc.reason}"
            ) from exc
        if not ok:
            return dump_json(relay.error_only(document))
        if purpose is not None:
            document = purpose.release.apply(document)
        if adapter is not None:
            document = adapter.map_response(response.status, document)
        return dump_json(document)

    async def aclose(self) -> None:
        """Close the connections the pipeline's own services hold. Raises nothing."""
        await self._admission.aclose()

    def response_request_hash(self, outbound: Outbound) -> str | None:
        if outbound.forwarded_signature is None:
            return None
        return request_hash(*outbound.forwarded_signature)


async def authenticate(
    authenticator: ClientAuthenticator, headers: Headers, record: ExchangeRecord
) -> ClientId:
    """Step 2 for every request the node answers: the verified client, which
    ``X-Road-Client`` must name. Raises AuthenticationError (or NodeError when
    the replay store is unavailable)."""
    authorization = headers.only(wire.AUTHORIZATION, Reason.INVALID_HEADER)
    verified = await authenticator.authenticate(authorization)
    return _claimed(verified, headers, record)


def _claimed(
    verified: AuthenticatedClient, headers: Headers, record: ExchangeRecord
) -> ClientId:
    """The verified client, once it is in the record, if ``X-Road-Client`` names it.

    Raises AuthenticationError (``client_mismatch``) if it names another.
    """
    record.client_id = str(verified.client_id)
    record.key_id, record.jti_hash = verified.kid, verified.jti_hash
    claimed = headers.only(wire.XROAD_CLIENT, Reason.INVALID_HEADER)
    if claimed is None or claimed != str(verified.client_id):
        raise AuthenticationError(Reason.CLIENT_MISMATCH)
    return verified.client_id


__all__ = ["ExchangePipeline", "Inbound", "NodeError", "Outbound"]
