"""Steps switched off for the benchmark: each still lets the exchange answer as
the full node does, and each really skips its step."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from bench import fixture, stepoff
from bench.fixture import World
from gateway.admission import Admission
from gateway.app import app_for_node
from gateway.demo.traffic import KANYASHREE, STUDENTS
from gateway.deployment import load_deployment
from gateway.errors import Reason, ThrottledError
from gateway.msglog.sqlite import SqliteLogStore
from gateway.node import Node
from gateway.operations import Operations
from gateway.signing import request_hash, sign_response
from gateway.throttle import KEY_PREFIX
from registry_stub.app import create_app as create_registry
from registry_stub.seed import sample_students
from tests.gateway.admission_support import refusal, token_use

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return fixture.build(tmp_path_factory.mktemp("stepoff"), students=300, schools=4)


@pytest.fixture(autouse=True)
def _environ(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in world.demo.environ().items():
        monkeypatch.setenv(name, value)


@dataclass
class Running:
    """A node started in process over the benchmark's world."""

    world: World
    node: Node
    http: httpx.AsyncClient
    state: Path

    async def send(
        self, *, token: str | None = None, student: dict[str, Any] | None = None
    ) -> httpx.Response:
        """The benchmark's request, for the first applicant unless told."""
        chosen = student or self.world.students[0]
        year, month, day = chosen["date_of_birth"].split("-")
        body = {
            "applicant": {
                "registry_uid": chosen["student_id"],
                "dob": f"{day}/{month}/{year}",
            },
            "scheme_year": "2026-27",
        }
        target = fixture.mediator_target(
            self.world, self.world.demo.mediator_url, self.state
        )
        headers = {
            **target.headers,
            "Authorization": f"Bearer {token or fixture.assertion(self.world)}",
        }
        return await self.http.post(
            target.path, headers=headers, content=orjson.dumps(body)
        )

    async def records(self) -> list[dict[str, Any]]:
        store = SqliteLogStore(self.state / "messagelog.db")
        await store.open()
        try:
            found = [r async for chunk in store.iter_records() for r in chunk]
        finally:
            await store.close()
        return [orjson.loads(r.canonical) for r in found]


@asynccontextmanager
async def started(world: World, name: str) -> AsyncIterator[Running]:
    state = world.state_copy(name)
    deployment = load_deployment(world.demo.config_dir, state)
    key = world.demo.registry_key
    assert key is not None

    def sign(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
        return sign_response(key, status=status, headers=headers, body=body)

    registry = create_registry(world.demo.registry_db, response_signer=sign)
    registry_http = httpx.AsyncClient(transport=httpx.ASGITransport(registry))
    node = await Node.start(
        deployment, http_client=registry_http, passphrase=world.demo.passphrase
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app_for_node(node), client=("127.0.0.1", 40000)),
        base_url=world.demo.mediator_url,
    )
    try:
        yield Running(world, node, http, state)
    finally:
        await http.aclose()
        await node.stop()
        await registry_http.aclose()


# -- what shows that a step was skipped ------------------------------------------------


async def _any_token_passes(run: Running) -> bool:
    return (await run.send(token="not.a.token")).status_code == 200


async def _a_token_passes_twice(run: Running) -> bool:
    token = fixture.assertion(run.world)
    await run.send(token=token)
    return (await run.send(token=token)).status_code == 200


async def _no_rate_counted(run: Running) -> bool:
    throttle = run.node.shared.throttle
    try:
        for _ in range(2):
            await throttle.hit(KANYASHREE, STUDENTS, "1/minute")
    except ThrottledError:
        return False
    return True


async def _no_consent_needed(run: Running) -> bool:
    consented = {s["student_id"] for s in run.world.students}
    others = sample_students(run.world.demo.registry_db, limit=500)
    student = next(s for s in others if s["student_id"] not in consented)
    return (await run.send(student=student)).status_code == 200


async def _request_signed_by_stand_in(run: Running) -> bool:
    response = await run.send()
    stand_in = stepoff.SIGNATURE_HEADERS
    expected = request_hash(stand_in["signature-input"], stand_in["signature"])
    return bool(response.headers.get("x-road-request-hash") == expected)


async def _provider_unverified(run: Running) -> bool:
    await run.send()
    last = (await run.records())[-1]
    return bool(last["upstream_signature_kid"] == stepoff.KID)


