"""Node metrics: labels bounded by verified facts, and the log and key gauges."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.keytypes import KeyState, PublicKeyEntry
from gateway.metrics import NodeMetrics, key_facts
from gateway.record import Decision, ExchangeRecord

KANYASHREE = "WB/GOV/WCD/kanyashree"
STUDENTS = "WB/GOV/SED/banglarshiksha/students"
DAY = 86400
NOW = 1_800_000_000


def _metrics() -> NodeMetrics:
    return NodeMetrics([KANYASHREE], [STUDENTS])


def _record(
    client_id: str | None = KANYASHREE, service_id: str | None = STUDENTS
) -> ExchangeRecord:
    record = ExchangeRecord(
        node_id="WB/GOV/SED/mediator-1", method="GET", path="/r1/x", peer=None
    )
    record.client_id, record.service_id = client_id, service_id
    record.decision, record.status = Decision.FORWARDED, 200
    return record


def _exchanges(metrics: NodeMetrics, client: str, service: str) -> float | None:
    return metrics.registry.get_sample_value(
        "mediator_exchanges_total",
        {
            "client": client,
            "service": service,
            "decision": "forwarded",
            "status": "200",
        },
    )


def _key(
    kid: str, state: KeyState, created: int, activate: int | None = None
) -> PublicKeyEntry:
    public = Ed25519PrivateKey.generate().public_key()
    return PublicKeyEntry(kid, "ed25519", public, state, created, activate_at=activate)


# -- labels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "label"),
    [(None, "anonymous"), (KANYASHREE, KANYASHREE), ("WB/GOV/XX/made-up", "other")],
)
def test_a_client_label_is_a_known_client_or_a_fixed_word(
    client_id: str | None, label: str
) -> None:
    """An unauthenticated or unknown client never becomes a label of its own."""
    assert _metrics().client_label(client_id) == label


@pytest.mark.parametrize(
    ("service_id", "label"),
    [
        (None, "none"),
        (STUDENTS, STUDENTS),
        ("WB/GOV/SED/banglarshiksha/teachers", "other"),
        ("WB/GOV/XX/made-up/listMethods", "listMethods"),
        ("WB/GOV/XX/made-up/allowedMethods", "allowedMethods"),
        ("WB/GOV/XX/made-up/getOpenAPI", "getOpenAPI"),
        ("WB/GOV/XX/made-up/listClients", "listClients"),
        ("listmethods", "other"),
        ("", "other"),
    ],
)
def test_a_service_label_is_a_directory_service_a_metaservice_or_other(
    service_id: str | None, label: str
) -> None:
    """A metaservice is labelled by its code alone, whatever provider was named."""
    assert _metrics().service_label(service_id) == label


def test_made_up_identifiers_share_one_series() -> None:
    """A caller who sends new ids each time adds to a count, not to the series."""
    metrics = _metrics()

    for n in range(30):
        metrics.observe(_record(f"WB/GOV/XX/c{n}", f"WB/GOV/XX/p{n}/s{n}"))

    assert _exchanges(metrics, "other", "other") == 30
    series = [
        sample
        for family in metrics.registry.collect()
        if family.name == "mediator_exchanges"
        for sample in family.samples
        if sample.name == "mediator_exchanges_total"
    ]
    assert len(series) == 1


# -- exchanges ------------------------------------------------------------------------


def test_an_exchange_is_counted_by_client_service_decision_and_status() -> None:
    """Each finished exchange adds one to its own series."""
    metrics = _metrics()

    metrics.observe(_record())
    metrics.observe(_record())

    assert _exchanges(metrics, KANYASHREE, STUDENTS) == 2


def test_step_times_are_observed_in_seconds_under_their_step() -> None:
    """The record's milliseconds become seconds in the step histogram."""
    metrics = _metrics()
    record = _record()
    record.durations_ms = {"frame": 2.0, "authenticate": 40.0}

    metrics.observe(record)
    metrics.observe(record)

    get = metrics.registry.get_sample_value
    frame = get("mediator_step_duration_seconds_sum", {"step": "frame"})
    assert frame == pytest.approx(0.004)
    assert get("mediator_step_duration_seconds_count", {"step": "authenticate"}) == 2
    assert get("mediator_exchange_duration_seconds_count") == 2


