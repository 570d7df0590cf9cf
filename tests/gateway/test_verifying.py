"""Verifying a provider's signed answer under the node's policy (gateway.verifying).

The signature machinery itself is tested in test_signing and test_sigverify; these
tests pin what this module decides around it.
"""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.directory import RegisteredKey
from gateway.errors import UpstreamError
from gateway.keyring import SigningKey
from gateway.signing import sign_response
from gateway.verifying import verify_response

CONTENT = b'{"udise_code":"19110900503","name":"Sample School"}'


def _provider() -> tuple[SigningKey, dict[str, RegisteredKey]]:
    private = ed25519.Ed25519PrivateKey.generate()
    registered = RegisteredKey("registry-1", "EdDSA", private.public_key())
    return SigningKey("registry-1", "ed25519", private), {"registry-1": registered}


def _head_answer(key: SigningKey) -> dict[str, str]:
    """A HEAD answer as a provider signs it: the GET content's digest, no content."""
    headers = {"content-type": "application/json", "content-length": str(len(CONTENT))}
    return {**headers, **sign_response(key, status=200, headers=headers, body=CONTENT)}


def test_a_head_answer_carries_the_digest_of_the_get_content() -> None:
    """RFC 9530 section 2: the digest is not compared with the empty body."""
    key, keys = _provider()
    headers = _head_answer(key)

    verified = verify_response(
        status=200, headers=headers, body=b"", keys=keys, max_age_s=300, head=True
    )

    assert verified.kid == "registry-1"
    with pytest.raises(UpstreamError) as caught:
        verify_response(status=200, headers=headers, body=b"", keys=keys, max_age_s=300)
    assert caught.value.log_reason == "digest_mismatch"


def test_a_head_answer_must_still_sign_a_content_digest() -> None:
    key, keys = _provider()
    headers = _head_answer(key)
    del headers["content-digest"]

    with pytest.raises(UpstreamError) as caught:
        verify_response(
            status=200, headers=headers, body=b"", keys=keys, max_age_s=300, head=True
        )
    assert caught.value.log_reason == "digest_missing"


def test_a_head_answer_with_an_altered_digest_fails_its_signature() -> None:
    """Not compared with a body, the digest is still covered by the signature."""
    key, keys = _provider()
    headers = _head_answer(key)
    other = sign_response(key, status=200, headers={}, body=b"other")
    headers["content-digest"] = other["content-digest"]

    with pytest.raises(UpstreamError) as caught:
        verify_response(
            status=200,
            headers=headers,
            body=b"",
            keys=keys,
            max_age_s=300,
            head=True,
            now=time.time(),
        )
    assert caught.value.log_reason.startswith("signature")
