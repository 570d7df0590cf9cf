"""X-Road-Purpose and Content-Type sent twice, in other cases, joined or empty."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import KANYASHREE, SABOOJSATHI, Harness
from tests.gateway.hostile.support import STUDENTS, send_fields

pytestmark = pytest.mark.anyio

ROSTER = f"/{STUDENTS}/roster/19999999999"
VERIFY = f"/{STUDENTS}/verify-enrolment"


async def _only_record(harness: Harness) -> dict[str, object]:
    (record,) = await harness.exchanges()
    return record


async def test_one_purpose_in_any_case_of_its_name_is_forwarded(
    harness: Harness,
) -> None:
    fields = [("X-ROAD-purpose", "saboojsathi-roster")]

    response = await send_fields(harness, SABOOJSATHI, "GET", ROSTER, fields)

    record = await _only_record(harness)
    assert record["upstream_called"] is True
    assert response.status_code != 400


@pytest.mark.parametrize(
    "fields",
    [
        [("X-Road-Purpose", "saboojsathi-roster"), ("x-road-purpose", "x")],
        [("x-road-purpose", "saboojsathi-roster"), ("X-ROAD-PURPOSE", "")],
        [("x-road-purpose", ""), ("x-road-purpose", "saboojsathi-roster")],
        [("x-road-purpose", "saboojsathi-roster")] * 2,
    ],
    ids=["case", "empty-second", "empty-first", "same-twice"],
)
async def test_a_purpose_repeated_in_any_form_is_invalid_header(
    harness: Harness, fields: list[tuple[str, str]]
) -> None:
    response = await send_fields(harness, SABOOJSATHI, "GET", ROSTER, fields)

    assert response.status_code == 400
    assert response.headers["x-road-error"] == "Client.invalid_header"
    record = await _only_record(harness)
    assert record["upstream_called"] is False
    assert record["reason"] == "duplicate_x_road_purpose"


@pytest.mark.parametrize(
    "joined",
    [
        "saboojsathi-roster, kanyashree-eligibility",
        "saboojsathi-roster,saboojsathi-roster",
        "saboojsathi-roster,",
    ],
)
async def test_a_comma_joined_purpose_is_not_read_as_one_of_its_parts(
    harness: Harness, joined: str
) -> None:
    fields = [("x-road-purpose", joined)]

    response = await send_fields(harness, SABOOJSATHI, "GET", ROSTER, fields)

    record = await _only_record(harness)
    assert record["upstream_called"] is False
    assert 400 <= response.status_code < 500
    assert record["purpose"] in (None, "")


@pytest.mark.parametrize(
    "fields",
    [
        [("Content-Type", "application/json"), ("content-type", "text/plain")],
        [("content-type", "application/json"), ("CONTENT-TYPE", "")],
        [("content-type", "application/json")] * 2,
    ],
    ids=["case", "empty-second", "same-twice"],
)
async def test_a_content_type_repeated_in_any_form_is_invalid_header(
    harness: Harness, fields: list[tuple[str, str]]
) -> None:
    purpose = [("x-road-purpose", "kanyashree-eligibility")]

    response = await send_fields(harness, KANYASHREE, "POST", VERIFY, purpose + fields)

    assert response.status_code == 400
    assert response.headers["x-road-error"] == "Client.invalid_header"
    record = await _only_record(harness)
    assert record["upstream_called"] is False
    assert record["reason"] == "duplicate_content_type"


async def test_a_comma_joined_content_type_is_not_taken_for_json(
    harness: Harness,
) -> None:
    fields = [
        ("x-road-purpose", "kanyashree-eligibility"),
        ("content-type", "text/plain, application/json"),
    ]

    response = await send_fields(harness, KANYASHREE, "POST", VERIFY, fields)

    record = await _only_record(harness)
    assert 400 <= response.status_code < 500
    assert record["upstream_called"] is False
