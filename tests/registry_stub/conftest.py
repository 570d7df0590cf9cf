"""Fixtures of the registry tests: a small seeded database and a client of the app."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from registry_stub.app import create_app
from registry_stub.seed import seed_database

STUDENTS, SCHOOLS = 300, 10
#: A purpose the test registry lists as needing unmasked identity numbers.
UNMASKED_PURPOSE = "dbt-payment"


@pytest.fixture(scope="session")
def seeded_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry of 300 students in 10 schools, seeded once; copy it to change it."""
    path = tmp_path_factory.mktemp("registry") / "registry.db"
    seed_database(path, students=STUDENTS, schools=SCHOOLS)
    return path


@pytest.fixture
def db(seeded_db: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded registry that a test may change."""
    path = tmp_path / "registry.db"
    shutil.copyfile(seeded_db, path)
    return path


@pytest.fixture
async def client(db: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the registry app over the private copy, run in process."""
    app = create_app(db, purposes_unmasked=frozenset({UNMASKED_PURPOSE}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://registry") as client,
    ):
        yield client
