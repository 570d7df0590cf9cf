"""What runs around a node's exchanges: the maintenance switch, metaservices,
shared client authentication, and one observation per exchange."""

from __future__ import annotations

import dataclasses
import time

import pytest

from gateway.errors import AuthenticationError, NodeError
from gateway.operations import Maintenance, Operations
from gateway.record import Decision, ExchangeRecord
from tests.gateway.conftest import KANYASHREE, Harness

# -- the maintenance switch -----------------------------------------------------------


def test_turning_maintenance_on_records_who_and_when() -> None:
    """The switch says since when and by whom it is on."""
    switch = Maintenance()
    before = time.time()

    switch.set(True, "ops:anita")

    assert (switch.on, switch.by) == (True, "ops:anita")
    assert switch.since is not None
    assert before <= switch.since <= time.time()


def test_turning_maintenance_off_forgets_who_and_when() -> None:
    """Once off, nothing of the last maintenance is shown as if it still held."""
    switch = Maintenance()
    switch.set(True, "ops:anita")

    switch.set(False, "ops:bikram")

    assert (switch.on, switch.since, switch.by) == (False, None, None)


def test_the_switch_leaves_exchanges_in_flight_counted() -> None:
    """Exchanges already running are not forgotten when the switch moves."""
    switch = Maintenance(in_flight=3)

    switch.set(True, "ops:anita")

    assert switch.to_json() == {
        "maintenance": True,
        "since": switch.since,
        "by": "ops:anita",
        "in_flight": 3,
    }


# -- a node's operations --------------------------------------------------------------


@pytest.mark.anyio
async def test_metaservices_are_built_once_per_deployment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Repeated calls share one object until the node's deployment is replaced."""
    ops = harness.node.ops
    first = ops.metaservices()
    assert ops.metaservices() is first

    reloaded = dataclasses.replace(harness.node.deployment)
    monkeypatch.setattr(harness.node, "deployment", reloaded)

    assert ops.metaservices() is not first


@pytest.mark.anyio
async def test_client_authenticators_share_the_nodes_replay_cache(
    harness: Harness,
) -> None:
    """An assertion spent through one authenticator is a replay for another,
    so the metaservices and the admin API cannot be used to replay a token."""
    ops = harness.node.ops
    bearer = f"Bearer {harness.client(KANYASHREE).assertion()}"
    await ops.client_authenticator().authenticate(bearer)

    with pytest.raises(AuthenticationError, match="token_replayed"):
        await ops.client_authenticator().authenticate(bearer)


@pytest.mark.anyio
async def test_an_exchange_is_counted_and_stored_once(harness: Harness) -> None:
    """One observation adds one to the metrics and one monitoring record."""
    ops = harness.node.ops
    record = ExchangeRecord(
        node_id="n", method="GET", path="/r1/x", peer="127.0.0.1", status=200
    )
    record.client_id, record.decision = str(KANYASHREE), Decision.DENIED
    labels = {
        "client": str(KANYASHREE),
        "service": "none",
        "decision": "denied",
        "status": "200",
    }
    written = ops.monitor.written

    ops.observe(record)
    await ops.monitor.flush()

    counted = ops.metrics.registry.get_sample_value("mediator_exchanges_total", labels)
    assert (counted, ops.monitor.written) == (1, written + 1)


@pytest.mark.anyio
async def test_a_monitoring_store_that_cannot_open_stops_the_start(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that cannot keep its monitoring records does not start serving."""
    node = harness.node
    blocker = harness.demo.state_dir / "not-a-directory"
    blocker.write_text("")
    settings = node.deployment.settings
    monitoring = settings.monitoring.model_copy(
        update={"sqlite_path": str(blocker / "opmon.db")}
    )
    changed = settings.model_copy(update={"monitoring": monitoring})
    monkeypatch.setattr(
        node, "deployment", dataclasses.replace(node.deployment, settings=changed)
    )
    ops = Operations(node)

    try:
        with pytest.raises(NodeError, match="log_unavailable"):
            await ops.start()
    finally:
        await ops.close()
