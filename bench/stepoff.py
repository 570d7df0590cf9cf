"""Steps of the exchange switched off, for one benchmark node process only.

UNSAFE: a node with a step switched off accepts unauthenticated callers, skips
consent, writes no log or signs nothing. It exists so that ``make bench`` can show
what each step costs: ``cpu(full) - cpu(off-<step>)`` per exchange. Nothing in
the gateway knows about it; ``bench.serve_node --off STEP[,STEP]`` replaces, in its
own process and before uvicorn builds the node, the function that performs each
step with the cheapest stand-in that still lets the benchmark's exchange (a
Kanyashree ``POST /verify-enrolment`` with consent) answer 200 with the same body.

The steps and their stand-ins:

- ``authenticate``  ``ClientAuthenticator.authenticate`` and ``verify``: the bench
  client (Kanyashree) without reading the token: no JWT check, no replay check
  (``Admission`` records no use, and still counts the rate);
- ``replay``        ``first_use`` of both replay caches: always the first use
  (``Admission`` only counts the rate, also where Redis would do both at once);
- ``throttle``      ``Throttle.hit`` and ``Throttle.in_flight``: count nothing
  (``Admission`` only records the token's use);
- ``consent``       ``ExchangePipeline._consent``: no subject hash, no lookup;
- ``sign``          ``sign_request`` as the pipeline calls it: constant headers
  (the registry stub does not verify the node's request signature);
- ``verify``        ``verify_response`` as the pipeline calls it: a constant result;
- ``sign_response`` ``sign_response`` as the app calls it: constant headers (the
  load generator does not verify the node's answer);
- ``log``           ``MessageLog.append`` (both appends of an exchange): a receipt,
  nothing written; the records are still built by their callers;
- ``monitoring``    ``Operations.observe``: no monitoring record, no metrics;
- ``logline``       the ``exchange`` line of ``gateway.app``'s logger: not written
  (its fields are still gathered by the caller).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import gateway.app
import gateway.exchange
from gateway.admission import Admission
from gateway.auth import AuthenticatedClient, ClientAuthenticator, TokenUse
from gateway.demo.traffic import KANYASHREE
from gateway.exchange import ExchangePipeline
from gateway.identifiers import ClientId, ServiceId
from gateway.msglog.log import MessageLog, Receipt
from gateway.operations import Operations
from gateway.replay import MemoryReplayCache, RedisReplayCache
from gateway.sigverify import VerifiedSignature
from gateway.throttle import Throttle


@dataclass(frozen=True)
class Patch:
    """Replace ``owner.name`` (a module or class attribute) with ``stand_in``."""

    owner: object
    name: str
    stand_in: object


# -- the stand-ins ---------------------------------------------------------------------

#: The key id the stand-ins name wherever a real step would name a key.
KID: Final = "stepoff"
#: What the signing stand-ins return: well formed, never valid.
SIGNATURE_HEADERS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "content-digest": "sha-256=:" + "A" * 43 + "=:",
        "signature-input": 'mediator=("@method" "@target-uri" "content-digest");'
        f'created=0;keyid="{KID}";tag="shiksha-mediator"',
        "signature": "mediator=:" + "A" * 86 + "==:",
    }
)
_CLIENT: Final = AuthenticatedClient(
    KANYASHREE, kid=KID, jti_hash="0" * 64, expires_at=2**31 - 1
)
_USE: Final = TokenUse(str(KANYASHREE), "stepoff", 1)
_RECEIPT: Final = Receipt(seq=0, hash="0" * 64, leaf_hash=b"\0" * 32)
_VERIFIED: Final = VerifiedSignature(
    kid=KID, algorithm="ed25519", created=0, nonce=None
)


async def _unchecked_client(
    _self: ClientAuthenticator, _authorization: str | None
) -> AuthenticatedClient:
    return _CLIENT


async def _unchecked_verify(
    _self: ClientAuthenticator, _authorization: str | None
) -> tuple[AuthenticatedClient, TokenUse]:
    return _CLIENT, _USE


async def _no_use(_self: Admission, _use: TokenUse) -> None:
    return None


async def _count_only(
    self: Admission,
    _use: TokenUse,
    client: ClientId,
    service: ServiceId,
    rate: str | None,
) -> None:
    await self.throttle.hit(client, service, rate)


async def _use_only(self: Admission, use: TokenUse, *_args: object) -> None:
    await self.record_use(use)


async def _always_first(
    _self: object, _namespace: str, _token_id: str, _ttl_s: int
) -> bool:
    return True


async def _no_count(_self: Throttle, *_args: object) -> None:
    return None


def _no_slot(_self: Throttle, _client: object) -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


async def _no_consent(_self: ExchangePipeline, *_args: object) -> None:
    return None


def _unsigned(_key: object, **_message: object) -> dict[str, str]:
    # A fresh dict: the callers add it to headers they go on changing.
    return dict(SIGNATURE_HEADERS)


def _unverified(**_message: object) -> VerifiedSignature:
    return _VERIFIED


async def _unwritten(
    _self: MessageLog,
    _record: Mapping[str, Any],
    *,
    bodies: object = None,
    flush: bool = True,
) -> Receipt:
    return _RECEIPT


def _unobserved(_self: Operations, _record: object) -> None:
    return None


class QuietExchangeLog:
    """``gateway.app``'s logger without its per-exchange ``info`` line."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def info(self, _event: str, **_fields: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _logline() -> list[Patch]:
    return [Patch(gateway.app, "log", QuietExchangeLog(gateway.app.log))]