# -- the message log ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("available", "size", "sealed", "checkpoint", "expected"),
    [
        (True, 120, 100, NOW - 30.0, (1, 120, 20, 30)),
        (False, 120, 120, NOW - 0.5, (0, 120, 0, 0.5)),
        (True, 0, 0, None, (1, 0, 0, -1)),
        (True, 100, 140, NOW, (1, 100, 0, 0)),
    ],
    ids=["behind", "sealed-and-down", "no-checkpoint", "sealed-past-size"],
)
def test_the_log_gauges_show_availability_backlog_and_checkpoint_age(
    available: bool,
    size: int,
    sealed: int,
    checkpoint: float | None,
    expected: tuple[float, float, float, float],
) -> None:
    """The unsealed backlog is never negative; no checkpoint reads as -1."""
    metrics = _metrics()

    metrics.set_log(
        available=available,
        size=size,
        sealed_size=sealed,
        checkpoint_ts=checkpoint,
        now=NOW,
    )

    get = metrics.registry.get_sample_value
    assert (
        get("mediator_log_available"),
        get("mediator_log_records"),
        get("mediator_log_unsealed_records"),
        get("mediator_log_checkpoint_age_seconds"),
    ) == expected


# -- keys -----------------------------------------------------------------------------


def test_a_key_expires_its_lifetime_after_it_starts_signing() -> None:
    """Expiry counts from activation when there is one, else from creation."""
    keys = {
        "b-pending": _key("b-pending", KeyState.PENDING, NOW - DAY, NOW + 2 * DAY),
        "a-active": _key("a-active", KeyState.ACTIVE, NOW - 10 * DAY),
    }

    facts = key_facts(keys, 365, NOW)

    assert [(f["kid"], f["age_days"], f["days_to_expiry"]) for f in facts] == [
        ("a-active", 10.0, 355.0),
        ("b-pending", 1.0, 367.0),
    ]


def test_a_revoked_key_has_no_facts() -> None:
    """A revoked key is not reported, so no one plans a rotation around it."""
    keys = {
        "old": _key("old", KeyState.REVOKED, NOW - 400 * DAY),
        "new": _key("new", KeyState.ACTIVE, NOW - DAY),
    }

    assert [f["kid"] for f in key_facts(keys, 365, NOW)] == ["new"]


def test_key_facts_are_public_facts_only() -> None:
    """The facts name the key and its times; no key material is in them."""
    (facts,) = key_facts({"k": _key("k", KeyState.ACTIVE, NOW)}, 365, NOW)

    assert set(facts) == {
        "kid",
        "algorithm",
        "state",
        "created_at",
        "activate_at",
        "retired_at",
        "age_days",
        "days_to_expiry",
    }


def test_an_overdue_key_has_negative_days_to_expiry() -> None:
    """A key past its lifetime shows how far past, rounded to hundredths."""
    (facts,) = key_facts(
        {"k": _key("k", KeyState.ACTIVE, NOW - 400 * DAY - DAY // 3)}, 365, NOW
    )

    assert facts["days_to_expiry"] == -35.33


def test_a_key_gone_from_the_keyring_leaves_the_key_gauges() -> None:
    """Each scrape shows the keys as they are now, not every key ever seen."""
    metrics = _metrics()
    metrics.set_keys({"old": _key("old", KeyState.ACTIVE, NOW - DAY)}, 365, NOW)

    metrics.set_keys({"new": _key("new", KeyState.ACTIVE, NOW)}, 365, NOW)

    get = metrics.registry.get_sample_value
    assert get("mediator_key_age_days", {"kid": "old", "state": "active"}) is None
    assert get("mediator_key_days_to_expiry", {"kid": "new", "state": "active"}) == 365


def test_the_rendered_page_is_the_prometheus_text_format() -> None:
    """A scrape reads every metric of this node and nothing of another registry."""
    metrics = _metrics()
    metrics.observe(_record())
    other = _metrics()

    page = metrics.render().decode()

    assert "# TYPE mediator_exchanges_total counter" in page
    assert "mediator_maintenance 0.0" in page
    assert "python_gc" not in page
    assert "mediator_exchanges_total{" not in other.render().decode()
