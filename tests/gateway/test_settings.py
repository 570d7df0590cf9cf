"""node.yaml and directory.yaml as models: required keys, defaults and bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import (
    DirectoryFile,
    JwksUrlEntry,
    MemberEntry,
    NodeSettings,
    RedisSettings,
    ServiceEntry,
)

REQUIRED: dict[str, Any] = {
    "node_id": "WB/GOV/SED/mediator-1",
    "public_url": "https://mediator.wbsed.internal",
    "allowed_hosts": ["mediator.wbsed.internal"],
    "auth": {"audience": "https://mediator.wbsed.internal"},
}


def node(**sections: Any) -> NodeSettings:
    return NodeSettings.model_validate({**REQUIRED, **sections})


# -- node.yaml -----------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(REQUIRED))
def test_a_node_needs_its_identity_hosts_and_audience(key: str) -> None:
    values = {k: v for k, v in REQUIRED.items() if k != key}

    with pytest.raises(ValidationError, match=rf"{key}\n  Field required"):
        NodeSettings.model_validate(values)


def test_defaults_listen_on_loopback_and_name_secrets_by_variable() -> None:
    settings = node()

    assert (settings.listen.host, settings.listen.port) == ("127.0.0.1", 8080)
    assert settings.keyring.passphrase_env == "MEDIATOR_KEY_PASSPHRASE"
    assert settings.log.subject_hash_key_env == "MEDIATOR_SUBJECT_HASH_KEY"
    assert settings.redis.url is None
    assert settings.trusted_proxies == ()


@pytest.mark.parametrize(
    "sections",
    [
        {"node_idd": "x"},
        {"listen": {"prot": 8080}},
        {"keyring": {"passphrase": "correct horse"}},
        {"auth": {"audience": "a", "secret": "x"}},
        {"limits": {"max_body": 1}},
    ],
)
def test_an_unknown_key_is_refused_at_any_depth(sections: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        node(**sections)


@pytest.mark.parametrize(
    ("section", "values", "where"),
    [
        ("listen", {"port": 65536}, "listen.port"),
        ("listen", {"port": -1}, "listen.port"),
        ("keyring", {"lead_time_s": 30 * 86400 + 1}, "keyring.lead_time_s"),
        ("keyring", {"retired_verify_days": 0}, "keyring.retired_verify_days"),
        ("keyring", {"reload_interval_s": 0}, "keyring.reload_interval_s"),
        ("log", {"store": "mysql"}, "log.store"),
        ("log", {"group_commit_ms": 1001}, "log.group_commit_ms"),
        ("log", {"retention_days": 0}, "log.retention_days"),
        ("log", {"archive_period": "week"}, "log.archive_period"),
        ("redis", {"replay_check_interval_s": 0}, "redis.replay_check_interval_s"),
        ("limits", {"max_header_bytes": 1023}, "limits.max_header_bytes"),
        ("limits", {"max_authorization_bytes": 255}, "max_authorization_bytes"),
        ("limits", {"max_uri_bytes": 255}, "limits.max_uri_bytes"),
        ("limits", {"max_json_depth": 1001}, "limits.max_json_depth"),
        ("limits", {"header_timeout_s": 0}, "limits.header_timeout_s"),
        ("upstream", {"keepalive_s": 0}, "upstream.keepalive_s"),
        ("upstream", {"pool_size": 0}, "upstream.pool_size"),
        ("auth", {"audience": "a", "max_token_lifetime_s": 3601}, "auth.max_token"),
        ("auth", {"audience": "a", "leeway_s": 301}, "auth.leeway_s"),
        ("auth", {"audience": "a", "memory_replay_entries": 0}, "auth.memory_replay"),
        ("monitoring", {"queue_size": 0}, "monitoring.queue_size"),
        ("admin", {"health_cache_s": 61}, "admin.health_cache_s"),
    ],
)
def test_a_value_out_of_its_bounds_is_refused(
    section: str, values: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError, match=where):
        node(**{section: values})


@pytest.mark.parametrize("url", ["mediator.wbsed.internal", "ftp://mediator", ""])
def test_the_public_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        node(public_url=url)


@pytest.mark.parametrize(
    "proxies",
    [["10.0.0.5"], ["10.0.0.0/8", "fd00::/8"], ["10.0.0.5/24"]],
)
def test_trusted_proxies_are_addresses_or_networks(proxies: list[str]) -> None:
    assert node(trusted_proxies=proxies).trusted_proxies == tuple(proxies)


@pytest.mark.parametrize("proxy", ["proxy.internal", "10.0.0.0/33", "*", ""])
def test_a_trusted_proxy_that_is_no_address_is_refused(proxy: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        node(trusted_proxies=[proxy])


@pytest.mark.parametrize(
    ("values", "url", "replay_url"),
    [
        ({}, None, None),
        ({"url": "", "replay_url": ""}, None, None),
        ({"url": "redis://127.0.0.1:6379/0"}, "redis://127.0.0.1:6379/0", None),
    ],
)
def test_an_empty_redis_url_means_none(
    values: dict[str, str], url: str | None, replay_url: str | None
) -> None:
    """``${MEDIATOR_REDIS_URL:-}`` expands to "" when no Redis is configured."""
    redis = RedisSettings.model_validate(values)

    assert (redis.url, redis.replay_url) == (url, replay_url)


@pytest.mark.parametrize(
    ("relative", "resolved"),
    [
        ("keyring", Path("/var/node/keyring")),
        ("logs/messagelog.db", Path("/var/node/logs/messagelog.db")),
        ("/srv/keys", Path("/srv/keys")),
    ],
)
def test_relative_paths_are_taken_under_the_state_directory(
    relative: str, resolved: Path
) -> None:
    assert node().resolve(Path("/var/node"), relative) == resolved


def test_settings_cannot_be_changed_once_loaded() -> None:
    settings = node()

    with pytest.raises(ValidationError, match="frozen"):
        settings.listen.port = 1  # type: ignore[misc]


# -- directory.yaml ------------------------------------------------------------------


@pytest.mark.parametrize("member", ["WB/GOV", "WB/GOV/SED/extra", "WB"])
def test_a_member_id_must_have_three_parts(member: str) -> None:
    with pytest.raises(ValidationError, match="INSTANCE/CLASS/MEMBER"):
        MemberEntry(id=member)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"code": "students"}, "url"),
        ({"code": "students", "url": "registry"}, "url"),
        ({"code": "students", "url": "https://r", "timeout_s": 0}, "timeout_s"),
        ({"code": "students", "url": "https://r", "body_log": "full"}, "body_log"),
        ({"code": "students", "url": "https://r", "max_body_bytes": 0}, "max_body"),
    ],
)
def test_a_bad_service_entry_is_refused(values: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        ServiceEntry.model_validate(values)


def test_a_service_logs_only_digests_of_bodies_by_default() -> None:
    service = ServiceEntry.model_validate({"code": "s", "url": "https://r"})

    assert service.body_log == "digest"


@pytest.mark.parametrize(
    ("values", "where"),
    [({"timeout_s": 61}, "timeout_s"), ({"max_stale_s": 0}, "max_stale_s")],
)
def test_a_jwks_url_has_bounded_fetching(values: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=where):
        JwksUrlEntry.model_validate({"url": "https://dept/jwks.json", **values})


def test_a_directory_names_members_subsystems_and_services() -> None:
    directory = DirectoryFile.model_validate(
        {
            "instance": "WB",
            "members": [
                {
                    "id": "WB/GOV/SED",
                    "subsystems": [
                        {
                            "code": "registry",
                            "services": [{"code": "students", "url": "https://r"}],
                        }
                    ],
                }
            ],
        }
    )

    (member,) = directory.members
    assert member.subsystems[0].services[0].code == "students"
