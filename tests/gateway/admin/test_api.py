"""The operations endpoints, called directly: their inputs, bounds and audit notes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from gateway.admin import api
from gateway.admin.auth import Identity, Role
from gateway.admin.framework import PREFIX, change_of
from gateway.errors import FramingError, PayloadError, ResolutionError
from gateway.keytypes import KeyState, PublicKeyEntry
from gateway.monitoring import OpPage, OpQuery
from gateway.msglog import officer
from gateway.msglog.store import SearchQuery, StoredRecord
from gateway.node import Node
from gateway.operations import Maintenance
from tests.gateway.admin.support import OPS, admin_request

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
NODE_ID = "WB/GOV/SED/mediator-1"
KANYASHREE = "WB/GOV/WCD/kanyashree"
CLIENT = Identity(KANYASHREE, Role.CLIENT, "client")
OFFICER = Identity("alice", Role.SECURITY_OFFICER, "jwt")


class _Gauge:
    def __init__(self) -> None:
        self.values: list[float] = []

    def set(self, value: float) -> None:
        self.values.append(value)


class _Monitor:
    """Operational monitoring that records what it was asked."""

    def __init__(self) -> None:
        self.queries: list[OpQuery] = []
        self.calls: list[str] = []
        self.windows: list[tuple[float, float]] = []

    async def query(self, query: OpQuery) -> OpPage:
        self.queries.append(query)
        return OpPage([{"id": 7}], 7)

    async def flush(self) -> None:
        self.calls.append("flush")

    async def summary(self, since: float, until: float) -> dict[str, Any]:
        self.calls.append("summary")
        self.windows.append((since, until))
        return {"exchanges": 0}


def _entry(kid: str, state: KeyState, revoked_at: int | None = None) -> Any:
    return PublicKeyEntry(
        kid, "EdDSA", cast(Any, object()), state, 1_700_000_000, revoked_at=revoked_at
    )


def _node(tmp_path: Path) -> Any:
    """A node with the parts the operations endpoints read."""
    settings = SimpleNamespace(
        node_id=NODE_ID,
        log=SimpleNamespace(sqlite_path="messagelog.db"),
        monitoring=SimpleNamespace(key_lifetime_days=365),
    )
    return SimpleNamespace(
        ops=SimpleNamespace(
            maintenance=Maintenance(),
            metrics=SimpleNamespace(maintenance=_Gauge()),
            monitor=_Monitor(),
        ),
        deployment=SimpleNamespace(
            settings=settings, path=lambda relative: tmp_path / relative
        ),
        log=SimpleNamespace(size=3),
        keyring=SimpleNamespace(
            public_keys=lambda: {"k1": _entry("k1", KeyState.ACTIVE)}
        ),
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The endpoints' wall clock, stopped at NOW."""
    monkeypatch.setattr(api, "time", SimpleNamespace(time=lambda: NOW))
    return NOW


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[SearchQuery]:
    """The message-log searches made, on a store that holds one record."""
    made: list[SearchQuery] = []

    class _Store:
        async def search(self, query: SearchQuery) -> list[StoredRecord]:
            made.append(query)
            canonical = orjson.dumps({"message_id": "m-1", "decision": "forwarded"})
            return [StoredRecord(4, "ab" * 32, b"", canonical)]

    @asynccontextmanager
    async def reading_store(*_args: object) -> AsyncIterator[_Store]:
        yield _Store()

    monkeypatch.setattr(api, "reading_store", reading_store)
    return made


async def _json(response: Any) -> Any:
    return orjson.loads(response.body)


def _route(method: str, suffix: str) -> Any:
    [route] = [
        r for r in api.routes() if (r.method, r.path) == (method, f"{PREFIX}{suffix}")
    ]
    return route


def _as_node(node: Any) -> Node:
    return cast(Node, node)


# -- maintenance -----------------------------------------------------------------------


async def test_turning_maintenance_on_names_the_caller_and_notes_the_change(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path)
    request = admin_request("POST", body=b'{"maintenance": true}')

    response = await api.set_maintenance(request, _as_node(node))

    state = await _json(response)
    assert (state["maintenance"], state["by"]) == (True, OPS.actor)
    assert node.ops.metrics.maintenance.values == [1]
    noted = change_of(request.scope, _route("POST", "/maintenance"), {})
    assert noted == ("maintenance.set", NODE_ID, {"maintenance": True})


async def test_turning_maintenance_off_forgets_who_turned_it_on(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path)
    node.ops.maintenance.set(True, "apikey:key-1")

    response = await api.set_maintenance(
        admin_request("POST", body=b'{"maintenance": false}'), _as_node(node)
    )

    assert (await _json(response))["by"] is None
    assert node.ops.metrics.maintenance.values == [0]


