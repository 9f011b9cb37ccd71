"""Fixtures of the store tests: an empty case store on each database casegate supports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from casegate.store.database import Database
from casegate.store.migrate import upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty (unmigrated) store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    """A migrated case store whose pool allows several connections at once."""
    await asyncio.to_thread(upgrade, store_url)
    database = Database(store_url, pool_size=10)
    try:
        yield database
    finally:
        await database.dispose()
