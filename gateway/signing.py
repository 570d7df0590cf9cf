"""HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530).

The node signs every request it forwards and every response it returns, and
verifies providers' responses. The ``http-message-signatures`` library builds and
checks signature bases; this module keeps it behind a small interface and fixes
the policy around it. Messages in the plain form this protocol uses are signed
through :mod:`gateway.sigbase` and verified through :mod:`gateway.sigverify`
without the library's parser, to the same result; anything else goes to the
library. The policy:

- one signature per message, label ``mediator``, tag ``shiksha-mediator``;
- covered: the method and target URI (requests) or the status (responses), the
  ``content-digest``, and ``content-type``, ``x-road-client``, ``x-road-id`` and
  ``x-road-request-hash`` whenever the message has them: a verifier requires the
  same coverage, so none of them can be added or changed in transit;
- the verification key and its algorithm come from the registered keys by
  ``keyid``, never from the message; an ``alg`` parameter must agree with them;
- ``created`` is required, may be at most :data:`CLOCK_LEEWAY_S` ahead of the
  verifier's clock, and no older than the caller's maximum age.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import http_sf
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)

from gateway import sigbase, sigverify, wire
from gateway.digest import check_content_digest, content_digest
from gateway.directory import RegisteredKey
from gateway.errors import (
    AuthenticationError,
    MediatorError,
    NodeError,
    Reason,
    UpstreamError,
)
from gateway.keytypes import Signer
from gateway.sigverify import CLOCK_LEEWAY_S, VerifiedSignature

__all__ = [
    "CLOCK_LEEWAY_S",
    "LABEL",
    "TAG",
    "VerifiedSignature",
    "check_content_digest",
    "content_digest",
    "request_hash",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_response",
]

LABEL: Final = "mediator"
TAG: Final = "shiksha-mediator"

KeyResolver = Callable[[str], RegisteredKey | None]
Keys = Mapping[str, RegisteredKey] | KeyResolver

_BY_NAME: Final[dict[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
}
#: JWS names of registered keys and the RFC 9421 algorithm each one verifies with.
_BY_JWS: Final[dict[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    "EdDSA": algorithms.ED25519,
    "ES256": algorithms.ECDSA_P256_SHA256,
    "RS256": algorithms.RSA_V1_5_SHA256,
}
_OPTIONAL_REQUEST = (wire.CONTENT_TYPE, wire.XROAD_CLIENT, wire.XROAD_ID)
_OPTIONAL_RESPONSE = (wire.CONTENT_TYPE, wire.XROAD_ID, wire.XROAD_REQUEST_HASH)


# -- request and response binding ------------------------------------------------------


def request_hash(signature_input: str, signature: str) -> str:
    """The ``X-Road-Request-Hash`` of a signed request, for its response.

    X-Road's security server puts in each response the base64 SHA-512 hash of
    the request message it answers (88 characters), so that a response cannot be
    replayed as the answer to another request. This node keeps that form and
    hashes the request's ``Signature-Input`` and ``Signature`` values (joined by a
    line feed, which no field value contains): the signature already covers the
    method, target URI, body digest and X-Road headers, so the hash binds the
    response to exactly one signed request, and the response's own signature
    covers the hash.
    """
    data = signature_input.encode("latin-1") + b"\n" + signature.encode("latin-1")
    return base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


# -- message views for the library -----------------------------------------------------


class _Fields:
    """Header field lines in order, lower-cased names, as the library reads them."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs = [(name.lower(), value) for name, value in pairs]

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def get(self, name: str) -> str | None:
        values = [value for field, value in self._pairs if field == name]
        return ", ".join(values) if values else None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._pairs))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(f == name.lower() for f, _ in self._pairs)

    def __setitem__(self, name: str, value: str) -> None:
        del self[name]
        self._pairs.append((name.lower(), value))

    def __delitem__(self, name: str) -> None:
        self._pairs = [(f, v) for f, v in self._pairs if f != name.lower()]


