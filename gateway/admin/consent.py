"""The consent API on the admin surface, after the GovStack Consent building block.

Grant, revoke, list a student's consents, read and verify a consent's signed
revision history, and list every exchange that released a student's data (from
the message log, by the keyed subject hash). A student id travels only in request
bodies, never in a URL, so that no access log can hold one; answers about a record
leave out the snapshot with the grantor's name. :func:`openapi` is the OpenAPI 3.1
document of these endpoints; :func:`routes` lists them with their roles.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.config import PREFIX, AdminRoute
from gateway.admin.framework import json_body
from gateway.errors import AdminRequestError, MediatorError, Reason
from gateway.identifiers import ClientId
from gateway.msglog.store import SearchQuery, StoredRecord
from gateway.msglog.stores import reading_store
from policies.consent import ConsentError, ConsentRecord, is_student_id

if TYPE_CHECKING:
    from gateway.node import Node

MAX_BODY = 16 * 1024
ROLE = "security_officer"
YEAR_S = 365 * 86_400
#: The longest consent, as ``mediator consent grant --days`` allows.
MAX_WINDOW_S = 3660 * 86_400


class _Body(BaseModel):
    # strict: "5" is not a number and 1 is not true; no NaN or infinite times.
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, allow_inf_nan=False
    )


class GrantBody(_Body):
    subject: str = Field(max_length=32)
    client: str = Field(max_length=256)
    purpose: str = Field(max_length=64)
    granted_by_role: Literal["guardian", "student"]
    granted_by_name: str = Field(min_length=1, max_length=200)
    subject_is_minor: bool = True
    valid_from: float | None = None
    valid_until: float | None = None
    actor: str = Field(min_length=1, max_length=200)


class RevokeBody(_Body):
    actor: str = Field(min_length=1, max_length=200)


class SubjectBody(_Body):
    subject: str = Field(max_length=32)
    limit: int = Field(default=100, ge=1, le=1000)


_B = TypeVar("_B", bound=_Body)


def _invalid(field: str) -> AdminRequestError:
    return AdminRequestError(Reason.INVALID_FIELD, detail=field)


async def _read(request: Request, model: type[_B]) -> _B:
    """The body validated into ``model``.

    :raises MediatorError: what :func:`~gateway.admin.framework.json_body`
        raises, or ``invalid_field`` (422) naming the first bad field.
    """
    document = await json_body(request, MAX_BODY)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise _invalid(where) from None


def record_json(record: ConsentRecord) -> dict[str, Any]:
    """A consent record for an answer: no grantor name."""
    return {
        "consent_id": record.consent_id,
        "client": record.client,
        "purpose": f"{record.purpose_id}@{record.purpose_version}",
        "granted_by_role": record.granted_by.role,
        "valid_from": record.valid_from,
        "valid_until": record.valid_until,
        "state": record.state,
        "revoked_at": record.revoked_at,
        "revoked_by": record.revoked_by,
    }


async def grant(request: Request, node: Node) -> Response:
    """Grant a consent for the purpose's current version: 201, or 404/422."""
    body = await _read(request, GrantBody)
    purpose = node.deployment.policies.purposes.get(body.purpose)
    if purpose is None:
        raise AdminRequestError(Reason.UNKNOWN_PURPOSE, detail="purpose")
    try:
        client = ClientId.parse(body.client)
    except MediatorError:
        raise _invalid("client") from None
    if node.deployment.directory.subsystem(client) is None:
        raise AdminRequestError(
            Reason.INVALID_FIELD, detail="client: not a registered subsystem"
        )
    now = time.time()
    valid_from = now if body.valid_from is None else body.valid_from
    valid_until = valid_from + YEAR_S if body.valid_until is None else body.valid_until
    if valid_until <= now:
        raise _invalid("valid_until: the window has ended")
    if valid_until - valid_from > MAX_WINDOW_S:
        raise _invalid("valid_until: more than ten years after valid_from")
    try:
        record = await node.consents.grant(
            subject=body.subject,
            client=client,
            purpose=purpose,
            granted_by_role=body.granted_by_role,
            granted_by_name=body.granted_by_name,
            subject_is_minor=body.subject_is_minor,
            valid_from=valid_from,
            valid_until=valid_until,
            actor=body.actor,
        )
    except ConsentError as exc:
        # The store's rules are fixed sentences: they name no request value.
        raise AdminRequestError(Reason.CONSENT_REFUSED, detail=str(exc)) from None
    return JSONResponse(record_json(record), status_code=201)


async def revoke(request: Request, node: Node) -> Response:
    """Revoke a consent now; effective on the next exchange. 404/409 if it cannot."""
    body = await _read(request, RevokeBody)
    if not body.actor.strip():
        # The store refuses it too, with the error it gives a revoked consent.
        raise _invalid("actor")
    consent_id = request.path_params["consent_id"]
    if await node.consents.get(consent_id) is None:
        raise AdminRequestError(Reason.UNKNOWN_CONSENT)
    try:
        record = await node.consents.revoke(consent_id, actor=body.actor)
    except ConsentError:
        raise AdminRequestError(Reason.ALREADY_REVOKED) from None
    return JSONResponse(record_json(record))


