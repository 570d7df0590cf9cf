"""The consent step of an exchange (step 6): purposes meet the consent store."""

from __future__ import annotations

from gateway.errors import AccessDeniedError, Reason
from gateway.identifiers import ClientId
from policies.consent import ConsentBackend, ConsentRecord
from policies.purposes import LawfulBasis, Purpose


async def check_consent(
    store: ConsentBackend,
    purpose: Purpose,
    subject: str | None,
    client: ClientId,
    at: float,
) -> ConsentRecord | None:
    """The consent record that covers this exchange, or None if none is needed.

    A purpose whose lawful basis is not consent needs no record. Otherwise raises
    AccessDeniedError(CONSENT_REQUIRED) when the subject is unknown or no active
    consent for this subject, client and purpose version covers ``at``; and
    NodeError when the store cannot be read, so that the exchange fails closed.
    """
    if purpose.lawful_basis is not LawfulBasis.CONSENT:
        return None
    if not subject:
        raise AccessDeniedError(Reason.CONSENT_REQUIRED, log_reason="subject_missing")
    record = await store.find_active(subject, client, purpose, at)
    if record is None:
        raise AccessDeniedError(Reason.CONSENT_REQUIRED, log_reason="no_active_consent")
    return record
