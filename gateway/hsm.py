"""Signing keys held in an HSM through PKCS#11 (optional; ``python-pkcs11``).

A key pair is generated inside the token, with a private half that is sensitive
and never extractable: only signatures leave the token. The algorithm is ECDSA
P-256 (``ecdsa-p256-sha256``). Tokens such as SoftHSM2 offer ``CKM_ECDSA`` but no
combined hash-and-sign mechanism, so the data is hashed here with SHA-256 and
the token signs the digest; PKCS#11 returns the signature as raw ``r || s``,
which is the form RFC 9421 and the message log use.

The PIN is a :class:`~gateway.secrets.Secret`; it is never logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ConfigError, NodeError, Reason
from gateway.keyfiles import ECDSA_P256
from gateway.secrets import Secret

ALGORITHM = ECDSA_P256
_CURVE = "secp256r1"


def _pkcs11() -> Any:
    try:
        import pkcs11  # noqa: PLC0415 (optional dependency, loaded on use)
    except ImportError as exc:
        raise ConfigError("pkcs11", "python-pkcs11 is not installed") from exc
    return pkcs11


@contextmanager
def open_token(library: str, token_label: str, pin: Secret) -> Iterator[Any]:
    """A read-write session on the token ``token_label`` of a PKCS#11 library.

    :raises ConfigError: the library cannot be loaded, the token is not there, or
        the PIN is refused.
    """
    pkcs11 = _pkcs11()
    try:
        token = pkcs11.lib(library).get_token(token_label=token_label)
        session = token.open(user_pin=pin.reveal().decode("utf-8"), rw=True)
    except (pkcs11.PKCS11Error, RuntimeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(library, f"token {token_label!r} cannot be opened") from exc
    try:
        yield session
    finally:
        session.close()


class HsmKey:
    """An ECDSA P-256 key pair in a token, named by ``kid`` (its PKCS#11 label)."""

    algorithm = ALGORITHM

    def __init__(self, kid: str, private: Any, public: ec.EllipticCurvePublicKey):
        self.kid = kid
        self._private = private
        self._public = public

    @classmethod
    def generate(cls, session: Any, kid: str) -> HsmKey:
        """Generate a key pair in the token; the private half stays there.

        :raises ConfigError: the token refuses to generate the key.
        """
        pkcs11 = _pkcs11()
        from pkcs11.util.ec import encode_named_curve_parameters  # noqa: PLC0415

        attribute = pkcs11.Attribute
        try:
            parameters = session.create_domain_parameters(
                pkcs11.KeyType.EC,
                {attribute.EC_PARAMS: encode_named_curve_parameters(_CURVE)},
                local=True,
            )
            public, private = parameters.generate_keypair(
                store=True,
                label=kid,
                private_template={
                    attribute.SENSITIVE: True,
                    attribute.EXTRACTABLE: False,
                    attribute.SIGN: True,
                },
            )
        except pkcs11.PKCS11Error as exc:
            raise ConfigError("pkcs11", "the token cannot generate the key") from exc
        return cls(kid, private, _public_key(public))

    @classmethod
    def find(cls, session: Any, kid: str) -> HsmKey:
        """The key pair labelled ``kid`` in the token.

        :raises ConfigError: there is no such key pair, or more than one.
        """
        pkcs11 = _pkcs11()
        try:
            private = session.get_key(
                object_class=pkcs11.ObjectClass.PRIVATE_KEY, label=kid
            )
            public = session.get_key(
                object_class=pkcs11.ObjectClass.PUBLIC_KEY, label=kid
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned) as exc:
            raise ConfigError(
                "pkcs11", f"key {kid!r}: not exactly one in the token"
            ) from exc
        return cls(kid, private, _public_key(public))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign SHA-256 of ``data`` in the token; return raw ``r || s``.

        :raises NodeError: ``signing_unavailable`` if the token fails.
        """
        pkcs11 = _pkcs11()
        digest = hashlib.sha256(data).digest()
        try:
            signature = self._private.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)
        except pkcs11.PKCS11Error as exc:
            raise NodeError(
                Reason.SIGNING_UNAVAILABLE, log_reason="hsm_sign_failed"
            ) from exc
        return bytes(signature)


def _public_key(public: Any) -> ec.EllipticCurvePublicKey:
    from pkcs11.util.ec import encode_ec_public_key  # noqa: PLC0415

    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise ConfigError("pkcs11", "the token's public key is not P-256")
    return key