@dataclass(slots=True)
class _RequestView:
    method: str
    url: str
    headers: _Fields


@dataclass(slots=True)
class _ResponseView:
    status_code: int
    headers: _Fields
    request: None = None


def _fields(headers: Mapping[str, str], names: Iterable[str]) -> _Fields:
    wanted = {*names, wire.CONTENT_DIGEST, wire.SIGNATURE, wire.SIGNATURE_INPUT}
    return _Fields((n, v) for n, v in headers.items() if n.lower() in wanted)


# -- signing ---------------------------------------------------------------------------


def sign_request(
    key: Signer,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign a request; return the headers to add to it.

    The result holds ``content-digest``, ``signature-input`` and ``signature``.

    :raises NodeError: ``internal_error`` if the message cannot be signed (for
        example a header value the signature base cannot hold).
    """
    derived = sigbase.request_derived(method, url)
    fast = _sign_fast(
        key,
        derived,
        _OPTIONAL_REQUEST,
        headers=headers,
        body=body,
        created=created,
        nonce=nonce,
    )
    if fast is not None:
        return fast
    view = _RequestView(method, url, _fields(headers, _OPTIONAL_REQUEST))
    covered = ["@method", "@target-uri", wire.CONTENT_DIGEST]
    return _sign(
        key,
        view=view,
        covered=covered,
        optional=_OPTIONAL_REQUEST,
        body=body,
        created=created,
        nonce=nonce,
    )


def sign_response(
    key: Signer,
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    created: int | None = None,
) -> dict[str, str]:
    """Sign a response; return ``content-digest``, ``signature-input``, ``signature``.

    Put ``x-road-request-hash`` (see :func:`request_hash`) in ``headers`` first:
    the response signature then covers the request's signature.

    :raises NodeError: ``internal_error`` if the message cannot be signed.
    """
    derived = sigbase.response_derived(status)
    fast = _sign_fast(
        key,
        derived,
        _OPTIONAL_RESPONSE,
        headers=headers,
        body=body,
        created=created,
        nonce=None,
    )
    if fast is not None:
        return fast
    view = _ResponseView(status, _fields(headers, _OPTIONAL_RESPONSE))
    covered = ["@status", wire.CONTENT_DIGEST]
    return _sign(
        key,
        view=view,
        covered=covered,
        optional=_OPTIONAL_RESPONSE,
        body=body,
        created=created,
        nonce=None,
    )


def _sign_fast(
    key: Signer,
    derived: list[sigbase.Component] | None,
    optional: tuple[str, ...],
    *,
    headers: Mapping[str, str],
    body: bytes,
    created: int | None,
    nonce: str | None,
) -> dict[str, str] | None:
    """The signature headers built by :mod:`gateway.sigbase`, or None for the library.

    The base is the one the library would build for the same message, byte for
    byte (the tests compare them); only the parsing is skipped.
    """
    if derived is None or wire.SIGNATURE in headers or wire.SIGNATURE_INPUT in headers:
        return None
    fields = sigbase.field_components(headers, optional)
    if fields is None:
        return None
    digest = content_digest(body)
    at = int(time.time()) if created is None else created
    params: list[sigbase.Param] = [
        ("created", at),
        ("keyid", key.kid),
        ("alg", _BY_NAME[key.algorithm].algorithm_id),
    ]
    if nonce is not None:
        params.append(("nonce", nonce))
    params.append(("tag", TAG))
    built = sigbase.signature_base(
        [*derived, (wire.CONTENT_DIGEST, digest), *fields], params
    )
    if built is None:
        return None
    base, signature_params = built
    signature = base64.b64encode(key.sign(base)).decode("ascii")
    return {
        wire.CONTENT_DIGEST: digest,
        wire.SIGNATURE_INPUT: f"{LABEL}={signature_params}",
        wire.SIGNATURE: f"{LABEL}=:{signature}:",
    }


def _sign(
    key: Signer,
    *,
    view: _RequestView | _ResponseView,
    covered: list[str],
    optional: Iterable[str],
    body: bytes,
    created: int | None,
    nonce: str | None,
) -> dict[str, str]:
    view.headers[wire.CONTENT_DIGEST] = content_digest(body)
    covered = covered + [name for name in optional if name in view.headers]
    signer = HTTPMessageSigner(signature_algorithm=_BY_NAME[key.algorithm])
    at = int(time.time()) if created is None else created

    try:
        prepared = signer.prepare(
            view,
            key_id=key.kid,
            created=datetime.datetime.fromtimestamp(at, datetime.UTC),
            nonce=nonce,
            label=LABEL,
            tag=TAG,
            covered_component_ids=covered,
            use_existing_digest=True,
        )
        signer.apply(view, prepared, key.sign(prepared.signature_base))
    except HTTPMessageSignaturesException as exc:
        raise NodeError(Reason.INTERNAL_ERROR, log_reason="signing_failed") from exc

    return {
        wire.CONTENT_DIGEST: view.headers.get(wire.CONTENT_DIGEST) or "",
        wire.SIGNATURE_INPUT: view.headers.get(wire.SIGNATURE_INPUT) or "",
        wire.SIGNATURE: view.headers.get(wire.SIGNATURE) or "",
    }


# -- verifying -------------------------------------------------------------------------


class _Verifier(HTTPMessageVerifier):
    """The library's verifier with this node's clock, leeway and maximum age."""

    def __init__(
        self,
        *,
        signature_algorithm: type[algorithms.HTTPSignatureAlgorithm],
        kid: str,
        key: RegisteredKey,
        now: float,
        max_age_s: int,
    ) -> None:
        resolver = MappingKeyResolver(public_keys={kid: key.key}, private_keys={})
        super().__init__(signature_algorithm=signature_algorithm, key_resolver=resolver)
        self._now = now
        self._max_age_s = max_age_s

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        params = sig_input.params
        sigverify.check_times(
            params.get("created"),
            params.get("expires"),
            now=self._now,
            max_age_s=self._max_age_s,
        )


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Keys,
    max_age_s: int,
    now: float | None = None,
) -> VerifiedSignature:
    """Verify the ``shiksha-mediator`` signature of a request.

    :raises AuthenticationError: ``invalid_signature`` for a missing, malformed,
        unknown-key, future-dated or wrong signature, a digest that does not match
        the body, or coverage short of the policy; ``signature_too_old`` when
        ``created`` is older than ``max_age_s`` (or ``expires`` has passed).
    """
    view = _RequestView(method, url, _fields(headers, _OPTIONAL_REQUEST))
    required = ["@method", "@target-uri", wire.CONTENT_DIGEST]

    def fail(log_reason: str, too_old: bool) -> MediatorError:
        reason = Reason.SIGNATURE_TOO_OLD if too_old else Reason.INVALID_SIGNATURE
        return AuthenticationError(reason, log_reason=log_reason)

    return _verify(
        view,
        headers=headers,
        derived=sigbase.request_derived(method, url),
        required=required,
        optional=_OPTIONAL_REQUEST,
        body=body,
        keys=keys,
        max_age_s=max_age_s,
        now=now,
        fail=fail,
    )


def verify_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    keys: Keys,
    max_age_s: int,
    now: float | None = None,
    expected_request_hash: str | None = None,
) -> VerifiedSignature:
    """Verify a provider's signed response.

    With ``expected_request_hash``, the response must carry that
    ``x-road-request-hash`` (and its signature covers it).

    :raises UpstreamError: ``upstream_signature_invalid`` for any failure, the log
        reason saying which.
    """
    view = _ResponseView(status, _fields(headers, _OPTIONAL_RESPONSE))
    required = ["@status", wire.CONTENT_DIGEST]

    def fail(log_reason: str, _too_old: bool) -> MediatorError:
        return UpstreamError(Reason.UPSTREAM_SIGNATURE_INVALID, log_reason=log_reason)

    if expected_request_hash is not None:
        carried = view.headers.get(wire.XROAD_REQUEST_HASH)
        if carried is None or not hmac.compare_digest(carried, expected_request_hash):
            raise fail("request_hash_mismatch", False)
    return _verify(
        view,
        headers=headers,
        derived=sigbase.response_derived(status),
        required=required,
        optional=_OPTIONAL_RESPONSE,
        body=body,
        keys=keys,
        max_age_s=max_age_s,
        now=now,
        fail=fail,
    )


def _verify(
    view: _RequestView | _ResponseView,
    *,
    headers: Mapping[str, str],
    derived: list[sigbase.Component] | None,
    required: list[str],
    optional: tuple[str, ...],
    body: bytes,
    keys: Keys,
    max_age_s: int,
    now: float | None,
    fail: Callable[[str, bool], MediatorError],
) -> VerifiedSignature:
    # Steps: 1 find the one signature with our tag and its keyid; 2 take the key
    # and algorithm from the registered keys; 3 check the body digest; 4 check
    # times, coverage and the signature itself. A signature in the strict form of
    # gateway.sigverify is read and checked there, any other by the library.
    signed = sigverify.parse_tagged(headers, tag=TAG, known={*required, *optional})
    kid = _tagged_keyid(view.headers) if signed is None else signed.keyid
    if kid is None:
        raise fail("signature_missing", False)

    key = keys.get(kid) if isinstance(keys, Mapping) else keys(kid)
    if key is None:
        raise fail("key_unknown", False)
    algorithm = _BY_JWS.get(key.algorithm)
    if algorithm is None:
        raise fail("algorithm_not_allowed", False)

    if not sigverify.digest_matches(view.headers.get(wire.CONTENT_DIGEST), body):
        raise fail("digest_mismatch", False)

    covered = required + [name for name in optional if name in view.headers]
    clock = time.time() if now is None else now
    try:
        verified = None
        if signed is not None:
            verified = sigverify.verify(
                signed,
                key=key.key,
                algorithm=algorithm.algorithm_id,
                derived=derived,
                headers=headers,
                required=covered,
                now=clock,
                max_age_s=max_age_s,
            )
        if verified is None:
            verified = _verify_with_library(
                view,
                kid=kid,
                key=key,
                algorithm=algorithm,
                covered=covered,
                body=body,
                now=clock,
                max_age_s=max_age_s,
            )
    except sigverify.Refused as exc:
        raise fail(exc.log_reason, exc.too_old) from exc
    except HTTPMessageSignaturesException as exc:
        raise fail("signature_invalid", False) from exc
    return verified


def _verify_with_library(
    view: _RequestView | _ResponseView,
    *,
    kid: str,
    key: RegisteredKey,
    algorithm: type[algorithms.HTTPSignatureAlgorithm],
    covered: list[str],
    body: bytes,
    now: float,
    max_age_s: int,
) -> VerifiedSignature:
    """Step 4 by the library; raises Refused or HTTPMessageSignaturesException."""
    verifier = _Verifier(
        signature_algorithm=algorithm, kid=kid, key=key, now=now, max_age_s=max_age_s
    )
    results = verifier.verify(
        view, max_age=None, expect_tag=TAG, require_components=covered, body=body
    )
    params = results[0].parameters
    nonce = params.get("nonce")
    return VerifiedSignature(
        kid=kid,
        algorithm=algorithm.algorithm_id,
        created=int(params["created"]),
        nonce=nonce if isinstance(nonce, str) else None,
    )


def _tagged_keyid(headers: _Fields) -> str | None:
    """The keyid of the one signature tagged ``shiksha-mediator``, else None."""
    value = headers.get(wire.SIGNATURE_INPUT)
    if value is None:
        return None
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        return None
    if not isinstance(parsed, dict):
        return None

    keyids = [
        member[1].get("keyid")
        for member in parsed.values()
        if isinstance(member, tuple) and member[1].get("tag") == TAG
    ]
    if len(keyids) != 1 or not isinstance(keyids[0], str):
        return None
    return keyids[0]
