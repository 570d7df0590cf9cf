"""Secrets held in memory, masked by their type.

A :class:`Secret` prints as a row of stars, so a passphrase or key that reaches a
log line, a traceback or a ``repr`` shows nothing. Only :meth:`Secret.reveal`
returns the value, and only code that needs the bytes calls it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gateway.errors import ConfigError

_MASK = "**********"


class Secret:
    """A secret value whose ``repr`` and ``str`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str) -> None:
        self._value = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def reveal(self) -> bytes:
        """The secret bytes; callers must not log or store them."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __bool__(self) -> bool:
        return bool(self._value)


def read_passphrase(env_name: str, file: Path | None = None) -> Secret:
    """Read a passphrase from ``file`` if given, else from the variable ``env_name``.

    The file must not be readable or writable by group or others. Errors name
    the file or the variable, never the value.

    :raises ConfigError: the file is missing, unsafe or empty, or the variable is
        unset or empty.
    """
    if file is not None:
        return _from_file(file)

    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"${env_name}", "the keyring passphrase variable is not set")
    return Secret(value)


def _from_file(file: Path) -> Secret:
    try:
        mode = file.stat().st_mode
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(str(file), "the passphrase file cannot be read") from exc

    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            str(file), "the passphrase file must not be group or world accessible"
        )
    value = data.rstrip(b"\r\n")
    if not value:
        raise ConfigError(str(file), "the passphrase file is empty")
    return Secret(value)
