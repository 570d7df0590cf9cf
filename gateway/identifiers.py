"""Client and service identifiers, parsed and printed in one place.

A client id is ``INSTANCE/CLASS/MEMBER/SUBSYSTEM`` (``WB/GOV/SED/banglarshiksha``);
a service id adds a service code (``WB/GOV/SED/banglarshiksha/students``). Each part
is ASCII letters, digits, ``-``, ``_`` and ``.``, starts with a letter or digit and is
at most 64 characters: stricter than X-Road's non-strict mode, so that no part can
carry a separator, a percent sign, a dot-segment or a control character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import Reason, ResolutionError

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)


def _check_part(value: str) -> str:
    if not _PART.fullmatch(value):
        raise ResolutionError(Reason.INVALID_IDENTIFIER)
    return value


@dataclass(frozen=True, slots=True, order=True)
class ClientId:
    """A subsystem of a member: the party on either end of an exchange."""

    instance: str
    member_class: str
    member_code: str
    subsystem: str

    def __post_init__(self) -> None:
        for part in (
            self.instance,
            self.member_class,
            self.member_code,
            self.subsystem,
        ):
            _check_part(part)

    @classmethod
    def parse(cls, text: str) -> ClientId:
        """Parse ``INSTANCE/CLASS/MEMBER/SUBSYSTEM``; raise ResolutionError."""
        parts = text.split("/")
        if len(parts) != 4:
            raise ResolutionError(Reason.INVALID_IDENTIFIER)
        return cls(*parts)

    @property
    def member(self) -> str:
        return f"{self.instance}/{self.member_class}/{self.member_code}"

    def __str__(self) -> str:
        return f"{self.member}/{self.subsystem}"


@dataclass(frozen=True, slots=True, order=True)
class ServiceId:
    """A service offered by a provider subsystem."""

    provider: ClientId
    code: str

    def __post_init__(self) -> None:
        _check_part(self.code)

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        """Parse ``INSTANCE/CLASS/MEMBER/SUBSYSTEM/CODE``; raise ResolutionError."""
        parts = text.split("/")
        if len(parts) != 5:
            raise ResolutionError(Reason.INVALID_IDENTIFIER)
        return cls(ClientId(*parts[:4]), parts[4])

    def __str__(self) -> str:
        return f"{self.provider}/{self.code}"
