"""RFC 9421 verification of the one plain form this protocol's signers write.

Every exchange verifies a signature: the provider's response, and signed
requests. The ``http-message-signatures`` library reads ``Signature-Input`` and
``Signature`` with a general Structured Field parser (RFC 8941) and re-parses
each component identifier several times, which costs several times the
signature check itself. The signers of this protocol, this node among them,
all write the same plain form, here a response's::

    Signature-Input: mediator=("@status" "content-digest");created=1796378400
        ;keyid="k";alg="ed25519";tag="shiksha-mediator"   (one line on the wire)
    Signature: mediator=:<base64>:

:func:`parse_tagged` recognises that form and nothing else; :func:`verify`
checks it with the signature base written by :mod:`gateway.sigbase` and the
``verify`` of the registered ``cryptography`` key (through
:func:`gateway.keytypes.verify_raw`). Why the verdict is the library's:

- the form is a strict subset of RFC 8941 for which parsing and serialising
  again gives back the same text: one dictionary member in each field, with the
  same label; an inner list of quoted lower-case component ids from a fixed
  set, each once, without parameters; the parameters ``alg``, ``created``,
  ``expires``, ``keyid``, ``nonce`` and ``tag`` only, each once, integers as
  digits without a leading zero and strings of visible ASCII that need no
  escape; a signature of padded base64. :func:`verify` compares the
  ``@signature-params`` that sigbase writes with the text received and declines
  if they differ;
- component values are used only when plainly within RFC 9421 section 2.5
  (sigbase's rules), where the library's normalisation changes nothing;
- the checks run in the library's order and end with its reasons: the times by
  :func:`check_times`, which the library path calls too; an ``alg`` parameter
  against the registered key's algorithm; coverage; the signature;
- anything else (other members, whitespace, tokens, escapes, component
  parameters, an unknown component, an RSA key, a key object of another type)
  makes these functions return None, and the library decides as it always has.
  ``tests/gateway/test_sigverify_differential.py`` compares both verdicts over
  random and mutated messages.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from http_message_signatures import InvalidSignature

from gateway import sigbase, wire
from gateway.digest import check_content_digest, content_digest
from gateway.keyfiles import ECDSA_P256, ED25519
from gateway.keytypes import verify_raw

__all__ = [
    "CLOCK_LEEWAY_S",
    "Refused",
    "Signed",
    "VerifiedSignature",
    "check_times",
    "digest_matches",
    "parse",
    "parse_tagged",
    "verify",
]

#: Tolerance for a signer whose clock runs ahead (pyauth/http-message-signatures#10).
CLOCK_LEEWAY_S: Final = 60

_LABEL: Final = r"[a-z*][a-z0-9_.*\-]*"
_INPUT: Final = re.compile(rf"({_LABEL})=(\(([^()]*)\)(.*))")
_B64: Final = r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"
_SIGNATURE: Final = re.compile(rf"({_LABEL})=:({_B64}):")
#: One parameter: an integer without a leading zero (at most 15 digits, RFC 8941
#: section 3.3.1) or a string whose characters need no escape.
_PARAM: Final = re.compile(
    r';([a-z]+)=(?:(0|[1-9][0-9]{0,14})|"([\x20\x21\x23-\x5b\x5d-\x7e]*)")'
)
_INTEGER_PARAMS: Final = frozenset({"created", "expires"})
_STRING_PARAMS: Final = frozenset({"alg", "keyid", "nonce", "tag"})
_SHA256_DIGEST_LENGTH: Final = len(content_digest(b""))


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """What a valid signature established: the key, its time and its nonce."""

    kid: str
    algorithm: str
    created: int
    nonce: str | None


class Refused(InvalidSignature):
    """A signature refused for ``log_reason``; ``too_old`` when only its age failed.

    An ``InvalidSignature`` of the library, so that the library's verifier, which
    calls :func:`check_times` too, passes it on unchanged.
    """

    def __init__(self, log_reason: str, *, too_old: bool = False) -> None:
        super().__init__(log_reason)
        self.log_reason = log_reason
        self.too_old = too_old


@dataclass(frozen=True, slots=True)
class Signed:
    """One signature in the strict form: what it covers, its parameters, its value.

    ``text`` is the inner list and parameters exactly as received.
    """

    components: tuple[str, ...]
    params: tuple[sigbase.Param, ...]
    text: str
    signature: bytes
    keyid: str
    tag: str | None
    alg: str | None
    created: int | None
    expires: int | None
    nonce: str | None


def check_times(created: object, expires: object, *, now: float, max_age_s: int) -> int:
    """``created`` once it is acceptable at ``now``; raise :class:`Refused`.

    ``created`` is required, may be at most :data:`CLOCK_LEEWAY_S` ahead and at
    most ``max_age_s`` old; an ``expires`` may be at most the leeway past.
    """
    if type(created) is not int:
        raise Refused("created_missing")
    if created > now + CLOCK_LEEWAY_S:
        raise Refused("created_in_future")
    if now - created > max_age_s:
        raise Refused("signature_too_old", too_old=True)
    if expires is None:
        return created
    if type(expires) is not int:
        raise Refused("expires_malformed")
    if expires < now - CLOCK_LEEWAY_S:
        raise Refused("signature_expired", too_old=True)
    return created


def digest_matches(value: str | None, body: bytes) -> bool:
    """:func:`~gateway.digest.check_content_digest`, without parsing the usual form.

    A value equal to the SHA-256 digest this node writes is well formed and
    matches; any other goes to the full check. Nothing here is secret: the
    digest is of a body the sender already holds.
    """
    if (
        value is not None
        and len(value) == _SHA256_DIGEST_LENGTH
        and value == content_digest(body)
    ):
        return True
    return check_content_digest(value, body)


def parse_tagged(
    headers: Mapping[str, str], *, tag: str, known: Collection[str]
) -> Signed | None:
    """The message's one signature in the strict form when it carries ``tag``.

    None when either field is absent or appears more than once (in different
    case), or the signature is not in the strict form, covers a component not
    in ``known``, or has another tag.
    """
    inputs: list[str] = []
    signatures: list[str] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == wire.SIGNATURE_INPUT:
            inputs.append(value)
        elif lowered == wire.SIGNATURE:
            signatures.append(value)
    if len(inputs) != 1 or len(signatures) != 1:
        return None
    signed = parse(inputs[0], signatures[0], known)
    if signed is None or signed.tag != tag:
        return None
    return signed


def parse(
    signature_input: str, signature: str, known: Collection[str]
) -> Signed | None:
    """A ``Signature-Input`` and ``Signature`` pair in the strict form, or None."""
    matched = _INPUT.fullmatch(signature_input)
    value = _SIGNATURE.fullmatch(signature)
    if matched is None or value is None or matched[1] != value[1]:
        return None
    components = _components(matched[3], known)
    params = _params(matched[4])
    if components is None or params is None:
        return None

    found = dict(params)
    keyid = found.get("keyid")
    if not isinstance(keyid, str):
        return None
    return Signed(
        components=components,
        params=params,
        text=matched[2],
        signature=base64.b64decode(value[2], validate=True),
        keyid=keyid,
        tag=_text(found.get("tag")),
        alg=_text(found.get("alg")),
        created=_integer(found.get("created")),
        expires=_integer(found.get("expires")),
        nonce=_text(found.get("nonce")),
    )


def verify(
    signed: Signed,
    *,
    key: Any,
    algorithm: str,
    derived: Iterable[sigbase.Component] | None,
    headers: Mapping[str, str],
    required: Collection[str],
    now: float,
    max_age_s: int,
) -> VerifiedSignature | None:
    """Verify ``signed`` with the registered ``key`` as the library would.

    ``algorithm`` is the RFC 9421 name of the registered key's algorithm,
    ``derived`` the message's derived components (None if it has none that
    sigbase can write), ``required`` the components the signature must cover.
    Return None when this path cannot decide: a derived component or field value
    outside sigbase's plain form, a covered field missing, or a key that is not
    an Ed25519 or P-256 ``cryptography`` public key for its algorithm.

    :raises Refused: with the library path's reason: a time reason from
        :func:`check_times`, else ``signature_invalid`` for an ``alg`` parameter
        other than ``algorithm``, coverage short of ``required``, or a signature
        that does not verify.
    """
    base = _signature_base(signed, derived, headers)
    if base is None or not _verifies_with(key, algorithm):
        return None

    # Steps, in the library's order: 1 created and expires; 2 an alg parameter
    # agrees with the registered key (RFC 9421 section 3.2, step 6); 3 coverage;
    # 4 the signature itself.
    created = check_times(signed.created, signed.expires, now=now, max_age_s=max_age_s)

    if signed.alg is not None and signed.alg != algorithm:
        raise Refused("signature_invalid")

    if not set(required).issubset(signed.components):
        raise Refused("signature_invalid")

    if not verify_raw(algorithm, key, base, signed.signature):
        raise Refused("signature_invalid")
    return VerifiedSignature(signed.keyid, algorithm, created, signed.nonce)


def _components(text: str, known: Collection[str]) -> tuple[str, ...] | None:
    if not text:
        return ()
    names: list[str] = []
    for quoted in text.split(" "):
        name = quoted[1:-1]
        if quoted != f'"{name}"' or name not in known or name in names:
            return None
        names.append(name)
    return tuple(names)


def _params(text: str) -> tuple[sigbase.Param, ...] | None:
    params: list[sigbase.Param] = []
    seen: set[str] = set()
    position = 0
    while position < len(text):
        matched = _PARAM.match(text, position)
        if matched is None:
            return None
        name, integer, string = matched.groups()
        wanted = _INTEGER_PARAMS if integer is not None else _STRING_PARAMS
        if name not in wanted or name in seen:
            return None
        seen.add(name)
        params.append((name, int(integer) if integer is not None else string))
        position = matched.end()
    return tuple(params)


def _text(value: int | str | None) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: int | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _signature_base(
    signed: Signed,
    derived: Iterable[sigbase.Component] | None,
    headers: Mapping[str, str],
) -> bytes | None:
    if derived is None:
        return None
    values = dict(derived)
    names = [name for name in signed.components if not name.startswith("@")]
    fields = sigbase.field_components(headers, names)
    if fields is None or len(fields) != len(names):
        return None
    values.update(fields)
    if any(name not in values for name in signed.components):
        return None

    built = sigbase.signature_base(
        [(name, values[name]) for name in signed.components], signed.params
    )
    # The library signs the serialisation of what it parsed; for the strict form
    # that is the text received, and anything else is left to the library.
    if built is None or built[1] != signed.text:
        return None
    return built[0]


def _verifies_with(key: Any, algorithm: str) -> bool:
    # The library refuses a key object of another type or curve only after the
    # time checks; such keys go to it, so that the reason stays its own.
    if algorithm == ED25519:
        return isinstance(key, ed25519.Ed25519PublicKey)
    if algorithm == ECDSA_P256:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            key.curve, ec.SECP256R1
        )
    return False
