"""Who is calling the admin API: an admin (JWT or API key) or a departmental client.

Three credentials are accepted, all in ``Authorization``:

- ``Bearer <JWT>`` signed by a key of an admin listed in ``admins.yaml``; the
  token's ``iss`` and ``sub`` are the admin id, ``aud`` is the node's audience
  followed by ``/admin``, and it carries ``iat`` and ``exp`` no further apart than
  client assertions may be;
- ``ApiKey <key>``: the SHA-256 of the key must equal a stored hash; every stored
  hash is compared in constant time, so timing says nothing about which one was
  close;
- ``Bearer <client assertion>`` with ``X-Road-Client``, as for an exchange: the
  caller is a departmental client with the role ``client`` (it sees only its own
  monitoring records).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import jwt
from jwt.exceptions import InvalidTokenError
from pydantic import Field

from gateway import wire
from gateway.auth import ClientAuthenticator
from gateway.directory import RegisteredKey, load_jwks, parse_jwks
from gateway.errors import AuthenticationError, ConfigError, Reason
from gateway.framing import Headers
from gateway.privatefiles import create_private_folder
from gateway.yamlconf import Strict, load_model

API_KEY_PREFIX: Final = "mak_"
_MAX_CREDENTIAL: Final = 8192


class Role(StrEnum):
    OPS = "ops"
    SECURITY_OFFICER = "security_officer"
    INTEGRATOR = "integrator"
    #: A departmental client authenticated with its assertion (not an admin role).
    CLIENT = "client"


ADMIN_ROLES: Final = frozenset({Role.OPS, Role.SECURITY_OFFICER, Role.INTEGRATOR})


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller: ``id`` is an admin id, key id or client id."""

    id: str
    role: Role
    via: str

    @property
    def actor(self) -> str:
        """The name written in the audit log."""
        return f"{self.via}:{self.id}"


class AdminEntry(Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.@-]*$")
    role: Role
    #: One public JWK, inline.
    jwk: dict[str, Any] | None = None
    #: Or a JWKS file (relative to the config directory).
    jwks: str | None = None


