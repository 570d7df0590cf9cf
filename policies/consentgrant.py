"""The grant call shared by the consent stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from gateway.identifiers import ClientId
from policies.consentrecords import ConsentRecord
from policies.consentsign import RevisionSigner
from policies.purposes import Purpose


class GrantApi:
    """The grant call both stores share: keyword arguments gathered into one grant,
    which each store's ``_grant`` records in its own database."""

    _signer: RevisionSigner | None

    @property
    def signed(self) -> bool:
        """Whether this store signs revisions and verifies their signatures."""
        return self._signer is not None

    async def grant(
        self,
        *,
        subject: str,
        client: ClientId,
        purpose: Purpose,
        granted_by_role: str,
        granted_by_name: str,
        subject_is_minor: bool,
        valid_from: float,
        valid_until: float,
        actor: str,
    ) -> ConsentRecord:
        """Record a new active consent; raise ConsentError if it cannot be granted.

        A minor's consent needs ``granted_by_role="guardian"``; the purpose's
        lawful basis must be consent; the window must not be empty.
        """
        grant = {
            "subject": subject,
            "client": client,
            "purpose": purpose,
            "granted_by_role": granted_by_role,
            "granted_by_name": granted_by_name,
            "subject_is_minor": subject_is_minor,
            "valid_from": valid_from,
            "valid_until": valid_until,
            "actor": actor,
        }
        return await self._grant(grant)

    async def _grant(self, grant: dict[str, Any]) -> ConsentRecord:
        raise NotImplementedError
