"""Operational monitoring records: their form, the bounded queue and retention."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.monitoring import OpMonitor, OpQuery, op_record
from gateway.record import Decision, ExchangeRecord

pytestmark = pytest.mark.anyio


def _record(**values: object) -> ExchangeRecord:
    record = ExchangeRecord(
        node_id="WB/GOV/SED/mediator-1",
        method="GET",
        path="/r1/WB/GOV/SED/banglarshiksha/students/applicants/123456789012",
        peer="127.0.0.1",
    )
    for name, value in values.items():
        setattr(record, name, value)
    return record


def test_a_monitoring_record_has_no_path_query_or_peer() -> None:
    found = op_record(
        _record(client_id="WB/GOV/WCD/kanyashree", status=200, user_id="officer-17")
    )

    assert found["user_id"] == "officer-17"
    assert "path" not in found
    assert "peer" not in found
    assert "123456789012" not in str(found)


@pytest.mark.parametrize(
    ("decision", "status", "succeeded", "fault"),
    [
        (Decision.FORWARDED, 200, True, None),
        (Decision.FORWARDED, 503, False, None),
        (Decision.SERVED, 200, True, None),
        (Decision.DENIED, 403, False, "no_matching_rule"),
    ],
)
def test_success_and_fault_code_follow_the_decision(
    decision: Decision, status: int, succeeded: bool, fault: str | None
) -> None:
    found = op_record(
        _record(decision=decision, status=status, reason="no_matching_rule")
    )

    assert (found["succeeded"], found["fault_code"]) == (succeeded, fault)


async def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=2)

    for _ in range(5):
        monitor.observe(_record())

    assert (monitor.queued, monitor.dropped) == (2, 3)


async def test_records_older_than_the_retention_are_deleted(tmp_path: Path) -> None:
    monitor = OpMonitor(tmp_path / "op.db", retention_days=1, queue_size=10)
    await monitor.start()
    try:
        monitor.observe(_record(started=time.time() - 3 * 86400))
        monitor.observe(_record())
        await monitor.flush()
        monitor.prune()
        page = await monitor.query(OpQuery(since=0, until=time.time() + 1))
    finally:
        await monitor.close()

    assert [r["request_in_ts"] > time.time() - 60 for r in page.records] == [True]
