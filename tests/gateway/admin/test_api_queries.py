"""Admin API paging: a cursor outside what the monitoring store can hold is refused."""

from __future__ import annotations

import pytest

from gateway.admin.auth import Role, add_key
from tests.gateway.conftest import Harness

pytestmark = pytest.mark.anyio

OPMONITORING = "/admin/api/v1/opmonitoring"


@pytest.mark.parametrize(
    "after", ["9223372036854775808", "1e19", "1e300", "-1"], ids=str
)
async def test_an_opmonitoring_cursor_out_of_range_is_an_invalid_query(
    harness: Harness, after: str
) -> None:
    """SQLite integers are 64-bit: a larger cursor is the client's error, not a 500."""
    key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)[1]

    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{OPMONITORING}",
        headers={"authorization": f"ApiKey {key}"},
        params={"after": after},
    )

    assert answer.status_code == 400
    assert answer.headers["x-road-error"] == "Client.invalid_query"


async def test_the_largest_opmonitoring_cursor_is_an_empty_page(
    harness: Harness,
) -> None:
    """The top of the range is still a cursor: nothing lies after it."""
    key = add_key(harness.node.deployment.path("admin_keys.json"), Role.OPS)[1]

    answer = await harness.http.get(
        f"{harness.demo.mediator_url}{OPMONITORING}",
        headers={"authorization": f"ApiKey {key}"},
        params={"after": str(2**63 - 1)},
    )

    assert answer.status_code == 200
    assert answer.json() == {"records": [], "next_after": None}
