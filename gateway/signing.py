"""HTTP Message Signatures (RFC 9421) with Content-Digest (RFC 9530): signing.

The node signs every request it forwards and every response it returns, and
verifies providers' responses (:mod:`gateway.verifying`). The
``http-message-signatures`` library builds and checks signature bases; this module
and :mod:`gateway.verifying` keep it behind a small interface and fix the policy
around it. Messages in the plain form this protocol uses are signed through
:mod:`gateway.sigbase` and verified through :mod:`gateway.sigverify` without the
library's parser, to the same result; anything else goes to the library. The
policy:

- one signature per message, label ``mediator``, tag ``shiksha-mediator``;
- covered: the method and target URI (requests) or the status (responses), the
  ``content-digest``, and ``content-type``, ``x-road-client``, ``x-road-id`` and
  ``x-road-request-hash`` whenever the message has them: a verifier requires the
  same coverage, so none of them can be added or changed in transit;
- the verification key and its algorithm come from the registered keys by
  ``keyid``, never from the message; an ``alg`` parameter must agree with them;
- ``created`` is required, may be at most
  :data:`~gateway.sigverify.CLOCK_LEEWAY_S` ahead of the verifier's clock, and no
  older than the caller's maximum age.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    algorithms,
)

from gateway import sigbase, wire
from gateway.digest import check_content_digest, content_digest
from gateway.errors import NodeError, Reason
from gateway.keytypes import Signer

__all__ = [
    "LABEL",
    "OPTIONAL_REQUEST",
    "OPTIONAL_RESPONSE",
    "TAG",
    "Fields",
    "RequestView",
    "ResponseView",
    "check_content_digest",
    "content_digest",
    "request_hash",
    "sign_request",
    "sign_response",
    "view_fields",
]

LABEL: Final = "mediator"
TAG: Final = "shiksha-mediator"

_BY_NAME: Final[dict[str, type[algorithms.HTTPSignatureAlgorithm]]] = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
}
#: Header fields a signature covers whenever the message has them.
OPTIONAL_REQUEST: Final = (wire.CONTENT_TYPE, wire.XROAD_CLIENT, wire.XROAD_ID)
OPTIONAL_RESPONSE: Final = (wire.CONTENT_TYPE, wire.XROAD_ID, wire.XROAD_REQUEST_HASH)


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


# -- message views for the library (signing and gateway.verifying) ---------------------


class Fields:
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
class RequestView:
    """A request as the library reads it: method, URL and the covered fields."""

    method: str
    url: str
    headers: Fields


@dataclass(slots=True)
class ResponseView:
    """A response as the library reads it: status and the covered fields."""

    status_code: int
    headers: Fields
    request: None = None


def view_fields(headers: Mapping[str, str], names: Iterable[str]) -> Fields:
    """The fields of ``headers`` a view holds: ``names``, the digest, the signature."""
    wanted = {*names, wire.CONTENT_DIGEST, wire.SIGNATURE, wire.SIGNATURE_INPUT}
    return Fields((n, v) for n, v in headers.items() if n.lower() in wanted)


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
        OPTIONAL_REQUEST,
        headers=headers,
        body=body,
        created=created,
        nonce=nonce,
    )
    if fast is not None:
        return fast
    view = RequestView(method, url, view_fields(headers, OPTIONAL_REQUEST))
    covered = ["@method", "@target-uri", wire.CONTENT_DIGEST]
    return _sign(
        key,
        view=view,
        covered=covered,
        optional=OPTIONAL_REQUEST,
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
        OPTIONAL_RESPONSE,
        headers=headers,
        body=body,
        created=created,
        nonce=None,
    )
    if fast is not None:
        return fast
    view = ResponseView(status, view_fields(headers, OPTIONAL_RESPONSE))
    covered = ["@status", wire.CONTENT_DIGEST]
    return _sign(
        key,
        view=view,
        covered=covered,
        optional=OPTIONAL_RESPONSE,
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
    view: RequestView | ResponseView,
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
