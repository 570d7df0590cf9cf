"""The strict-form verifier against the library: it declines or gives the same verdict.

Messages are signed by the library with random coverage, parameter order, labels,
tags and times, then mutated: the ``Signature-Input`` and ``Signature`` text, the
header fields, the body and the request or status. Each is verified as the node
verifies it and again with the library alone; the verdicts (the verified
signature, or the error, its reason and log reason) must be equal.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from unittest import mock

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    algorithms,
)
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st

from gateway import sigverify
from gateway.digest import content_digest
from gateway.directory import RegisteredKey
from gateway.errors import MediatorError
from gateway.keyring import SigningKey
from gateway.signing import (
    OPTIONAL_REQUEST,
    OPTIONAL_RESPONSE,
    TAG,
    Fields,
    RequestView,
    ResponseView,
)
from gateway.verifying import verify_request, verify_response

NOW = 1796378400
_ED = ed25519.Ed25519PrivateKey.generate()
_EC = ec.generate_private_key(ec.SECP256R1())
SIGNERS = {
    "ed25519": SigningKey("node-ed", "ed25519", _ED),
    "p256": SigningKey("node-ec", "ecdsa-p256-sha256", _EC),
}
_JWS = {"ed25519": "EdDSA", "ecdsa-p256-sha256": "ES256"}
_LIBRARY = {
    "ed25519": algorithms.ED25519,
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
}
_OTHER = {
    "ed25519": ed25519.Ed25519PrivateKey.generate().public_key(),
    "ecdsa-p256-sha256": ec.generate_private_key(ec.SECP256R1()).public_key(),
}
_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
_P384 = ec.generate_private_key(ec.SECP384R1()).public_key()

URLS = [
    "https://registry.wbsed.internal:8443/api/students/by-udise/19110900503?x=1",
    "http://127.0.0.1:8701/api/students/verify-enrolment",
    "http://Registry.Example",
    "http://registry.example/a%20b/;c=d?q=1&r",
    "http://[::1]:8701/api",
]
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_VALUES = st.text(_PRINTABLE, max_size=10)
_ODD_VALUES = st.sampled_from(
    [" padded", "padded ", "", "caf\u00e9", "tab\tinside", "a,  b", 'q"uote', "x"]
)


@dataclass
class Message:
    """A message as it arrives: request or response, header fields, body."""

    request: bool
    method: str
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    kid: str
    algorithm: str


# -- signed messages -------------------------------------------------------------------


def _time(at: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(at, datetime.UTC)


def _digest(body: bytes, sha512: bool) -> str:
    if not sha512:
        return content_digest(body)
    return f"sha-512=:{base64.b64encode(hashlib.sha512(body).digest()).decode()}:"


@st.composite
def signed_messages(draw: st.DrawFn) -> Message:
    """A request or response signed by the library, coverage and parameters drawn."""
    request = draw(st.booleans())
    signer = SIGNERS[draw(st.sampled_from(sorted(SIGNERS)))]
    optional = OPTIONAL_REQUEST if request else OPTIONAL_RESPONSE
    headers = {name: draw(_VALUES) for name in optional if draw(st.booleans())}
    body = draw(st.binary(max_size=24))
    headers["content-digest"] = _digest(body, draw(st.booleans()))
    if draw(st.booleans()):
        headers["accept"] = "application/json"

    derived = ["@method", "@target-uri"] if request else ["@status"]
    covered = draw(st.permutations([*derived, *(n for n in headers if n != "accept")]))
    if draw(st.integers(0, 4)) == 0:
        covered = covered[: draw(st.integers(0, len(covered)))]
    message = Message(
        request=request,
        method=draw(st.sampled_from(["POST", "GET"])),
        url=draw(st.sampled_from(URLS)),
        status=draw(st.sampled_from([200, 404, 502])),
        headers=headers,
        body=body,
        kid=signer.kid,
        algorithm=signer.algorithm,
    )
    expires = draw(st.sampled_from([None, None, NOW + 60, NOW - 59, NOW - 61]))
    _sign(
        message,
        signer,
        covered=covered,
        created=NOW + draw(st.sampled_from([0, 0, 0, -100, -299, -301, 59, 61])),
        expires=expires,
        nonce=draw(st.none() | st.text(_PRINTABLE, max_size=6)),
        tag=draw(st.sampled_from([TAG, TAG, TAG, "other", None])),
        include_alg=draw(st.booleans()),
        label=draw(st.sampled_from(["mediator", "sig-1", "*"])),
    )
    return message


def _sign(
    message: Message,
    signer: SigningKey,
    *,
    covered: list[str],
    created: int,
    expires: int | None,
    nonce: str | None,
    tag: str | None,
    include_alg: bool,
    label: str,
) -> None:
    fields = Fields(message.headers.items())
    view: RequestView | ResponseView = (
        RequestView(message.method, message.url, fields)
        if message.request
        else ResponseView(message.status, fields)
    )
    library = HTTPMessageSigner(signature_algorithm=_LIBRARY[signer.algorithm])
    try:
        prepared = library.prepare(
            view,
            key_id=signer.kid,
            created=_time(created),
            expires=None if expires is None else _time(expires),
            nonce=nonce,
            label=label,
            tag=tag,
            include_alg=include_alg,
            covered_component_ids=covered,
            use_existing_digest=True,
        )
    except HTTPMessageSignaturesException:
        reject()
    library.apply(view, prepared, signer.sign(prepared.signature_base))
    message.headers["signature-input"] = fields.get("signature-input") or ""
    message.headers["signature"] = fields.get("signature") or ""


# -- mutations -------------------------------------------------------------------------

Mutation = Callable[[Message, st.DataObject], None]
_EXTRA_IDS = [
    '"date"',
    '"@path"',
    '"@status"',
    '"@method"',
    '"x-road-id"',
    '"x-road-client"',
    '"x-road-request-hash"',
    '"content-type"',
    '"content-digest";sf',
    '"content-digest";key="sha-256"',
    '"X-Road-Id"',
    '"accept"',
]
_PARAM_EDITS = [
    (r"created=(\d+)", lambda m: f"created={int(m[1]) + 1}"),
    (r"created=(\d+)", lambda m: f"created=0{m[1]}"),
    (r"created=(\d+)", lambda m: f'created="{m[1]}"'),
    (r"created=(\d+)", lambda m: f"created={m[1]}.0"),
    (r";created=\d+", lambda m: ""),
    (r'keyid="[^"]*"', lambda m: 'keyid="node-ec"'),
    (r'keyid="[^"]*"', lambda m: 'keyid="node-ed"'),
    (r'keyid="([^"]*)"', lambda m: f"keyid={m[1]}"),
    (r';keyid="[^"]*"', lambda m: ""),
    (r'alg="[^"]*"', lambda m: 'alg="ed25519"'),
    (r'alg="[^"]*"', lambda m: 'alg="ecdsa-p256-sha256"'),
    (r'alg="[^"]*"', lambda m: 'alg="rsa-v1_5-sha256"'),
    (r';alg="[^"]*"', lambda m: ""),
    (r'tag="[^"]*"', lambda m: f'tag="{TAG}"'),
    (r'tag="[^"]*"', lambda m: 'tag="Shiksha-Mediator"'),
    (r';tag="[^"]*"', lambda m: ""),
    (r"\)", lambda m: f');tag="{TAG}"'),
    (r"\)", lambda m: ';keyid="node-ed")'),
    (r"\)", lambda m: f");expires={NOW - 61}"),
    (r"\)", lambda m: f");expires={NOW + 60}"),
    (r"\)", lambda m: ');foo="x"'),
    (r"\)", lambda m: ";flag"),
    (r"$", lambda m: ';keyid="node-ed"'),
    (r"$", lambda m: f";created={NOW}"),
    (r'nonce="[^"]*"', lambda m: 'nonce="n\\"q"'),
]
_FUZZ = [
    '"',
    ";",
    "=",
    "(",
    ")",
    " ",
    ",",
    ":",
    "\\",
    "*",
    "a",
    "A",
    "0",
    "@",
    "\t",
    "-",
]


def _inner_list(message: Message) -> tuple[str, list[str]]:
    text = message.headers.get("signature-input", "")
    matched = re.search(r"\(([^()]*)\)", text)
    if matched is None:
        return text, []
    return text, matched[1].split(" ") if matched[1] else []


def _with_inner_list(message: Message, ids: list[str]) -> None:
    text = message.headers.get("signature-input", "")
    inner = "(" + " ".join(ids) + ")"
    message.headers["signature-input"] = re.sub(r"\([^()]*\)", inner, text, count=1)


def _reorder_ids(message: Message, data: st.DataObject) -> None:
    _, ids = _inner_list(message)
    _with_inner_list(message, data.draw(st.permutations(ids)))


def _repeat_id(message: Message, data: st.DataObject) -> None:
    _, ids = _inner_list(message)
    if ids:
        _with_inner_list(message, [*ids, data.draw(st.sampled_from(ids))])


def _drop_id(message: Message, data: st.DataObject) -> None:
    _, ids = _inner_list(message)
    if ids:
        ids.pop(data.draw(st.integers(0, len(ids) - 1)))
        _with_inner_list(message, ids)


def _add_id(message: Message, data: st.DataObject) -> None:
    _, ids = _inner_list(message)
    position = data.draw(st.integers(0, len(ids)))
    ids.insert(position, data.draw(st.sampled_from(_EXTRA_IDS)))
    _with_inner_list(message, ids)


def _edit_param(message: Message, data: st.DataObject) -> None:
    pattern, replace = data.draw(st.sampled_from(_PARAM_EDITS))
    text = message.headers.get("signature-input", "")
    message.headers["signature-input"] = re.sub(pattern, replace, text, count=1)


def _fuzz_text(message: Message, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(["signature-input", "signature"]))
    text = message.headers.get(name, "")
    at = data.draw(st.integers(0, len(text)))
    action = data.draw(st.sampled_from(["insert", "delete", "upper"]))
    if action == "insert":
        text = text[:at] + data.draw(st.sampled_from(_FUZZ)) + text[at:]
    elif action == "delete":
        text = text[:at] + text[at + 1 :]
    else:
        text = text[:at] + text[at : at + 1].upper() + text[at + 1 :]
    message.headers[name] = text


def _extra_member(message: Message, data: st.DataObject) -> None:
    member = data.draw(
        st.sampled_from(
            [
                'other=("@status");tag="x"',
                f'other=("@status");keyid="{message.kid}";tag="{TAG}"',
                'other="x"',
            ]
        )
    )
    headers = message.headers
    headers["signature-input"] = headers.get("signature-input", "") + f", {member}"
    if data.draw(st.booleans()):
        headers["signature"] = headers.get("signature", "") + ", other=:AAAA:"


def _edit_signature(message: Message, data: st.DataObject) -> None:
    text = message.headers.get("signature", "")
    edits: list[Callable[[str], str]] = [
        lambda s: s.replace("=:", "=:A", 1),
        lambda s: s.replace("==:", ":"),
        lambda s: s.replace("=:", "=:!", 1),
        lambda s: re.sub(r"=:[^:]*:", "=::", s, count=1),
        lambda s: re.sub(r":([A-Za-z])", lambda m: ":" + m[1].swapcase(), s, count=1),
        lambda s: s.replace("+", "-").replace("/", "_"),
        lambda s: s + ";x=1",
        lambda s: re.sub(r"^[^=]*", "relabelled", s),
    ]
    message.headers["signature"] = data.draw(st.sampled_from(edits))(text)


def _relabel_input(message: Message, data: st.DataObject) -> None:
    text = message.headers.get("signature-input", "")
    label = data.draw(st.sampled_from(["relabelled", "Mediator", "mediator", "sig-1"]))
    message.headers["signature-input"] = re.sub(r"^[^=]*", label, text)


def _drop_header(message: Message, data: st.DataObject) -> None:
    if message.headers:
        del message.headers[data.draw(st.sampled_from(sorted(message.headers)))]


def _set_header(message: Message, data: st.DataObject) -> None:
    names = [*OPTIONAL_REQUEST, *OPTIONAL_RESPONSE, "content-digest"]
    name = data.draw(st.sampled_from(names))
    odd = [content_digest(b"x"), _digest(message.body, True), content_digest(b"")]
    value = data.draw(_ODD_VALUES | _VALUES | st.sampled_from(odd))
    message.headers[name] = value


def _repeat_header(message: Message, data: st.DataObject) -> None:
    if not message.headers:
        return
    name = data.draw(st.sampled_from(sorted(message.headers)))
    value = data.draw(st.sampled_from([message.headers[name], "x"]))
    message.headers[name.title()] = value


def _pad_header(message: Message, data: st.DataObject) -> None:
    if message.headers:
        name = data.draw(st.sampled_from(sorted(message.headers)))
        message.headers[name] = data.draw(st.sampled_from([" ", "\t", ""])) + (
            message.headers[name] + data.draw(st.sampled_from([" ", "\t", ""]))
        )


def _change_message(message: Message, data: st.DataObject) -> None:
    change = data.draw(st.sampled_from(["body", "status", "method", "url"]))
    if change == "body":
        message.body += b"!"
    elif change == "status":
        message.status = data.draw(st.sampled_from([201, 99, 1000]))
    elif change == "method":
        message.method = data.draw(st.sampled_from(["post", "PUT"]))
    else:
        message.url = data.draw(st.sampled_from([*URLS, "http://registry.example/#f"]))


MUTATIONS: list[Mutation] = [
    _reorder_ids,
    _repeat_id,
    _drop_id,
    _add_id,
    _edit_param,
    _fuzz_text,
    _extra_member,
    _edit_signature,
    _relabel_input,
    _drop_header,
    _set_header,
    _repeat_header,
    _pad_header,
    _change_message,
]


# -- verdicts --------------------------------------------------------------------------


def _registry(message: Message, choice: str) -> Any:
    own = SIGNERS["ed25519" if message.algorithm == "ed25519" else "p256"]
    public = own.public_key()
    jws = _JWS[message.algorithm]
    keys = {
        "registered": {message.kid: RegisteredKey(message.kid, jws, public)},
        "empty": {},
        "other-key": {
            message.kid: RegisteredKey(message.kid, jws, _OTHER[own.algorithm])
        },
        "rsa": {message.kid: RegisteredKey(message.kid, "RS256", _RSA)},
        "p384": {message.kid: RegisteredKey(message.kid, "ES256", _P384)},
        "mislabelled": {
            message.kid: RegisteredKey(
                message.kid, "ES256" if jws == "EdDSA" else "EdDSA", public
            )
        },
        "unsupported": {message.kid: RegisteredKey(message.kid, "HS256", public)},
    }
    if choice == "resolver":
        return keys["registered"].get
    return keys[choice]


def _verdict(message: Message, keys: Any, now: int, max_age_s: int) -> object:
    try:
        if message.request:
            return verify_request(
                method=message.method,
                url=message.url,
                headers=dict(message.headers),
                body=message.body,
                keys=keys,
                max_age_s=max_age_s,
                now=now,
            )
        return verify_response(
            status=message.status,
            headers=dict(message.headers),
            body=message.body,
            keys=keys,
            max_age_s=max_age_s,
            now=now,
        )
    except MediatorError as exc:
        return (type(exc).__name__, exc.reason, exc.log_reason)


def _node_verdict(message: Message, keys: Any, now: int, max_age_s: int) -> object:
    """The verdict as the node reaches it; reports which path decided."""
    real = sigverify.verify
    decided: list[str] = []

    def recording(*args: Any, **kwargs: Any) -> sigverify.VerifiedSignature | None:
        try:
            result = real(*args, **kwargs)
        except sigverify.Refused:
            decided.append("refused")
            raise
        decided.append("declined" if result is None else "verified")
        return result

    with mock.patch.object(sigverify, "verify", recording):
        verdict = _verdict(message, keys, now, max_age_s)
    event(f"sigverify: {decided[0] if decided else 'not the strict form'}")
    return verdict


def _library_verdict(message: Message, keys: Any, now: int, max_age_s: int) -> object:
    with mock.patch.object(sigverify, "parse_tagged", return_value=None):
        return _verdict(message, keys, now, max_age_s)


@settings(max_examples=400, deadline=None)
@given(
    message=signed_messages(),
    data=st.data(),
    registry=st.sampled_from(
        [
            "registered",
            "registered",
            "registered",
            "resolver",
            "empty",
            "other-key",
            "rsa",
            "p384",
            "mislabelled",
            "unsupported",
        ]
    ),
    now=st.sampled_from([NOW, NOW + 1, NOW - 60, NOW - 61, NOW + 300, NOW + 301]),
    max_age_s=st.sampled_from([300, 300, 10]),
)
def test_strict_form_declines_or_agrees_with_the_library(
    message: Message, data: st.DataObject, registry: str, now: int, max_age_s: int
) -> None:
    for _ in range(data.draw(st.sampled_from([0, 0, 1, 1, 2, 3]), label="mutations")):
        data.draw(st.sampled_from(MUTATIONS), label="mutation")(message, data)
    keys = _registry(message, registry)

    node = _node_verdict(message, keys, now, max_age_s)

    assert node == _library_verdict(message, keys, now, max_age_s)
