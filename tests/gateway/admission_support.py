"""Helpers for the tests of a token's use and its rate limit (gateway.admission)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.auth import TokenUse
from gateway.errors import AuthenticationError, NodeError, Reason, ThrottledError
from tests.gateway.conftest import KANYASHREE


def token_use(token_id: str = "jti-1", ttl_s: int = 60) -> TokenUse:
    """A verified assertion's use by Kanyashree."""
    return TokenUse(str(KANYASHREE), token_id, ttl_s)


async def refusal(call: Awaitable[None]) -> Reason | None:
    """The reason ``call`` was refused with, or None when it went through."""
    try:
        await call
    except (AuthenticationError, ThrottledError, NodeError) as exc:
        return exc.reason
    return None


def count_commands(client: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the commands ``client`` sends from now on, in order."""
    sent: list[str] = []
    real: Callable[..., Awaitable[Any]] = client.execute_command

    async def counted(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await real(*args, **options)

    monkeypatch.setattr(client, "execute_command", counted)
    return sent
