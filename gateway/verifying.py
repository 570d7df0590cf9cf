"""Verifying RFC 9421 signatures under the node's policy: requests and responses.

:func:`verify_response` checks a provider's signed answer (step 9 of an exchange)
and :func:`verify_request` a signed request, with the label, tag and coverage that
:mod:`gateway.signing` fixes and writes. How the work of checking one
signature is divided:

- this module finds the one signature tagged ``shiksha-mediator``, takes its key
  and algorithm from the registered keys by ``keyid`` (never from the message)
  and checks the body's ``Content-Digest``;
- :mod:`gateway.sigverify` then reads and checks a signature in the one strict
  form this protocol's signers write, without the library's parser, over a base
  written by :mod:`gateway.sigbase`;
- any other signature is read and checked here by the ``http-message-signatures``
  library, with the same clock, leeway (:data:`~gateway.sigverify.CLOCK_LEEWAY_S`)
  and maximum age.

Both paths reach the same verdict; a refusal is raised as the error of the
message's side: AuthenticationError for a request, UpstreamError for a response.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import http_sf
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)

from gateway import sigbase, sigverify, wire
from gateway.directory import RegisteredKey
from gateway.errors import AuthenticationError, MediatorError, Reason, UpstreamError
from gateway.signing import (
    OPTIONAL_REQUEST,
    OPTIONAL_RESPONSE,
    TAG,
    Fields,
    RequestView,
    ResponseView,
    view_fields,
)
from gateway.sigverify import CLOCK_LEEWAY_S, VerifiedSignature

__all__ = [
    "CLOCK_LEEWAY_S",
    "VerifiedSignature",
    "verify_request",
    "verify_response",
]

KeyResolver = Callable[[str], RegisteredKey | None]
Keys = Mapping[str, RegisteredKey] | KeyResolver

#: JWS names of registered keys and the RFC 9421 algorithm each one verifies with.
_BY_JWS: Final[dict[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    "EdDSA": algorithms.ED25519,
    "ES256": algorithms.ECDSA_P256_SHA256,
    "RS256": algorithms.RSA_V1_5_SHA256,
}


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
    view = RequestView(method, url, view_fields(headers, OPTIONAL_REQUEST))
    required = ["@method", "@target-uri", wire.CONTENT_DIGEST]

    def fail(log_reason: str, too_old: bool) -> MediatorError:
        reason = Reason.SIGNATURE_TOO_OLD if too_old else Reason.INVALID_SIGNATURE
        return AuthenticationError(reason, log_reason=log_reason)

    return _verify(
        view,
        headers=headers,
        derived=sigbase.request_derived(method, url),
        required=required,
        optional=OPTIONAL_REQUEST,
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
    head: bool = False,
) -> VerifiedSignature:
    """Verify a provider's signed response.

    With ``expected_request_hash``, the response must carry that
    ``x-road-request-hash`` (and its signature covers it). With ``head`` (the
    answer to a HEAD request) the signature must still cover ``Content-Digest``,
    but its value describes the content a GET would carry (RFC 9530 section 2),
    so it is not compared with the empty body.

    :raises UpstreamError: ``upstream_signature_invalid`` for any failure, the log
        reason saying which.
    """
    view = ResponseView(status, view_fields(headers, OPTIONAL_RESPONSE))
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
        optional=OPTIONAL_RESPONSE,
        body=None if head else body,
        keys=keys,
        max_age_s=max_age_s,
        now=now,
        fail=fail,
    )


def _verify(
    view: RequestView | ResponseView,
    *,
    headers: Mapping[str, str],
    derived: list[sigbase.Component] | None,
    required: list[str],
    optional: tuple[str, ...],
    body: bytes | None,
    keys: Keys,
    max_age_s: int,
    now: float | None,
    fail: Callable[[str, bool], MediatorError],
) -> VerifiedSignature:
    # ``body`` None: the message carries none its Content-Digest describes (HEAD).
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

    digest = view.headers.get(wire.CONTENT_DIGEST)
    if body is None:
        if digest is None:
            raise fail("digest_missing", False)
    elif not sigverify.digest_matches(digest, body):
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
    view: RequestView | ResponseView,
    *,
    kid: str,
    key: RegisteredKey,
    algorithm: type[algorithms.HTTPSignatureAlgorithm],
    covered: list[str],
    body: bytes | None,
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


def _tagged_keyid(headers: Fields) -> str | None:
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
