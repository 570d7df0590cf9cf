"""Signing keys held in an HSM through PKCS#11 (optional; ``python-pkcs11``).

A key pair is generated inside the token, with a private half that is sensitive
and never extractable: only signatures leave the token. The algorithm is ECDSA
P-256 (``ecdsa-p256-sha256``). Tokens such as SoftHSM2 offer ``CKM_ECDSA`` but no
combined hash-and-sign mechanism, so the data is hashed here with SHA-256 and
the token signs the digest; PKCS#11 returns the signature as raw ``r || s``,
which is the form RFC 9421 and the message log use.

A node holds one :class:`HsmToken` (one session, opened at start and closed at
stop) when ``keyring.hsm`` is configured in node.yaml; keyring entries that name
an ``hsm_label`` sign through it. A PKCS#11 session must not be used by two
threads at once, so every operation on it takes the token's lock.

The PIN is a :class:`~gateway.secrets.Secret`; it is never logged.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.errors import ConfigError, NodeError, Reason
from gateway.keyfiles import ECDSA_P256, public_raw
from gateway.keytypes import PublicKeyEntry
from gateway.secrets import Secret, read_passphrase
from gateway.settings import HsmSettings

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
    """An ECDSA P-256 key pair in a token, named by ``kid`` (its PKCS#11 label).

    It meets :class:`gateway.keytypes.Signer`, so it signs wherever a PEM key does.
    """

    algorithm = ALGORITHM

    def __init__(
        self,
        kid: str,
        private: Any,
        public: ec.EllipticCurvePublicKey,
        lock: threading.Lock | None = None,
    ):
        self.kid = kid
        self._private = private
        self._public = public
        self._lock = lock or threading.Lock()

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

    def with_kid(self, kid: str, lock: threading.Lock) -> HsmKey:
        """The same token key named ``kid`` and guarded by ``lock``."""
        return HsmKey(kid, self._private, self._public, lock)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """Sign SHA-256 of ``data`` in the token; return raw ``r || s``.

        :raises NodeError: ``signing_unavailable`` if the token fails.
        """
        pkcs11 = _pkcs11()
        digest = hashlib.sha256(data).digest()
        try:
            with self._lock:
                signature = self._private.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)
        except pkcs11.PKCS11Error as exc:
            raise NodeError(
                Reason.SIGNING_UNAVAILABLE, log_reason="hsm_sign_failed"
            ) from exc
        return bytes(signature)


def _login(pkcs11: Any, token: Any, pin: Secret) -> Any:
    """A read-write user session; login is per process, so a second session of
    the same process finds the user logged in already and shares that login."""
    try:
        return token.open(user_pin=pin.reveal().decode("utf-8"), rw=True)
    except pkcs11.UserAlreadyLoggedIn:
        return token.open(rw=True)


def _public_key(public: Any) -> ec.EllipticCurvePublicKey:
    from pkcs11.util.ec import encode_ec_public_key  # noqa: PLC0415

    key = serialization.load_der_public_key(encode_ec_public_key(public))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise ConfigError("pkcs11", "the token's public key is not P-256")
    return key


class HsmToken:
    """One open session on a token, shared by the keys of a keyring.

    :meth:`key` finds a key pair by label, :meth:`generate` makes one,
    :meth:`destroy` deletes one; all take the token's lock.
    """

    def __init__(self, library: str, token_label: str, pin: Secret) -> None:
        self.library = library
        self.token_label = token_label
        self._pin = pin
        self._lock = threading.Lock()
        self._session: Any = None

    @classmethod
    def from_settings(
        cls, settings: HsmSettings, resolve: Callable[[str], Path]
    ) -> HsmToken:
        """The token of node.yaml's ``keyring.hsm``, its PIN from a file or variable.

        :raises ConfigError: the PIN file is unsafe or the variable unset.
        """
        file = resolve(settings.pin_file) if settings.pin_file else None
        pin = read_passphrase(settings.pin_env, file)
        return cls(settings.library, settings.token_label, pin)

    def open(self) -> HsmToken:
        """Open the session (once); return self.

        :raises ConfigError: as :func:`open_token`.
        """
        if self._session is not None:
            return self
        pkcs11 = _pkcs11()
        try:
            token = pkcs11.lib(self.library).get_token(token_label=self.token_label)
            self._session = _login(pkcs11, token, self._pin)
        except (pkcs11.PKCS11Error, RuntimeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                self.library, f"token {self.token_label!r} cannot be opened"
            ) from exc
        return self

    def close(self) -> None:
        """Close the session; the keys found through it stop signing."""
        session, self._session = self._session, None
        if session is not None:
            with self._lock:
                session.close()

    def key(self, kid: str, label: str) -> HsmKey:
        """The key pair ``label`` of the token, named ``kid``.

        :raises ConfigError: the token cannot be opened or has not exactly one such
            key pair.
        """
        with self._lock:
            found = HsmKey.find(self.open()._session, label)
        return found.with_kid(kid, self._lock)

    def generate(self, label: str) -> HsmKey:
        """Generate a non-extractable key pair labelled ``label`` in the token.

        :raises ConfigError: the token cannot be opened or refuses.
        """
        with self._lock:
            made = HsmKey.generate(self.open()._session, label)
        return made.with_kid(label, self._lock)

    def destroy(self, label: str) -> None:
        """Delete the key pair ``label`` from the token, if it is there.

        :raises ConfigError: the token cannot be opened or refuses.
        """
        pkcs11 = _pkcs11()
        session = self.open()._session
        with self._lock:
            try:
                for object_class in (
                    pkcs11.ObjectClass.PRIVATE_KEY,
                    pkcs11.ObjectClass.PUBLIC_KEY,
                ):
                    for found in session.get_objects(
                        {
                            pkcs11.Attribute.CLASS: object_class,
                            pkcs11.Attribute.LABEL: label,
                        }
                    ):
                        found.destroy()
            except pkcs11.PKCS11Error as exc:
                raise ConfigError(
                    "pkcs11", f"key {label!r} cannot be destroyed"
                ) from exc


def entry_key(token: HsmToken | None, entry: PublicKeyEntry, where: str) -> HsmKey:
    """The token key of a keyring entry that names an ``hsm_label``.

    :raises ConfigError: there is no token, the token does not hold the key, or it
        holds another public key under that label.
    """
    if token is None or entry.hsm_label is None:
        raise ConfigError(where, f"key {entry.kid} is in an HSM; configure keyring.hsm")
    found = token.key(entry.kid, entry.hsm_label)
    if public_raw(found.public_key()) != public_raw(entry.public_key):
        raise ConfigError(where, f"key {entry.kid}: the token holds another key")
    return found


def new_key(token: HsmToken | None, kid: str, algorithm: str, where: str) -> HsmKey:
    """A new key pair labelled ``kid`` in the token.

    :raises ConfigError: there is no token, the algorithm is not ECDSA P-256, or
        the token refuses.
    """
    if token is None:
        raise ConfigError(where, "no HSM token is configured (keyring.hsm)")
    if algorithm != ECDSA_P256:
        raise ConfigError(where, f"an HSM key must be {ECDSA_P256}")
    return token.generate(kid)
