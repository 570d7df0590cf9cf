"""Checkpoint signing and checking with Ed25519 and ES256 keys, and JWKS reading."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.errors import NodeError, Reason
from gateway.msglog.checkpoint import (
    Checkpoint,
    KeySigner,
    PrivateKey,
    load_jwks,
    make_checkpoint,
    public_jwk,
    verify_signature,
)

ROOT = bytes(range(32))


def _keys() -> list[PrivateKey]:
    return [Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())]


@pytest.mark.parametrize("key", _keys(), ids=["ed25519", "es256"])
def test_signed_checkpoint_verifies(key: PrivateKey) -> None:
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, KeySigner("k1", key))
    assert verify_signature(checkpoint, key.public_key())


@pytest.mark.parametrize("key", _keys(), ids=["ed25519", "es256"])
def test_changed_checkpoint_fails(key: PrivateKey) -> None:
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, KeySigner("k1", key))
    assert not verify_signature(replace(checkpoint, tree_size=6), key.public_key())


def test_es256_signature_is_raw_r_and_s() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, KeySigner("k1", key))
    assert len(base64.b64decode(checkpoint.signature)) == 64


def test_signed_bytes_are_canonical_json_without_signature() -> None:
    checkpoint = Checkpoint("o", 2, "ab", 1.0, "k", "c2ln")
    assert checkpoint.signed_bytes() == (
        b'{"key_id":"k","origin":"o","root_hash":"ab","timestamp":1,"tree_size":2}'
    )


def test_key_of_wrong_type_does_not_verify() -> None:
    signer = KeySigner("k1", Ed25519PrivateKey.generate())
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, signer)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert not verify_signature(checkpoint, other)


def test_signature_that_is_not_base64_does_not_verify() -> None:
    key = Ed25519PrivateKey.generate()
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, KeySigner("k1", key))
    assert not verify_signature(replace(checkpoint, signature="%%%"), key.public_key())


class RotatingSigner:
    """Answers with a new key id every time, as a keyring mid-rotation could."""

    def __init__(self) -> None:
        self.calls = 0

    def sign_checkpoint(self, data: bytes) -> tuple[str, bytes]:
        self.calls += 1
        return f"k{self.calls}", b"sig"


def test_signer_whose_key_id_never_settles_raises() -> None:
    with pytest.raises(NodeError) as caught:
        make_checkpoint("node-a", 5, ROOT, 1.5, RotatingSigner())
    assert caught.value.reason is Reason.SIGNING_UNAVAILABLE


@pytest.mark.parametrize("key", _keys(), ids=["ed25519", "es256"])
def test_jwks_round_trip(key: PrivateKey) -> None:
    keys = load_jwks({"keys": [public_jwk("k1", key.public_key())]})
    checkpoint = make_checkpoint("node-a", 5, ROOT, 1.5, KeySigner("k1", key))
    assert verify_signature(checkpoint, keys["k1"])


def test_jwks_leaves_out_unusable_entries() -> None:
    good = public_jwk("k1", Ed25519PrivateKey.generate().public_key())
    keys = load_jwks(
        {
            "keys": [
                good,
                {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
                {"kty": "OKP", "crv": "Ed25519", "kid": "bad", "x": "AAAA"},
                {"kty": "OKP", "crv": "Ed25519", "x": good["x"]},
            ]
        }
    )
    assert list(keys) == ["k1"]