async def _response_signed_by_stand_in(run: Running) -> bool:
    response = await run.send()
    signature = response.headers.get("signature")
    return bool(signature == stepoff.SIGNATURE_HEADERS["signature"])


async def _nothing_logged(run: Running) -> bool:
    before = run.node.log.size
    await run.send()
    return run.node.log.size == before


def _exchanges_counted(node: Node) -> float:
    return sum(
        sample.value
        for metric in node.ops.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "mediator_exchanges_total"
    )


async def _nothing_observed(run: Running) -> bool:
    before = _exchanges_counted(run.node)
    await run.send()
    return _exchanges_counted(run.node) == before


async def _no_exchange_line(run: Running) -> bool:
    with capture_logs() as events:
        await run.send()
    return not any(e["event"] == "exchange" for e in events)


SKIPPED: dict[str, Callable[[Running], Awaitable[bool]]] = {
    "authenticate": _any_token_passes,
    "replay": _a_token_passes_twice,
    "throttle": _no_rate_counted,
    "consent": _no_consent_needed,
    "sign": _request_signed_by_stand_in,
    "verify": _provider_unverified,
    "sign_response": _response_signed_by_stand_in,
    "log": _nothing_logged,
    "monitoring": _nothing_observed,
    "logline": _no_exchange_line,
}


def test_every_step_has_a_check_here() -> None:
    assert set(SKIPPED) == set(stepoff.STEPS)


@pytest.mark.parametrize("step", stepoff.STEPS)
async def test_a_step_off_is_skipped_and_the_answer_stays(
    world: World, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with started(world, f"full-{step}") as full:
        expected = await full.send()
        assert not await SKIPPED[step](full)

    for patch in stepoff.patches([step]):
        monkeypatch.setattr(patch.owner, patch.name, patch.stand_in)
    async with started(world, f"off-{step}") as off:
        answer = await off.send()
        skipped = await SKIPPED[step](off)

    assert expected.status_code == 200
    assert (answer.status_code, answer.content) == (200, expected.content)
    assert skipped


def test_steps_are_parsed_from_a_comma_list() -> None:
    assert stepoff.parse_steps("log, sign") == ("log", "sign")
    with pytest.raises(ValueError, match="unknown"):
        stepoff.parse_steps("log,frame")
    with pytest.raises(ValueError, match="twice"):
        stepoff.parse_steps("log,log")


def test_a_patch_of_a_missing_attribute_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(Operations, "observe")
    with pytest.raises(AttributeError, match="observe"):
        stepoff.patches(["monitoring"])


# -- the stand-ins where Redis records the use and counts the rate at once -------------


@pytest.mark.redis
@pytest.mark.parametrize("step", ["replay", "authenticate"])
async def test_without_the_replay_check_the_rate_is_still_counted(
    step: str,
    combined: Admission,
    shared_redis: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``replay`` or ``authenticate`` off, a reused token passes and the
    combined path still counts the rate; no replay key is written."""
    for patch in stepoff.patches([step]):
        monkeypatch.setattr(patch.owner, patch.name, patch.stand_in)

    results = [
        await refusal(combined.admit(token_use(), KANYASHREE, STUDENTS, "1/minute"))
        for _ in range(2)
    ]

    assert results == [None, Reason.RATE_LIMITED]
    assert [k async for k in shared_redis.scan_iter("replay:*")] == []


@pytest.mark.redis
async def test_the_throttle_stand_ins_still_record_the_use(
    combined: Admission, shared_redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``throttle`` off, nothing is counted but a
    replayed token is still refused."""
    for patch in stepoff.patches(["throttle"]):
        monkeypatch.setattr(patch.owner, patch.name, patch.stand_in)

    uses = [token_use(f"u{n}") for n in range(3)]
    admitted = [
        await refusal(combined.admit(u, KANYASHREE, STUDENTS, "1/minute")) for u in uses
    ]
    replay = await refusal(combined.admit(uses[0], KANYASHREE, STUDENTS, "1/minute"))

    assert admitted == [None, None, None]
    assert replay is Reason.TOKEN_REPLAYED
    assert [k async for k in shared_redis.scan_iter(f"{KEY_PREFIX}*")] == []
