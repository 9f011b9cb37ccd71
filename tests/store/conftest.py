"""Fixtures of the store tests: an empty case store on each database casegate supports."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty (unmigrated) store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url