@pytest.mark.parametrize(
    "body",
    [b'{"maintenance": "true"}', b'{"maintenance": 1}', b"{}", b"[true]", b"null"],
)
async def test_maintenance_takes_a_boolean_only(tmp_path: Path, body: bytes) -> None:
    node = _node(tmp_path)

    with pytest.raises(PayloadError, match="schema_violation") as caught:
        await api.set_maintenance(admin_request("POST", body=body), _as_node(node))

    assert caught.value.pointer == "/maintenance"
    assert node.ops.maintenance.on is False


async def test_a_maintenance_body_of_4096_bytes_is_read(tmp_path: Path) -> None:
    body = b'{"maintenance": true}'.ljust(4096)

    response = await api.set_maintenance(
        admin_request("POST", body=body), _as_node(_node(tmp_path))
    )

    assert (await _json(response))["maintenance"] is True


async def test_a_maintenance_body_over_4096_bytes_is_refused(tmp_path: Path) -> None:
    """413, as for any body over its cap: not a schema question."""
    body = b'{"maintenance": true}'.ljust(4097)

    with pytest.raises(FramingError, match="body_too_large") as caught:
        await api.set_maintenance(
            admin_request("POST", body=body), _as_node(_node(tmp_path))
        )

    assert caught.value.log_reason == "admin_body_too_large"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"maintenance=true", "application/json", "invalid_json"),
        (
            b'{"maintenance": true, "maintenance": false}',
            "application/json",
            "duplicate_key",
        ),
        (
            b'{"maintenance": true}',
            "application/json; charset=latin-1",
            "unsupported_media_type",
        ),
        (b'{"maintenance": true}', "text/plain", "unsupported_media_type"),
        (b'{"maintenance": true}', None, "unsupported_media_type"),
        (b'{"maintenance": true, "until": 5}', "application/json", "schema_violation"),
    ],
)
async def test_a_maintenance_body_is_strict_json(
    tmp_path: Path, body: bytes, content_type: str | None, reason: str
) -> None:
    """Parsed as every body is: JSON by its media type, no repeated key, UTF-8
    only, and no field but ``maintenance``."""
    request = admin_request("POST", body=body, content_type=content_type)

    with pytest.raises(PayloadError, match=reason):
        await api.set_maintenance(request, _as_node(_node(tmp_path)))


# -- operational monitoring ------------------------------------------------------------


@pytest.mark.usefixtures("clock")
async def test_monitoring_defaults_to_the_last_day_one_page_from_the_start(
    tmp_path: Path,
) -> None:
    node = _node(tmp_path)

    response = await api.opmonitoring(admin_request(), _as_node(node))

    assert node.ops.monitor.queries == [
        OpQuery(since=NOW - 86400, until=NOW + 1, client_id=None, after_id=0, limit=100)
    ]
    assert await _json(response) == {"records": [{"id": 7}], "next_after": 7}


@pytest.mark.parametrize(
    ("identity", "query", "client_id"),
    [
        (OPS, f"client_id={KANYASHREE}", KANYASHREE),
        (OFFICER, "", None),
        (CLIENT, "client_id=WB/GOV/BCW/saboojsathi", KANYASHREE),
        (CLIENT, "", KANYASHREE),
    ],
)
async def test_a_client_sees_its_own_records_whatever_it_asks(
    tmp_path: Path, identity: Identity, query: str, client_id: str | None
) -> None:
    """An admin may filter by client; a client's filter is always itself."""
    node = _node(tmp_path)

    await api.opmonitoring(
        admin_request(query=query, identity=identity), _as_node(node)
    )

    assert node.ops.monitor.queries[0].client_id == client_id


@pytest.mark.parametrize(
    ("query", "after", "limit"),
    [
        ("since=10&until=20.5&after=3&limit=1", 3, 1),
        ("limit=1000", 0, 1000),
        ("after=9007199254740993", 2**53 + 1, 100),
        ("after=9223372036854775807", 2**63 - 1, 100),
    ],
)
async def test_a_monitoring_page_is_read_from_the_query(
    tmp_path: Path, query: str, after: int, limit: int
) -> None:
    node = _node(tmp_path)

    await api.opmonitoring(admin_request(query=query), _as_node(node))

    [asked] = node.ops.monitor.queries
    assert (asked.after_id, asked.limit) == (after, limit)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=-5", "limit=0.5"])
async def test_a_monitoring_page_out_of_bounds_is_refused(
    tmp_path: Path, query: str
) -> None:
    """At least one and at most 1000 records, after a record id that can exist."""
    node = _node(tmp_path)

    with pytest.raises(ResolutionError, match="invalid_query") as caught:
        await api.opmonitoring(admin_request(query=query), _as_node(node))

    assert caught.value.log_reason == "bad_page"
    assert node.ops.monitor.queries == []


