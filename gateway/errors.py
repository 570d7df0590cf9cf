"""Errors of the mediator, with stable reason codes that say who is at fault.

Every response the node makes itself on a failed exchange is built from one
:class:`MediatorError`: its :class:`Reason` fixes the HTTP status, the side at fault
and a fixed message that never echoes request values, tokens, keys, upstream
addresses or library exception text. The wire form is the X-Road REST error body
``{"type", "message", "detail"}`` with the same ``type`` in ``X-Road-Error``.

The tree::

    Exception
    ├── MediatorError                  an exchange failed; has a Reason
    │   ├── FramingError               step 1: size, time, length, encoding
    │   ├── AuthenticationError        step 2: credential missing or not valid (401)
    │   ├── ResolutionError            step 3: malformed id or path, unknown service
    │   ├── AccessDeniedError          step 4 and 6: access rights, purpose, consent
    │   ├── ThrottledError             step 5: rate limit, concurrency
    │   ├── PayloadError               step 7 and 10: JSON, schema, mapping
    │   ├── UpstreamError              step 8 and 9: provider down, slow, bad answer
    │   ├── NodeError                  this node cannot serve safely (log, keys, replay)
    │   └── AdminRequestError          an admin request that cannot be done (detail)
    └── ConfigError                    a deployment file is not valid (file and line)

Library exceptions are translated where they are caught, with ``raise ... from``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Fault(enum.StrEnum):
    """The side at fault, as the first part of the X-Road error ``type``."""

    CLIENT = "Client"
    MEDIATOR = "Server.Mediator"
    PROVIDER = "Server.Provider"


@dataclass(frozen=True, slots=True)
class ReasonSpec:
    status: int
    fault: Fault
    message: str


class Reason(enum.StrEnum):
    """Stable reason codes. The wire ``type`` is ``{fault}.{reason}``."""

    # step 1: framing
    AMBIGUOUS_MESSAGE_LENGTH = "ambiguous_message_length"
    DUPLICATE_CONTENT_LENGTH = "duplicate_content_length"
    MALFORMED_CHUNKED_BODY = "malformed_chunked_body"
    BODY_TOO_LARGE = "body_too_large"
    HEADERS_TOO_LARGE = "headers_too_large"
    URI_TOO_LONG = "uri_too_long"
    INVALID_HEADER = "invalid_header"
    INVALID_CONTENT_DIGEST = "invalid_content_digest"
    INVALID_HOST = "invalid_host"
    CLIENT_TIMEOUT = "client_timeout"
    CLIENT_ABORTED = "client_aborted"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MALFORMED_REQUEST = "malformed_request"
    BODY_NOT_ALLOWED = "body_not_allowed"
    # step 2: authentication
    MISSING_CREDENTIAL = "missing_credential"
    INVALID_TOKEN = "invalid_token"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_REPLAYED = "token_replayed"
    UNKNOWN_CLIENT = "unknown_client"
    CLIENT_MISMATCH = "client_mismatch"
    INVALID_SIGNATURE = "invalid_signature"
    SIGNATURE_TOO_OLD = "signature_too_old"
    # step 3: resolution
    INVALID_PATH = "invalid_path"
    INVALID_IDENTIFIER = "invalid_identifier"
    UNKNOWN_SERVICE = "unknown_service"
    INVALID_QUERY = "invalid_query"
    # step 4 and 6: access, purpose, consent
    ACCESS_DENIED = "access_denied"
    PURPOSE_REQUIRED = "purpose_required"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    CONSENT_REQUIRED = "consent_required"
    # step 5: throttling
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONCURRENT = "too_many_concurrent"
    # step 7 and 10: payloads
    INVALID_JSON = "invalid_json"
    INVALID_ENCODING = "invalid_encoding"
    JSON_TOO_DEEP = "json_too_deep"
    INVALID_NUMBER = "invalid_number"
    DUPLICATE_KEY = "duplicate_key"
    SCHEMA_VIOLATION = "schema_violation"
    MAPPING_FAILED = "mapping_failed"
    # step 8 and 9: provider
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_CONNECTION_RESET = "upstream_connection_reset"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_TRUNCATED = "upstream_truncated"
    UPSTREAM_PROTOCOL_VIOLATION = "upstream_protocol_violation"
    UPSTREAM_SIGNATURE_INVALID = "upstream_signature_invalid"
    UPSTREAM_RESPONSE_INVALID = "upstream_response_invalid"
    # the admin surface's consent API
    INVALID_FIELD = "invalid_field"
    UNKNOWN_PURPOSE = "unknown_purpose"
    UNKNOWN_CONSENT = "unknown_consent"
    ALREADY_REVOKED = "already_revoked"
    CONSENT_REFUSED = "consent_refused"
    # this node
    LOG_UNAVAILABLE = "log_unavailable"
    REPLAY_STORE_UNAVAILABLE = "replay_store_unavailable"
    RATE_LIMIT_STORE_UNAVAILABLE = "rate_limit_store_unavailable"
    SIGNING_UNAVAILABLE = "signing_unavailable"
    MAINTENANCE = "maintenance"
    INTERNAL_ERROR = "internal_error"

    @property
    def spec(self) -> ReasonSpec:
        return REASONS[self]


def _client(status: int, message: str) -> ReasonSpec:
    return ReasonSpec(status, Fault.CLIENT, message)


def _node(status: int, message: str) -> ReasonSpec:
    return ReasonSpec(status, Fault.MEDIATOR, message)


def _provider(status: int, message: str) -> ReasonSpec:
    return ReasonSpec(status, Fault.PROVIDER, message)


R = Reason
REASONS: Mapping[Reason, ReasonSpec] = {
    R.AMBIGUOUS_MESSAGE_LENGTH: _client(400, "The message length is ambiguous"),
    R.DUPLICATE_CONTENT_LENGTH: _client(400, "More than one Content-Length"),
    R.MALFORMED_CHUNKED_BODY: _client(400, "The chunked body is malformed"),
    R.BODY_TOO_LARGE: _client(413, "The request body is too large"),
    R.HEADERS_TOO_LARGE: _client(431, "The request headers are too large"),
    R.URI_TOO_LONG: _client(414, "The request target is too long"),
    R.INVALID_HEADER: _client(400, "A request header is not valid"),
    R.INVALID_CONTENT_DIGEST: _client(
        400, "The Content-Digest does not match the body"
    ),
    R.INVALID_HOST: _client(400, "The Host header is not accepted"),
    R.CLIENT_TIMEOUT: _client(408, "The request was not received in time"),
    R.CLIENT_ABORTED: _client(400, "The client closed the request early"),
    R.UNSUPPORTED_MEDIA_TYPE: _client(415, "The media type is not supported"),
    R.METHOD_NOT_ALLOWED: _client(405, "The method is not allowed here"),
    R.MALFORMED_REQUEST: _client(400, "The request is not valid HTTP/1.1"),
    R.BODY_NOT_ALLOWED: _client(400, "This method takes no request body"),
    R.MISSING_CREDENTIAL: _client(401, "A client credential is required"),
    R.INVALID_TOKEN: _client(401, "The client credential is not valid"),
    R.TOKEN_EXPIRED: _client(401, "The client credential has expired"),
    R.TOKEN_NOT_YET_VALID: _client(401, "The client credential is not yet valid"),
    R.TOKEN_REPLAYED: _client(401, "The client credential was already used"),
    R.UNKNOWN_CLIENT: _client(401, "The client is not registered"),
    R.CLIENT_MISMATCH: _client(401, "X-Road-Client does not match the credential"),
    R.INVALID_SIGNATURE: _client(401, "The message signature is not valid"),
    R.SIGNATURE_TOO_OLD: _client(401, "The message signature is too old"),
    R.INVALID_PATH: _client(400, "The request path is not valid"),
    R.INVALID_IDENTIFIER: _client(400, "The service or client identifier is malformed"),
    R.UNKNOWN_SERVICE: _client(404, "The service is not known"),
    R.INVALID_QUERY: _client(400, "A query parameter is missing or not valid"),
    R.ACCESS_DENIED: _client(403, "The client may not use this service endpoint"),
    R.PURPOSE_REQUIRED: _client(403, "A purpose must be declared for this service"),
    R.PURPOSE_NOT_ALLOWED: _client(403, "The purpose is not allowed for this client"),
    R.CONSENT_REQUIRED: _client(403, "No active consent covers this request"),
    R.RATE_LIMITED: _client(429, "Too many requests"),
    R.TOO_MANY_CONCURRENT: _client(429, "Too many requests in progress"),
    R.INVALID_JSON: _client(400, "The body is not valid JSON"),
    R.INVALID_ENCODING: _client(400, "The body is not valid UTF-8"),
    R.JSON_TOO_DEEP: _client(400, "The JSON body is nested too deeply"),
    R.INVALID_NUMBER: _client(400, "The JSON body has a number out of range"),
    R.DUPLICATE_KEY: _client(400, "The JSON body repeats an object key"),
    R.SCHEMA_VIOLATION: _client(422, "The request does not match its schema"),
    R.MAPPING_FAILED: _client(422, "The body could not be mapped"),
    R.INVALID_FIELD: _client(422, "A field is missing or not valid"),
    R.UNKNOWN_PURPOSE: _client(404, "The purpose is not known"),
    R.UNKNOWN_CONSENT: _client(404, "No consent has this id"),
    R.ALREADY_REVOKED: _client(409, "The consent is already revoked"),
    R.CONSENT_REFUSED: _client(422, "The consent cannot be granted"),
    R.UPSTREAM_UNAVAILABLE: _provider(502, "The provider could not be reached"),
    R.UPSTREAM_CONNECTION_RESET: _provider(502, "The provider closed the connection"),
    R.UPSTREAM_TIMEOUT: _provider(504, "The provider did not answer in time"),
    R.UPSTREAM_TRUNCATED: _provider(502, "The provider's answer was incomplete"),
    R.UPSTREAM_PROTOCOL_VIOLATION: _provider(502, "The provider broke the protocol"),
    R.UPSTREAM_SIGNATURE_INVALID: _provider(502, "The provider's signature is invalid"),
    R.UPSTREAM_RESPONSE_INVALID: _provider(502, "The provider's answer is not valid"),
    R.LOG_UNAVAILABLE: _node(503, "The message log cannot be written"),
    R.REPLAY_STORE_UNAVAILABLE: _node(503, "Replay protection is unavailable"),
    R.RATE_LIMIT_STORE_UNAVAILABLE: _node(503, "Rate limiting is unavailable"),
    R.SIGNING_UNAVAILABLE: _node(503, "No signing key is available"),
    R.MAINTENANCE: _node(503, "The node is in maintenance"),
    R.INTERNAL_ERROR: _node(500, "The node failed to process the request"),
}
del R


class MediatorError(Exception):
    """An exchange failed for a known reason.

    ``log_reason`` is a finer reason for the message log only (for example
    ``alg_not_allowed`` behind a wire ``invalid_token``); it never reaches the client.
    ``headers`` are extra response headers such as ``Retry-After``.
    """

    def __init__(
        self,
        reason: Reason,
        *,
        log_reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.log_reason = log_reason or reason.value
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return self.reason.spec.status

    @property
    def type(self) -> str:
        return f"{self.reason.spec.fault}.{self.reason.value}"

    @property
    def message(self) -> str:
        return self.reason.spec.message


class FramingError(MediatorError):
    """Step 1: the message is malformed, too large or too slow."""


class AuthenticationError(MediatorError):
    """Step 2: no valid credential; answered 401 with ``WWW-Authenticate``."""

    def __init__(
        self,
        reason: Reason,
        *,
        log_reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        merged.update(headers or {})
        super().__init__(reason, log_reason=log_reason, headers=merged)


class ResolutionError(MediatorError):
    """Step 3: the identifier or path is malformed, or the service is unknown."""


class AccessDeniedError(MediatorError):
    """Step 4 and 6: access rights, purpose or consent do not allow the request."""


class ThrottledError(MediatorError):
    """Step 5: a rate or concurrency limit was reached."""


class PayloadError(MediatorError):
    """Step 7 and 10: a body is not valid JSON, breaks its schema, or cannot map."""

    def __init__(
        self,
        reason: Reason,
        *,
        pointer: str | None = None,
        log_reason: str | None = None,
    ) -> None:
        super().__init__(reason, log_reason=log_reason)
        self.pointer = pointer


class UpstreamError(MediatorError):
    """Step 8 and 9: the provider failed, or answered what cannot be passed on."""

    #: How many times the provider call was attempted before this failure: 2
    #: when a retry on a fresh connection failed too.
    attempts: int = 1


class NodeError(MediatorError):
    """This node cannot serve safely: log, keys, replay or limit store unavailable."""


class AdminRequestError(MediatorError):
    """An admin API request that cannot be done as asked.

    ``detail`` goes into the error body: the field at fault, or the rule a consent
    breaks. It is a fixed text or a field name, never a request value.
    """

    def __init__(self, reason: Reason, *, detail: str = "") -> None:
        super().__init__(reason)
        self.detail = detail


class ConfigError(Exception):
    """A deployment file is not valid. The message names the file, line and reason."""

    def __init__(self, file: str, reason: str, *, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason
