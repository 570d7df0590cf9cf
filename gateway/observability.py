"""Structured logging: one JSON line per event, made safe before it is written.

Every string value and every key passes through :func:`gateway.logsafe.escape` and
:func:`gateway.logsafe.redact_numbers`, so that a control character cannot forge a
line and a personal number cannot reach a log sink even if a caller slips.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from gateway.logsafe import escape, redact_numbers

#: Keys already made safe, and how many are remembered.
_SAFE_KEYS: dict[str, str] = {}
_SAFE_KEYS_MAX = 4096


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return redact_numbers(escape(value))
    if isinstance(value, dict):
        return {_safe_key(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


def _safe_key(key: Any) -> str:
    # Keys are mostly the code's own names, made safe once; a key built from
    # input is made safe as a value is.
    text = str(key)
    safe = _SAFE_KEYS.get(text)
    if safe is None:
        safe = redact_numbers(escape(text))
        if len(_SAFE_KEYS) < _SAFE_KEYS_MAX:
            _SAFE_KEYS[text] = safe
    return safe


def make_safe(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor that escapes and redacts every key and value."""
    return {_safe_key(key): _safe(value) for key, value in event_dict.items()}


def configure_logging(level: str = "info") -> None:
    """JSON lines on stdout for the node, the registry and the CLI."""
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=level.upper())
    # httpx writes a line per request with its URL (query included): never wanted.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            make_safe,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def _dumps(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
