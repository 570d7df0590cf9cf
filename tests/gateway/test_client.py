"""The departmental client: its keys, what each request carries, answer checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway import wire
from gateway.client import Answer, DepartmentClient, new_client_key, read_client_key
from gateway.clientkeys import RegisteredKey, parse_jwks
from gateway.errors import ConfigError
from gateway.identifiers import ClientId, ServiceId
from gateway.keyfiles import ECDSA_P256, ED25519, public_jwk
from gateway.keytypes import SigningKey
from gateway.signing import sign_response

pytestmark = pytest.mark.anyio

KANYASHREE = ClientId("WB", "GOV", "WCD", "kanyashree")
STUDENTS = ServiceId(ClientId("WB", "GOV", "SED", "registry"), "students")
AUDIENCE = "https://mediator.wbsed.internal"
BASE = "https://mediator.wbsed.internal:8443"
RECORD = b'{"student_id":"WB-2019-000123"}'

NODE_KEY = SigningKey("mediator-1", ED25519, ed25519.Ed25519PrivateKey.generate())
NODE_KEYS = {"mediator-1": RegisteredKey("mediator-1", "EdDSA", NODE_KEY.public_key())}
#: A key the node does not publish, under the kid of one it does.
IMPOSTOR = SigningKey("mediator-1", ED25519, ed25519.Ed25519PrivateKey.generate())
CLIENT_KEY, CLIENT_JWK = new_client_key("kanyashree-1")

Handler = Callable[[httpx.Request], httpx.Response]


class Node:
    """A mock node: records each request and answers it with ``reply``."""

    def __init__(self, reply: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._reply = reply or (lambda request: signed(200, RECORD))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._reply(request)

    def client(self, **options: Any) -> DepartmentClient:
        settings: dict[str, Any] = {
            "client_id": KANYASHREE,
            "key": CLIENT_KEY,
            "audience": AUDIENCE,
            "base_url": BASE,
            "node_keys": NODE_KEYS,
        }
        return DepartmentClient(
            **{**settings, **options},
            http=httpx.AsyncClient(transport=httpx.MockTransport(self)),
        )


def signed(
    status: int, body: bytes, key: SigningKey = NODE_KEY, tamper: bool = False
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    headers |= sign_response(key, status=status, headers=headers, body=body)
    return httpx.Response(status, headers=headers, content=body + b" " * tamper)


def write_key(path: Path, key: Any, password: bytes | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return path


# -- keys ----------------------------------------------------------------------------


def test_a_new_client_key_comes_with_its_public_jwk_only() -> None:
    registered = parse_jwks({"keys": [CLIENT_JWK]}, "kanyashree.jwks")["kanyashree-1"]

    assert (CLIENT_KEY.kid, CLIENT_KEY.algorithm) == ("kanyashree-1", ED25519)
    assert (CLIENT_JWK["alg"], CLIENT_JWK["use"]) == ("EdDSA", "sig")
    assert "d" not in CLIENT_JWK
    registered.key.verify(CLIENT_KEY.sign(b"x"), b"x")


@pytest.mark.parametrize(
    ("private", "algorithm"),
    [
        (ed25519.Ed25519PrivateKey.generate(), ED25519),
        (ec.generate_private_key(ec.SECP256R1()), ECDSA_P256),
    ],
    ids=["ed25519", "p256"],
)
def test_a_client_key_file_is_read_under_the_given_kid(
    tmp_path: Path, private: Any, algorithm: str
) -> None:
    path = write_key(tmp_path / "client.pem", private)

    key = read_client_key(path, "kanyashree-1")

    assert (key.kid, key.algorithm) == ("kanyashree-1", algorithm)


@pytest.mark.parametrize(
    "private",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "rsa"],
)
def test_a_client_key_of_another_type_is_refused(tmp_path: Path, private: Any) -> None:
    path = write_key(tmp_path / "client.pem", private)

    with pytest.raises(ConfigError, match="must be Ed25519 or ECDSA P-256"):
        read_client_key(path, "kanyashree-1")


@pytest.mark.parametrize(
    "content",
    [None, b"", b"not a key: 999901234563", b"-----BEGIN PRIVATE KEY-----\nAA\n"],
    ids=["missing", "empty", "text", "broken-pem"],
)
def test_an_unreadable_client_key_file_is_refused_without_quoting_it(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "client.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(ConfigError, match="not a readable unencrypted PEM key") as e:
        read_client_key(path, "kanyashree-1")

    assert "999901234563" not in str(e.value)


def test_an_encrypted_client_key_file_is_refused(tmp_path: Path) -> None:
    path = write_key(tmp_path / "c.pem", ed25519.Ed25519PrivateKey.generate(), b"pw")

    with pytest.raises(ConfigError, match="not a readable unencrypted PEM key"):
        read_client_key(path, "kanyashree-1")


# -- requests ------------------------------------------------------------------------


async def test_a_call_names_the_client_and_the_service_path() -> None:
    node = Node()

    await node.client(base_url=BASE + "/").call(
        "GET", STUDENTS, "/by-udise/19110900503", query={"year": "2024"}
    )

    (request,) = node.requests
    assert str(request.url) == (
        f"{BASE}/r1/WB/GOV/SED/registry/students/by-udise/19110900503?year=2024"
    )
    assert request.headers[wire.XROAD_CLIENT] == "WB/GOV/WCD/kanyashree"
    assert wire.PURPOSE not in request.headers
    assert request.content == b""


async def test_each_call_carries_a_fresh_assertion_for_the_node() -> None:
    node = Node()
    client = node.client()
    public = CLIENT_KEY.public_key()

    for _ in range(2):
        await client.call("GET", STUDENTS)

    tokens = [r.headers["authorization"].removeprefix("Bearer ") for r in node.requests]
    claims = [jwt.decode(t, public, ["EdDSA"], audience=AUDIENCE) for t in tokens]
    assert [jwt.get_unverified_header(t)["kid"] for t in tokens] == ["kanyashree-1"] * 2
    assert {c["iss"] for c in claims} == {c["sub"] for c in claims} == {str(KANYASHREE)}
    assert claims[0]["jti"] != claims[1]["jti"]
    assert [c["exp"] - c["iat"] for c in claims] == [60, 60]


async def test_a_json_body_and_a_purpose_are_sent_with_their_headers() -> None:
    node = Node()

    await node.client().call(
        "POST", STUDENTS, json={"udise": "19110900503"}, purpose="scholarship"
    )

    (request,) = node.requests
    assert json.loads(request.content) == {"udise": "19110900503"}
    assert request.headers[wire.CONTENT_TYPE] == "application/json"
    assert request.headers[wire.PURPOSE] == "scholarship"


async def test_a_given_token_host_and_extra_headers_are_sent_as_given() -> None:
    node = Node()

    await node.client(host="mediator.internal").call(
        "GET", STUDENTS, token="a.b.c", extra_headers={"x-road-userid": "EE1"}
    )

    (request,) = node.requests
    assert request.headers["authorization"] == "Bearer a.b.c"
    assert request.headers["host"] == "mediator.internal"
    assert request.headers["x-road-userid"] == "EE1"


# -- answers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "node_keys", "ok"),
    [
        (lambda r: signed(200, RECORD), NODE_KEYS, True),
        (lambda r: signed(404, b""), NODE_KEYS, True),
        (lambda r: signed(200, RECORD, tamper=True), NODE_KEYS, False),
        (lambda r: httpx.Response(200, content=RECORD), NODE_KEYS, False),
        (lambda r: signed(200, RECORD), {}, False),
        (
            lambda r: signed(200, RECORD, IMPOSTOR),
            NODE_KEYS,
            False,
        ),
    ],
    ids=["signed", "signed-error", "tampered", "unsigned", "no-keys", "other-key"],
)
async def test_an_answer_is_trusted_only_if_a_node_key_signed_it(
    reply: Handler, node_keys: dict[str, RegisteredKey], ok: bool
) -> None:
    answer = await Node(reply).client(node_keys=node_keys).call("GET", STUDENTS)

    assert answer.signature_ok is ok


@pytest.mark.parametrize(
    ("body", "headers", "parsed", "error_type"),
    [
        (RECORD, {}, {"student_id": "WB-2019-000123"}, None),
        (b"", {wire.XROAD_ERROR: "client.access_denied"}, None, "client.access_denied"),
    ],
)
def test_an_answer_reads_its_json_and_error_type(
    body: bytes, headers: dict[str, str], parsed: Any, error_type: str | None
) -> None:
    answer = Answer(403, httpx.Headers(headers), body, 1.0, signature_ok=False)

    assert answer.json() == parsed
    assert answer.error_type == error_type


async def test_the_node_keys_are_loaded_from_its_jwks() -> None:
    jwk = public_jwk("mediator-1", NODE_KEY.public_key())
    node = Node(lambda request: httpx.Response(200, json={"keys": [jwk]}))
    client = node.client(node_keys=None)

    await client.load_node_keys()

    assert str(node.requests[0].url) == f"{BASE}/.well-known/jwks.json"
    assert list(client.node_keys) == ["mediator-1"]


async def test_a_failed_jwks_fetch_raises_and_keeps_no_keys() -> None:
    client = Node(lambda request: httpx.Response(503)).client(node_keys=None)

    with pytest.raises(httpx.HTTPStatusError, match="503"):
        await client.load_node_keys()

    assert client.node_keys == {}


def test_the_node_keys_given_out_are_a_copy() -> None:
    client = Node().client()

    client.node_keys.clear()

    assert list(client.node_keys) == ["mediator-1"]