@pytest.mark.parametrize(
    "after", ["9223372036854775808", "1e19", "1e300", "-1", "3.0", "0x10", "", " 1"]
)
async def test_a_monitoring_page_after_an_id_no_store_can_hold_is_refused(
    tmp_path: Path, after: str
) -> None:
    """Record ids are SQLite integers, below 2**63, written in decimal digits; a
    larger one is the caller's mistake, not an overflow in the store."""
    node = _node(tmp_path)

    with pytest.raises(ResolutionError, match="invalid_query") as caught:
        await api.opmonitoring(admin_request(query=f"after={after}"), _as_node(node))

    assert caught.value.log_reason == "bad_whole_number"
    assert node.ops.monitor.queries == []


# -- the message log -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            f"client_id={KANYASHREE}&decision=denied&until=99.5&limit=7",
            SearchQuery(client_id=KANYASHREE, decision="denied", until=99.5, limit=7),
        ),
        (
            "service_id=WB/GOV/SED/banglarshiksha/schools&message_id=m-1&since=5",
            SearchQuery(
                service_id="WB/GOV/SED/banglarshiksha/schools",
                message_id="m-1",
                since=5.0,
            ),
        ),
    ],
)
async def test_a_log_search_passes_on_only_the_filters_given(
    tmp_path: Path,
    searches: list[SearchQuery],
    query: str,
    expected: SearchQuery,
) -> None:
    """A time bound that is not given is no bound, not zero."""
    request = admin_request(query=query, identity=OFFICER)

    await api.log_search(request, _as_node(_node(tmp_path)))

    assert searches == [expected]


async def test_a_log_search_answers_each_record_with_its_place_and_hash(
    tmp_path: Path, searches: list[SearchQuery]
) -> None:
    response = await api.log_search(
        admin_request(identity=OFFICER), _as_node(_node(tmp_path))
    )

    assert await _json(response) == {
        "records": [
            {
                "seq": 4,
                "hash": "ab" * 32,
                "record": {"message_id": "m-1", "decision": "forwarded"},
            }
        ]
    }
    assert searches[0].limit == 100


@pytest.mark.parametrize("limit", ["0", "1001", "-1"])
async def test_a_log_search_page_out_of_bounds_is_refused_before_reading(
    tmp_path: Path, searches: list[SearchQuery], limit: str
) -> None:
    with pytest.raises(ResolutionError, match="invalid_query") as caught:
        await api.log_search(
            admin_request(query=f"limit={limit}", identity=OFFICER),
            _as_node(_node(tmp_path)),
        )

    assert caught.value.log_reason == "bad_limit"
    assert searches == []


async def test_verifying_the_log_honours_revocations_and_notes_the_verdict(
    tmp_path: Path,
    searches: list[SearchQuery],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Revoked keys are passed with their revocation time; the audit note holds
    the verdict and the count only."""
    given: dict[str, Any] = {}

    async def verify_summary(
        _store: object, keys: dict[str, object], *, revoked_at: dict[str, float]
    ) -> dict[str, Any]:
        given.update(keys=set(keys), revoked_at=revoked_at)
        return {"ok": False, "records": 12, "first_problem": {"seq": 5}}

    monkeypatch.setattr(officer, "verify_summary", verify_summary)
    node = _node(tmp_path)
    node.keyring.public_keys = lambda: {
        "k1": _entry("k1", KeyState.ACTIVE),
        "k0": _entry("k0", KeyState.REVOKED, revoked_at=1_750_000_000),
    }
    request = admin_request("POST", identity=OFFICER)

    response = await api.log_verify(request, _as_node(node))

    assert given == {"keys": {"k0", "k1"}, "revoked_at": {"k0": 1_750_000_000.0}}
    assert (await _json(response))["ok"] is False
    noted = change_of(request.scope, _route("POST", "/log/verify"), {})
    assert noted == ("log.verify", NODE_ID, {"ok": False, "records": 12})


# -- the dashboard ---------------------------------------------------------------------


@pytest.mark.parametrize("hours", ["0", "-1", "2160.01", "nan"])
async def test_a_dashboard_window_outside_90_days_is_refused(
    tmp_path: Path, hours: str
) -> None:
    with pytest.raises(ResolutionError, match="invalid_query"):
        await api.dashboard(
            admin_request(query=f"hours={hours}"), _as_node(_node(tmp_path))
        )


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize(("query", "hours"), [("", 24), ("hours=2160", 2160)])
async def test_the_dashboard_sums_up_its_window_after_a_flush(
    tmp_path: Path, query: str, hours: float
) -> None:
    """Records still queued are stored first, so the figures include them."""
    node = _node(tmp_path)

    response = await api.dashboard(admin_request(query=query), _as_node(node))

    assert node.ops.monitor.calls == ["flush", "summary"]
    assert node.ops.monitor.windows == [(NOW - hours * 3600, NOW + 1)]
    figures = await _json(response)
    assert figures["log"] == {"records": 3, "bytes": 0}
    assert [k["kid"] for k in figures["keys"]] == ["k1"]