_PATCHES: Final[dict[str, Callable[[], list[Patch]]]] = {
    "authenticate": lambda: [
        Patch(ClientAuthenticator, "authenticate", _unchecked_client),
        Patch(ClientAuthenticator, "verify", _unchecked_verify),
        Patch(Admission, "record_use", _no_use),
        Patch(Admission, "admit", _count_only),
    ],
    "replay": lambda: [
        Patch(MemoryReplayCache, "first_use", _always_first),
        Patch(RedisReplayCache, "first_use", _always_first),
        Patch(Admission, "record_use", _no_use),
        Patch(Admission, "admit", _count_only),
    ],
    "throttle": lambda: [
        Patch(Throttle, "hit", _no_count),
        Patch(Throttle, "in_flight", _no_slot),
        Patch(Admission, "admit", _use_only),
    ],
    "consent": lambda: [Patch(ExchangePipeline, "_consent", _no_consent)],
    "sign": lambda: [Patch(gateway.exchange, "sign_request", _unsigned)],
    "verify": lambda: [Patch(gateway.exchange, "verify_response", _unverified)],
    "sign_response": lambda: [Patch(gateway.app, "sign_response", _unsigned)],
    "log": lambda: [Patch(MessageLog, "append", _unwritten)],
    "monitoring": lambda: [Patch(Operations, "observe", _unobserved)],
    "logline": _logline,
}

#: Every step that can be switched off, in the order of an exchange.
STEPS: Final = tuple(_PATCHES)


# -- choosing and applying -------------------------------------------------------------


def parse_steps(text: str) -> tuple[str, ...]:
    """``"log,sign"`` as steps; raise ValueError for an unknown or repeated step."""
    steps = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in steps if s not in _PATCHES]
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; known: {', '.join(STEPS)}")
    if len(set(steps)) != len(steps):
        raise ValueError("a step is named twice")
    return steps


def patches(steps: Iterable[str]) -> list[Patch]:
    """The attribute replacements that switch ``steps`` off.

    :raises KeyError: an unknown step.
    :raises AttributeError: the gateway no longer has an attribute a patch
        replaces (renamed or moved), so that a stand-in is never silently unused.
    """
    found = [patch for step in steps for patch in _PATCHES[step]()]
    for patch in found:
        if not hasattr(patch.owner, patch.name):
            raise AttributeError(f"{patch.owner!r} has no {patch.name}: fix stepoff")
    return found


def switch_off(steps: Iterable[str]) -> None:
    """Apply the patches for ``steps`` to this process, with a WARNING line.

    For the benchmark's node process only, before the node is built: the message
    log's bound ``append`` and the pipeline's services are taken at build time.
    """
    chosen = list(steps)
    if not chosen:
        return
    for patch in patches(chosen):
        setattr(patch.owner, patch.name, patch.stand_in)
    print(
        f"WARNING bench.stepoff: steps switched off in this process: "
        f"{', '.join(chosen)}; never serve real traffic from it",
        file=sys.stderr,
        flush=True,
    )
