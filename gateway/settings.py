"""Node settings (``node.yaml``) and the directory of members and services.

Both are frozen models validated by :mod:`gateway.yamlconf`. Relative paths in
``node.yaml`` are resolved against the node's state directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, HttpUrl, field_validator

from gateway.yamlconf import Strict


class ListenSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class KeyringSettings(Strict):
    #: Directory of the node's keyring (encrypted PKCS#8 files and their states).
    path: str = "keyring"
    #: Environment variable that holds the keyring passphrase; never the value.
    passphrase_env: str = "MEDIATOR_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
    #: Alternatively a file (mode 0600) that holds the passphrase.
    passphrase_file: str | None = None


class LogSettings(Strict):
    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str = "messagelog.db"
    postgres_dsn: str | None = None
    #: Longest time a record waits for its group commit.
    group_commit_ms: float = Field(2.0, gt=0, le=1000)
    group_commit_max: int = Field(256, ge=1, le=10000)
    checkpoint_interval_s: float = Field(5.0, gt=0, le=3600)
    #: Key for the keyed hash of student ids in records (env variable name).
    subject_hash_key_env: str = "MEDIATOR_SUBJECT_HASH_KEY"


class RedisSettings(Strict):
    #: ``redis://127.0.0.1:6379/0``; unset or empty means in-process equivalents.
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None


class LimitSettings(Strict):
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_authorization_bytes: int = Field(8 * 1024, ge=256)
    max_uri_bytes: int = Field(4096, ge=256)
    max_json_depth: int = Field(32, ge=1, le=1000)
    max_concurrent_per_client: int = Field(64, ge=1)
    #: Default rate limit per client and service, as the ``limits`` library writes it.
    default_rate: str = "200/second"


class UpstreamSettings(Strict):
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    pool_size: int = Field(100, ge=1)
    keepalive_s: float = Field(30.0, gt=0)


class AuthSettings(Strict):
    #: The ``aud`` every client assertion must carry (this node's identity).
    audience: str
    max_token_lifetime_s: int = Field(300, ge=1, le=3600)
    leeway_s: int = Field(60, ge=0, le=300)
    signature_max_age_s: int = Field(300, ge=1)


class NodeSettings(Strict):
    """The whole of ``node.yaml``."""

    #: The node's own name, printed in records and checkpoints.
    node_id: str
    #: The public base URL; every URL the node generates uses it.
    public_url: HttpUrl
    #: Host header values this node answers to (``host`` or ``host:port``).
    allowed_hosts: tuple[str, ...]
    state_dir: str = "../var/node"
    listen: ListenSettings = ListenSettings()
    auth: AuthSettings
    keyring: KeyringSettings = KeyringSettings()
    log: LogSettings = LogSettings()
    redis: RedisSettings = RedisSettings()
    limits: LimitSettings = LimitSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    consent_db: str = "consent.db"

    def resolve(self, state_dir: Path, relative: str) -> Path:
        """A path from these settings, relative ones taken under ``state_dir``."""
        path = Path(relative)
        return path if path.is_absolute() else state_dir / path


# -- the directory ------------------------------------------------------------------


class ServiceEntry(Strict):
    code: str
    title: str = ""
    #: The provider's base URL; the endpoint path is appended to it.
    url: HttpUrl
    timeout_s: float | None = Field(None, gt=0)
    #: ``digest``: only hashes of bodies are logged; ``encrypted``: bodies are kept
    #: encrypted for the security officers.
    body_log: Literal["digest", "encrypted"] = "digest"
    max_body_bytes: int | None = Field(None, ge=1)


class SubsystemEntry(Strict):
    code: str
    title: str = ""
    #: A JWKS file (relative to the config directory) with the subsystem's public
    #: keys: client assertions are verified with them, and a provider that has keys
    #: must sign its responses.
    keys: str | None = None
    services: tuple[ServiceEntry, ...] = ()


class MemberEntry(Strict):
    #: ``INSTANCE/CLASS/MEMBER``
    id: str
    title: str = ""
    subsystems: tuple[SubsystemEntry, ...] = ()

    @field_validator("id")
    @classmethod
    def _three_parts(cls, value: str) -> str:
        if value.count("/") != 2:
            raise ValueError("member id must be INSTANCE/CLASS/MEMBER")
        return value


class DirectoryFile(Strict):
    """The whole of ``directory.yaml``."""

    instance: str
    members: tuple[MemberEntry, ...]
