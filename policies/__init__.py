"""Access rights, purposes and consent: steps 4, 6 and 10 of an exchange.

Each decision is a small function or method that returns what allowed the request
(a rule, a purpose, a consent record, whose ids go into the message log) or raises
:class:`~gateway.errors.AccessDeniedError`. Nothing is allowed by default:

1. :meth:`AccessPolicy.check` finds the rule for client, service, method and path;
2. :func:`check_purpose` checks the declared purpose against the rule;
3. :func:`subject_of` finds the student the exchange is about;
4. :func:`check_consent` finds an active consent when the purpose rests on consent;
5. ``purpose.release.apply`` keeps only the purpose's fields of the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.yamlconf import all_errors
from policies.access import AccessMatch, AccessPolicy, AccessRule
from policies.consent import ConsentError, ConsentRecord, ConsentRevision, ConsentStore
from policies.decision import check_consent
from policies.purposes import (
    LawfulBasis,
    Purpose,
    PurposeSet,
    SubjectRef,
    check_purpose,
    subject_of,
)
from policies.release import Release, compile_release

ACCESS_FILE = "access.yaml"
PURPOSES_FILE = "purposes.yaml"

__all__ = [
    "AccessMatch",
    "AccessPolicy",
    "AccessRule",
    "ConsentError",
    "ConsentRecord",
    "ConsentRevision",
    "ConsentStore",
    "LawfulBasis",
    "Policies",
    "Purpose",
    "PurposeSet",
    "Release",
    "SubjectRef",
    "check_config",
    "check_consent",
    "check_purpose",
    "compile_release",
    "load_policies",
    "subject_of",
]


@dataclass(frozen=True)
class Policies:
    """The access rights and purposes of one deployment."""

    access: AccessPolicy
    purposes: PurposeSet


def load_policies(config_dir: Path) -> Policies:
    """Load ``purposes.yaml`` and ``access.yaml``; raise the first ConfigError."""
    purposes = PurposeSet.load(config_dir / PURPOSES_FILE)
    access = AccessPolicy.load(config_dir / ACCESS_FILE, purposes.ids())
    return Policies(access, purposes)


def check_config(config_dir: Path) -> list[ConfigError]:
    """Every ConfigError of the two policy files, for ``mediator config check``.

    When ``purposes.yaml`` does not load, ``access.yaml`` is still checked, with
    every purpose name taken as known.
    """
    loaded: list[PurposeSet] = []
    errors = all_errors(
        [
            (
                "purposes",
                lambda: loaded.append(PurposeSet.load(config_dir / PURPOSES_FILE)),
            )
        ]
    )
    known = loaded[0].ids() if loaded else _AnyName()
    errors += all_errors(
        [("access", lambda: AccessPolicy.load(config_dir / ACCESS_FILE, known))]
    )
    return errors


class _AnyName(frozenset[str]):
    """Contains every name: lets access.yaml be checked when purposes did not load."""

    def __contains__(self, item: object) -> bool:
        return isinstance(item, str)
