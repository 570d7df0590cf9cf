"""The app factory of worker processes (how many share the node, and what they
need), and the page of the node's published keys."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from gateway.app import app_from_env, worker_count
from gateway.errors import ConfigError
from tests.gateway.conftest import Harness

CONFIG = Path(__file__).resolve().parents[2] / "config"
JWKS = "/.well-known/jwks.json"


@pytest.mark.parametrize(("declared", "count"), [("", 1), ("1", 1), (" 3 ", 3)])
def test_the_declared_worker_count_is_read(
    monkeypatch: pytest.MonkeyPatch, declared: str, count: int
) -> None:
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)

    assert worker_count() == count


@pytest.mark.parametrize("declared", ["0", "-1", "two", "1.5", "\u00b2", "\u0661"])
def test_a_worker_count_that_is_not_one_or_more_is_refused(
    monkeypatch: pytest.MonkeyPatch, declared: str
) -> None:
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)

    with pytest.raises(ConfigError):
        worker_count()


@pytest.mark.parametrize(("declared", "count"), [("", 2), ("1", 2), ("4", 4)])
def test_a_process_a_supervisor_started_counts_as_one_of_several(
    monkeypatch: pytest.MonkeyPatch, declared: str, count: int
) -> None:
    # A leftover MEDIATOR_WORKERS=1 must not hide the siblings.
    monkeypatch.setenv("MEDIATOR_WORKERS", declared)
    monkeypatch.setattr(multiprocessing, "parent_process", object)

    assert worker_count() == count


def test_workers_of_a_node_without_redis_do_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Each would keep its own replay cache: an assertion would pass once per worker.
    monkeypatch.setenv("MEDIATOR_CONFIG", str(CONFIG))
    monkeypatch.setenv("MEDIATOR_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MEDIATOR_WORKERS", "2")
    monkeypatch.delenv("MEDIATOR_REDIS_URL", raising=False)

    with pytest.raises(ConfigError, match=r"redis\.url"):
        app_from_env()


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_the_published_keys_answer_only_get_and_head(
    harness: Harness, method: str
) -> None:
    answer = await harness.http.request(
        method, f"{harness.demo.mediator_url}{JWKS}", content=b"{}"
    )

    assert answer.status_code == 405
    assert answer.headers["x-road-error"] == "Client.method_not_allowed"
    assert answer.headers["allow"] == "GET, HEAD"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "framing",
    [{"content-length": "2"}, {"transfer-encoding": "chunked"}],
    ids=["content-length", "chunked"],
)
async def test_the_published_keys_refuse_a_get_with_a_body(
    harness: Harness, framing: dict[str, str]
) -> None:
    """As every page that GET reads: a body there has no meaning (RFC 9110 9.3.1)."""
    answer = await harness.http.request(
        "GET", f"{harness.demo.mediator_url}{JWKS}", headers=framing, content=b"{}"
    )

    assert answer.status_code == 400
    assert answer.headers["x-road-error"] == "Client.body_not_allowed"


@pytest.mark.anyio
async def test_the_published_keys_are_the_node_s(harness: Harness) -> None:
    answer = await harness.http.get(f"{harness.demo.mediator_url}{JWKS}")

    assert answer.status_code == 200
    assert answer.json() == harness.node.keyring.jwks()
