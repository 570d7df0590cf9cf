"""Node settings (``node.yaml``) and the directory of members and services.

Both are frozen models validated by :mod:`gateway.yamlconf`. Relative paths in
``node.yaml`` are resolved against the node's state directory.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from gateway.yamlconf import Strict


class ListenSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class HsmSettings(Strict):
    #: Path of the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so).
    library: str
    #: Label of the token that holds the keys.
    token_label: str
    #: Environment variable that holds the user PIN; never the value.
    pin_env: str = "MEDIATOR_HSM_PIN"
    #: Alternatively a file (mode 0600) that holds the PIN.
    pin_file: str | None = None


class KeyringSettings(Strict):
    #: Directory of the node's keyring (encrypted PKCS#8 files and their states).
    path: str = "keyring"
    #: Environment variable that holds the keyring passphrase; never the value.
    passphrase_env: str = "MEDIATOR_KEY_PASSPHRASE"  # noqa: S105 (a variable name)
    #: Alternatively a file (mode 0600) that holds the passphrase.
    passphrase_file: str | None = None
    #: Seconds a rotated key is published before it signs (``keys rotate``).
    lead_time_s: int = Field(600, ge=0, le=30 * 86400)
    #: Days a retired key keeps verifying what it signed.
    retired_verify_days: int = Field(400, ge=1)
    #: Seconds between re-reads of keyring.json (the fallback to Redis notices).
    reload_interval_s: float = Field(5.0, gt=0, le=300)
    #: Redis channel on which keyring changes are announced to every node.
    notify_channel: str = "mediator:keyring"
    #: A PKCS#11 token for keys whose private half is in an HSM (``keys --hsm``).
    hsm: HsmSettings | None = None


class LogSettings(Strict):
    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: str = "messagelog.db"
    postgres_dsn: str | None = None
    #: Longest time a record waits for its group commit.
    #: An extra wait for more records before each commit; 0 commits as soon as the
    #: writer is free (records arriving meanwhile form the next batch).
    group_commit_ms: float = Field(0.0, ge=0, le=1000)
    group_commit_max: int = Field(256, ge=1, le=10000)
    checkpoint_interval_s: float = Field(5.0, gt=0, le=3600)
    #: Key for the keyed hash of student ids in records (env variable name).
    subject_hash_key_env: str = "MEDIATOR_SUBJECT_HASH_KEY"
    #: The security officers' X25519 public keys (``*.pem``), needed when a
    #: service logs its bodies encrypted.
    officer_keys_dir: str = "officers"
    #: Records older than this many days may move to archive files (``mediator log
    #: archive``); unset, every record stays in the database.
    retention_days: int | None = Field(None, ge=1, le=36500)
    #: The span of one archive file: a UTC month, or a UTC day.
    archive_period: Literal["month", "day"] = "month"


class RedisSettings(Strict):
    #: ``redis://127.0.0.1:6379/0``; unset or empty means in-process equivalents.
    url: str | None = None
    #: A separate Redis for replay keys (C33), with ``maxmemory-policy noeviction``;
    #: required when ``url``'s instance may evict keys.
    replay_url: str | None = None
    #: Seconds between checks, while the node runs, that the replay Redis still
    #: cannot evict keys (its policy, and its count of evicted keys).
    replay_check_interval_s: float = Field(5.0, gt=0, le=300)

    @field_validator("url", "replay_url")
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
    #: Time for the request line and headers of one request, from its first byte
    #: (and for the first byte of a new connection).
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    #: Time for a request body; a body still arriving at this rate or faster
    #: (bytes per second, averaged) may take longer.
    body_timeout_s: float = Field(30.0, gt=0, le=3600)
    body_min_rate: int = Field(1024, ge=1)
    #: Open connections one peer address may hold at once.
    max_connections_per_peer: int = Field(64, ge=1)
    #: Default rate limit per client and service, as the ``limits`` library writes it.
    default_rate: str = "200/second"


class UpstreamSettings(Strict):
    connect_timeout_s: float = Field(2.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    pool_size: int = Field(100, ge=1)
    #: How long an idle pooled connection is kept. It must be shorter than the
    #: provider's own keep-alive (uvicorn's is 5 s), or the node reuses sockets the
    #: provider has already closed and a POST, which is never retried, fails.
    keepalive_s: float = Field(4.0, gt=0)


class AuthSettings(Strict):
    #: The ``aud`` every client assertion must carry (this node's identity).
    audience: str
    max_token_lifetime_s: int = Field(300, ge=1, le=3600)
    leeway_s: int = Field(60, ge=0, le=300)
    signature_max_age_s: int = Field(300, ge=1)
    #: Live assertions the in-process replay cache holds (no Redis): when full,
    #: new ones are refused (fail closed). About 140 bytes each; a node at
    #: 1,000 exchanges/s with 300-s assertions holds some 300,000.
    memory_replay_entries: int = Field(1_000_000, ge=1, le=50_000_000)


class MonitoringSettings(Strict):
    #: Operational monitoring records (SQLite, under the state directory).
    sqlite_path: str = "opmonitoring.db"
    #: Days a record is kept; older ones are deleted by the writer.
    retention_days: int = Field(14, ge=1, le=3650)
    #: Records waiting for the batch writer; when full, new ones are dropped (counted).
    queue_size: int = Field(10000, ge=1, le=1_000_000)
    #: The writer stores queued records at most this often, or sooner when a batch
    #: is full; queries see a record up to this late. 0: as soon as it is free.
    write_interval_ms: float = Field(250.0, ge=0, le=60_000)
    #: Keys are expected to be rotated this many days after they start signing.
    key_lifetime_days: int = Field(365, ge=1, le=3650)


class AdminSettings(Strict):
    #: Admins and their public keys (relative to the config directory).
    admins_file: str = "admins.yaml"
    #: Hashes of admin API keys (under the state directory).
    api_keys_file: str = "admin_keys.json"
    #: Requests per admin identity, in the ``limits`` notation.
    rate: str = "120/minute"
    #: Seconds a health result is reused before the checks run again.
    health_cache_s: float = Field(1.5, ge=0, le=60)


class ConsentStoreSettings(Strict):
    """Where consent records live: this node's SQLite file (``consent_db``), or a
    PostgreSQL database that several nodes share."""

    store: Literal["sqlite", "postgres"] = "sqlite"
    postgres_dsn: str | None = None
    #: A schema of its own for the consent tables (a plain lower-case SQL name).
    postgres_schema: str | None = Field(None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> ConsentStoreSettings:
        if self.store == "postgres" and not self.postgres_dsn:
            raise ValueError("store postgres needs postgres_dsn")
        return self


class NodeSettings(Strict):
    """The whole of ``node.yaml``."""

    #: The node's own name, printed in records and checkpoints.
    node_id: str
    #: The public base URL; every URL the node generates uses it.
    public_url: HttpUrl
    #: Host header values this node answers to (``host`` or ``host:port``).
    allowed_hosts: tuple[str, ...]
    #: Proxies (addresses or CIDR networks) whose X-Forwarded-For is believed (C14).
    trusted_proxies: tuple[str, ...] = ()
    state_dir: str = "../var/node"
    listen: ListenSettings = ListenSettings()
    auth: AuthSettings
    keyring: KeyringSettings = KeyringSettings()
    log: LogSettings = LogSettings()
    redis: RedisSettings = RedisSettings()
    limits: LimitSettings = LimitSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    consent_db: str = "consent.db"
    consent_store: ConsentStoreSettings = ConsentStoreSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    admin: AdminSettings = AdminSettings()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError if not
        return value

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
    #: The service's OpenAPI document (JSON, relative to the config directory).
    openapi: str | None = None


class JwksUrlEntry(Strict):
    """A JWKS the node fetches itself; only this URL is ever fetched (C34)."""

    url: HttpUrl
    #: Seconds a fetched set is used before it is fetched again.
    ttl_s: float = Field(3600, gt=0)
    #: Least seconds between two fetches (an unknown kid asks for one).
    cooldown_s: float = Field(30, ge=0)
    #: Seconds the last good set is used while the endpoint fails; then fail closed.
    max_stale_s: float = Field(86_400, gt=0)
    timeout_s: float = Field(5, gt=0, le=60)


class SubsystemEntry(Strict):
    code: str
    title: str = ""
    #: A JWKS file (relative to the config directory) with the subsystem's public
    #: keys: client assertions are verified with them, and a provider that has keys
    #: must sign its responses.
    keys: str | None = None
    #: Public keys given here as JWKs (each with ``kid`` and ``alg``).
    keys_inline: tuple[dict[str, Any], ...] = ()
    #: A JWKS URL the subsystem publishes, so it rotates without the operators.
    keys_url: JwksUrlEntry | None = None
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