async def list_consents(request: Request, node: Node) -> Response:
    """Every consent of one student (in the body), newest window first."""
    body = await _read(request, SubjectBody)
    if not is_student_id(body.subject):
        raise _invalid("subject")
    records = await node.consents.list_for_subject(body.subject)
    return JSONResponse({"consents": [record_json(r) for r in records[: body.limit]]})


async def history(request: Request, node: Node) -> Response:
    """A consent's revisions and whether the chain and signatures verify."""
    consent_id = request.path_params["consent_id"]
    revisions = await node.consents.history(consent_id)
    if not revisions:
        raise AdminRequestError(Reason.UNKNOWN_CONSENT)
    verified = await node.consents.verify_history(consent_id)
    return JSONResponse(
        {
            "consent_id": consent_id,
            "verified": verified,
            "signed": node.consents.signed,
            "revisions": [
                {
                    "revision": r.revision,
                    "at": r.at,
                    "actor": r.actor,
                    "state": r.state,
                    "prev_hash": r.prev_hash,
                    "hash": r.hash,
                    "kid": r.kid,
                    "signature": r.signature,
                }
                for r in revisions
            ],
        }
    )


async def exchanges(request: Request, node: Node) -> Response:
    """Every logged exchange about one student (in the body), newest first.

    Exchanges under a purpose that names no subject (a roster) carry no subject
    hash and are not listed.
    """
    body = await _read(request, SubjectBody)
    if not is_student_id(body.subject):
        raise _invalid("subject")
    query = SearchQuery(
        subject_hash=node.shared.subjects.hash(body.subject), limit=body.limit
    )
    settings = node.deployment.settings
    async with reading_store(settings.log, node.deployment.path) as store:
        found = await store.search(query)
    return JSONResponse({"exchanges": _one_per_exchange(found)})


def _one_per_exchange(found: list[StoredRecord]) -> list[dict[str, Any]]:
    """The final record of each exchange; a request record only if it is alone.

    A forwarded exchange has a request record and a response record under one
    message id; a request record without its response (the node stopped in
    between) still shows that the data may have been released.
    """
    documents = [orjson.loads(r.canonical) for r in found]
    answered = {
        d.get("message_id") for d in documents if d.get("direction") != "request"
    }
    return [
        {key: d.get(key) for key in _EXCHANGE_KEYS if key in d}
        for d in documents
        if d.get("direction") != "request" or d.get("message_id") not in answered
    ]


_EXCHANGE_KEYS = (
    "message_id",
    "direction",
    "client_id",
    "service_id",
    "method",
    "purpose",
    "lawful_basis",
    "consent_id",
    "decision",
    "status",
    "reason",
    "started_at",
)


async def openapi_document(_request: Request, _node: Node) -> Response:
    """The consent API's OpenAPI document."""
    return JSONResponse(openapi())


def routes() -> list[AdminRoute]:
    """The consent endpoints, for the admin surface to mount."""
    return [
        AdminRoute("POST", f"{PREFIX}/consents", grant, ROLE),
        AdminRoute("POST", f"{PREFIX}/consents/{{consent_id}}/revoke", revoke, ROLE),
        AdminRoute("POST", f"{PREFIX}/consents/search", list_consents, ROLE),
        AdminRoute("GET", f"{PREFIX}/consents/{{consent_id}}/history", history, ROLE),
        AdminRoute("POST", f"{PREFIX}/subjects/exchanges", exchanges, ROLE),
        AdminRoute("GET", f"{PREFIX}/consents/openapi.json", openapi_document, ROLE),
    ]


def _op(summary: str, body: str | None, answers: dict[str, str]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "responses": {code: {"description": text} for code, text in answers.items()},
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
            },
        }
    return operation


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the consent API."""
    schemas = {
        name: model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, model in (
            ("GrantBody", GrantBody),
            ("RevokeBody", RevokeBody),
            ("SubjectBody", SubjectBody),
        )
    }
    by_id = {
        "name": "consent_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Shiksha Mediator consent API", "version": "1"},
        "paths": {
            f"{PREFIX}/consents": {
                "post": _op(
                    "Grant a consent",
                    "GrantBody",
                    {
                        "201": "granted",
                        "404": "unknown purpose",
                        "422": "refused (e.g. a minor without a guardian)",
                    },
                )
            },
            f"{PREFIX}/consents/{{consent_id}}/revoke": {
                "post": {
                    **_op(
                        "Revoke a consent",
                        "RevokeBody",
                        {"200": "revoked", "404": "unknown", "409": "already revoked"},
                    ),
                    "parameters": [by_id],
                }
            },
            f"{PREFIX}/consents/search": {
                "post": _op(
                    "List a student's consents", "SubjectBody", {"200": "the consents"}
                )
            },
            f"{PREFIX}/consents/{{consent_id}}/history": {
                "get": {
                    **_op(
                        "A consent's signed revision history, verified",
                        None,
                        {"200": "revisions and verification", "404": "unknown"},
                    ),
                    "parameters": [by_id],
                }
            },
            f"{PREFIX}/subjects/exchanges": {
                "post": _op(
                    "Every exchange that released a student's data",
                    "SubjectBody",
                    {"200": "the exchanges, newest first"},
                )
            },
        },
        "components": {"schemas": schemas},
    }
