"""Schema migrations of the case store (Alembic): upgrade to head, report the current revision, and
name the store a message is about.

Alembic's environment runs its own event loop, so from async code call these in a thread.

A SQLite store is one file: `upgrade` makes its directory first (a fresh data directory), and
`store_name` shows a store as its file's path (SQLite) or its URL without the password (PostgreSQL).
`migrate_store` is the operator's `casegate db upgrade`: every failure is one line, a `MigrationError`
naming the store and the reason (`StoreLocationError` when the settings name a store that cannot be).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, pool
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class MigrationError(Exception):
    """The store could not be migrated; the message names it and says why, in one line."""


class StoreLocationError(MigrationError):
    """The settings name a store that cannot be (an in-memory SQLite, a data directory that is a file)."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite store's file; None for PostgreSQL and an in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or ":memory:" in parsed.database:
        return None
    return Path(parsed.database).absolute()


def store_name(url: str) -> str:
    """The store as messages name it: a SQLite file's path, else the URL with its password hidden."""
    path = sqlite_file(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the store at `url` to `revision` (blocking); a SQLite file's directory is made first."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def known_revision(revision: str) -> bool:
    """Whether `revision` is one of this casegate's migrations (a newer casegate's is not)."""
    try:
        return ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(connection: Connection) -> str | None:
    """The revision the connected store is at (None if never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def store_revision(url: str) -> str | None:
    """The revision of the store at `url` (blocking; runs its own event loop, like Alembic's)."""

    async def read() -> str | None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(current_revision)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def migrate_store(url: str) -> tuple[str | None, str | None]:
    """`casegate db upgrade`: migrate the store at `url` to head, making a SQLite file's directory
    (blocking). Returns the revisions before and after; every failure is a MigrationError."""
    name = store_name(url)
    if make_url(url).get_backend_name() == "sqlite" and sqlite_file(url) is None:
        raise StoreLocationError(f"store.url {name} is an in-memory SQLite database: there is nothing to migrate "
                                 "(name a file, or leave store.url empty for <data_dir>/cases.db)")
    path = sqlite_file(url)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise StoreLocationError(f"cannot make the directory of the case store {name}: "
                                     f"{e.filename or path.parent}: Not a directory") from None
        except OSError as e:
            raise MigrationError(f"cannot make the directory of the case store {name}: {_reason(e)}") from None
    try:
        before = store_revision(url)
        upgrade(url)
        return before, store_revision(url)
    except Exception as e:
        raise MigrationError(f"cannot migrate the case store {name}: {_reason(e)}") from None


def _reason(e: BaseException) -> str:
    """What went wrong, in one line: the driver's own error rather than SQLAlchemy's wrapping."""
    cause = e.orig if isinstance(e, DBAPIError) and e.orig is not None else e
    if isinstance(cause, OSError) and cause.strerror:
        text = f"{cause.strerror}: {cause.filename}" if cause.filename else cause.strerror
    else:
        text = str(cause).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
