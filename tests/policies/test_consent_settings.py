"""The consent store setting of node.yaml: SQLite by default, PostgreSQL by choice."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.settings import ConsentStoreSettings


def test_sqlite_is_the_default() -> None:
    assert ConsentStoreSettings().store == "sqlite"


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"store": "postgres"}, "needs postgres_dsn"),
        ({"store": "postgres", "postgres_dsn": ""}, "needs postgres_dsn"),
        ({"postgres_schema": "Bad; DROP"}, "pattern"),
        ({"store": "redis"}, "sqlite"),
    ],
)
def test_bad_consent_store_setting_is_refused(
    values: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        ConsentStoreSettings(**values)
