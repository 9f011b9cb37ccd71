"""Fixtures of the store tests: an empty case store on each database casegate supports, and a migrated one.

A migrated store is a copy of one migrated once per session (a SQLite file copied with SQLite's backup
API; a PostgreSQL database made with `CREATE DATABASE … TEMPLATE`): the same schema and rows `upgrade`
makes, in a few milliseconds instead of running every migration again for each of several hundred tests.
The migrations themselves are tested from an empty store (test_migrations.py and the `store_url` tests).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from casegate.store.database import Database
from casegate.store.migrate import upgrade
from sqlalchemy.engine import make_url

from tests.services import _admin_dsn, _create_database, _drop_database, _in_thread


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty (unmigrated) store: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    url: str = request.getfixturevalue("pg_db_url")
    return url


class MigratedTemplates:
    """One migrated store per database kind, made on first use and kept for the session."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.sqlite: Path | None = None
        self.pg: str | None = None
        self.lock = threading.Lock()

    def copy_into(self, url: str) -> None:
        """Make the empty store at `url` a migrated one."""
        if url.startswith("sqlite"):
            self._sqlite_copy(Path(make_url(url).database or ""))
        else:
            self._pg_clone(make_url(url).database or "")

    def _sqlite_copy(self, dest: Path) -> None:
        with self.lock:
            if self.sqlite is None:
                path = self.folder / "template.db"
                _off_the_loop(lambda: upgrade(f"sqlite+aiosqlite:///{path}"))
                self.sqlite = path
        src, dst = sqlite3.connect(self.sqlite), sqlite3.connect(dest)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()

    def _pg_clone(self, name: str) -> None:
        import asyncpg

        with self.lock:
            if self.pg is None:
                template, url = _create_database()
                _off_the_loop(lambda: upgrade(url))
                self.pg = template
        template = self.pg

        async def clone() -> None:
            conn = await asyncpg.connect(_admin_dsn(), timeout=5)
            try:  # the empty database the test was given becomes a copy of the migrated one, same name
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            finally:
                await conn.close()

        _in_thread(clone)

    def close(self) -> None:
        if self.pg is not None:
            _drop_database(self.pg)


def _off_the_loop(fn: Callable[[], object]) -> None:
    """Run `fn()` in a thread of its own: Alembic's env.py runs its own event loop (`asyncio.run`)."""
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="migrate-template")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(tmp_path_factory.mktemp("migrated"))
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture
async def db(store_url: str, migrated_templates: MigratedTemplates) -> AsyncIterator[Database]:
    """A migrated case store (at `store_url`) whose pool allows several connections at once."""
    await asyncio.to_thread(migrated_templates.copy_into, store_url)
    database = Database(store_url, pool_size=10)
    try:
        yield database
    finally:
        await database.dispose()