class AdminsFile(Strict):
    """The whole of ``admins.yaml``."""

    admins: tuple[AdminEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class _Admin:
    id: str
    role: Role
    keys: dict[str, RegisteredKey]


def load_admins(path: Path) -> dict[str, _Admin]:
    """Admins and their public keys; a missing file means no JWT admins.

    :raises ConfigError: a malformed file, an admin without exactly one of
        ``jwk``/``jwks``, a client role, an id listed twice or an unusable key.
    """
    if not path.exists():
        return {}
    data = load_model(path, AdminsFile)
    admins: dict[str, _Admin] = {}
    for entry in data.admins:
        if entry.role is Role.CLIENT:
            raise ConfigError(
                str(path), f"admin {entry.id!r}: role must be an admin role"
            )
        if (entry.jwk is None) == (entry.jwks is None):
            raise ConfigError(str(path), f"admin {entry.id!r}: give one of jwk, jwks")
        if entry.id in admins:
            raise ConfigError(str(path), f"admin {entry.id!r} is listed twice")
        keys = (
            parse_jwks({"keys": [entry.jwk]}, str(path))
            if entry.jwk is not None
            else load_jwks(path.parent / str(entry.jwks))
        )
        admins[entry.id] = _Admin(entry.id, entry.role, keys)
    return admins


# -- API keys ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredKey:
    id: str
    role: Role
    sha256: str
    created_at: int


def new_api_key() -> tuple[str, str]:
    """A fresh random key and its id; only the key's hash is ever stored."""
    key_id = f"key-{secrets.token_hex(4)}"
    return key_id, f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_keys(path: Path) -> list[StoredKey]:
    """Stored API key hashes; a missing file is none.

    :raises ConfigError: the file is not a list of key records.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "not a readable API key file") from exc
    try:
        return [
            StoredKey(
                str(k["id"]), Role(k["role"]), str(k["sha256"]), int(k["created_at"])
            )
            for k in document["keys"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(str(path), "an API key record is malformed") from exc


def add_key(
    path: Path, role: Role, *, before_store: Callable[[StoredKey], None] | None = None
) -> tuple[StoredKey, str]:
    """Create a key for ``role``, store its hash (file mode 0600); return both.

    ``before_store`` (the audit entry) is called with the new record before it is
    stored: if it raises, nothing is stored, so no key works without its entry.

    :raises ConfigError: the role is not an admin role or the file is unusable.
    """
    if role not in ADMIN_ROLES:
        raise ConfigError(str(path), f"role {role!r} is not an admin role")
    keys = read_keys(path)
    key_id, key = new_api_key()
    stored = StoredKey(key_id, role, key_hash(key), int(time.time()))
    if before_store is not None:
        before_store(stored)
    keys.append(stored)
    document = {"keys": [_key_json(k) for k in keys]}
    create_private_folder(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    tmp.replace(path)
    return stored, key


def _key_json(key: StoredKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "role": key.role.value,
        "sha256": key.sha256,
        "created_at": key.created_at,
    }


def match_key(presented: str, keys: list[StoredKey]) -> StoredKey | None:
    """The stored key whose hash is the presented key's; every hash is compared."""
    digest = key_hash(presented).encode()
    found: StoredKey | None = None
    for stored in keys:
        if hmac.compare_digest(digest, stored.sha256.encode()) and found is None:
            found = stored
    return found


# -- the authenticator -----------------------------------------------------------------


class AdminAuthenticator:
    """Turns an ``Authorization`` header into an :class:`Identity`."""

    def __init__(
        self,
        *,
        admins: dict[str, _Admin],
        keys_file: Path,
        audience: str,
        max_lifetime_s: int,
        leeway_s: int,
        clients: ClientAuthenticator,
    ) -> None:
        self._admins = admins
        self._keys_file = keys_file
        self._audience = f"{audience}/admin"
        self._max_lifetime = max_lifetime_s
        self._leeway = leeway_s
        self._clients = clients

    async def authenticate(self, headers: Headers) -> Identity:
        """The caller's identity.

        :raises AuthenticationError: no credential, or one that is not valid.
        :raises NodeError: the replay store failed (client assertions only).
        """
        authorization = headers.only(wire.AUTHORIZATION, Reason.INVALID_HEADER)
        if not authorization:
            raise AuthenticationError(Reason.MISSING_CREDENTIAL)
        if len(authorization) > _MAX_CREDENTIAL:
            raise AuthenticationError(Reason.INVALID_TOKEN, log_reason="too_large")
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "apikey":
            return self._api_key(credential.strip())
        if scheme.lower() != "bearer":
            raise AuthenticationError(Reason.INVALID_TOKEN, log_reason="bad_scheme")
        issuer = _unverified_issuer(credential.strip())
        admin = self._admins.get(issuer) if issuer is not None else None
        if admin is not None:
            return self._admin_jwt(credential.strip(), admin)
        return await self._client(authorization, headers)

    def _api_key(self, key: str) -> Identity:
        stored = match_key(key, read_keys(self._keys_file))
        if stored is None:
            raise AuthenticationError(
                Reason.INVALID_TOKEN, log_reason="unknown_api_key"
            )
        return Identity(stored.id, stored.role, "apikey")

    def _admin_jwt(self, token: str, admin: _Admin) -> Identity:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except InvalidTokenError as exc:
            raise AuthenticationError(
                Reason.INVALID_TOKEN, log_reason="bad_jwt"
            ) from exc
        key = admin.keys.get(kid) if isinstance(kid, str) else None
        if key is None and len(admin.keys) == 1 and kid is None:
            key = next(iter(admin.keys.values()))
        if key is None:
            raise AuthenticationError(Reason.INVALID_TOKEN, log_reason="unknown_kid")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=self._audience,
                issuer=admin.id,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except InvalidTokenError as exc:
            raise AuthenticationError(
                Reason.INVALID_TOKEN, log_reason="bad_jwt"
            ) from exc
        exp, iat = claims["exp"], claims["iat"]
        if (
            claims["sub"] != admin.id
            or not _is_numeric_date(exp)
            or not _is_numeric_date(iat)
            or exp - iat > self._max_lifetime
        ):
            raise AuthenticationError(Reason.INVALID_TOKEN, log_reason="bad_claims")
        return Identity(admin.id, admin.role, "jwt")

    async def _client(self, authorization: str, headers: Headers) -> Identity:
        verified = await self._clients.authenticate(authorization)
        claimed = headers.only(wire.XROAD_CLIENT, Reason.INVALID_HEADER)
        if claimed != str(verified.client_id):
            raise AuthenticationError(Reason.CLIENT_MISMATCH)
        return Identity(str(verified.client_id), Role.CLIENT, "client")


def _is_numeric_date(value: object) -> bool:
    """A NumericDate is a JSON number (RFC 7519 section 2); PyJWT also passes a
    numeric string, which must not reach the lifetime arithmetic."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _unverified_issuer(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except InvalidTokenError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None
