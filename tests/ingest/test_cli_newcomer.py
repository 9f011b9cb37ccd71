"""`casegate` as a new user first meets it: run in an empty folder, or in the wrong one.

`db upgrade` makes the SQLite data directory and migrates; read-only commands never create a store (a
missing SQLite file or bus log is one line naming the path and what to do, exit 1); a store at the wrong
schema is named in the message, with the advice that fits its kind (SQLite or PostgreSQL); no traceback
ever; and every option of every command says what it does in `--help`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from casegate.ingest.app.cli import _parser
from casegate.store.migrate import head_revision, upgrade
from sqlalchemy.engine import make_url

from tests.ingest.test_daemon_process import CASEGATE
from tests.services import free_port

HINT = "run casegate in the folder it uses, or pass --config / set CASEGATE_DATA_DIR"


def casegate(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`casegate ARGS` run in `folder` with none of the caller's CASEGATE_* settings, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")}
    return subprocess.run([CASEGATE, *args], cwd=folder, env={**clean, **env}, capture_output=True, text=True,
                          timeout=60)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The single line the command wrote to stderr (no traceback, nothing else)."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- db upgrade -----------------------------------------------------------------------------------
def test_db_upgrade_in_an_empty_folder_makes_the_data_directory_and_migrates(tmp_path: Path) -> None:
    r = casegate(tmp_path, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    store = (tmp_path / "casegate-data" / "cases.db").resolve()
    assert store.is_file()
    assert f"case store {store}: migrated to schema {head_revision()} (it was empty)" in r.stdout

    again = casegate(tmp_path, "db", "upgrade")
    assert again.returncode == 0 and f"case store {store}: already at schema {head_revision()}" in again.stdout

    listed = casegate(tmp_path, "cases", "list")  # what the newcomer does next
    assert listed.returncode == 0 and "no cases" in listed.stdout, listed.stderr


def test_db_upgrade_where_the_data_directory_is_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "casegate-data").write_text("not a directory\n")
    r = casegate(tmp_path, "db", "upgrade")
    assert r.returncode == 2
    line = one_line(r)
    assert str((tmp_path / "casegate-data").resolve()) in line and "Not a directory" in line, line


def test_db_upgrade_of_an_in_memory_store_is_a_settings_error(tmp_path: Path) -> None:
    r = casegate(tmp_path, "db", "upgrade", CASEGATE_STORE__URL="sqlite+aiosqlite://")
    assert r.returncode == 2
    assert "in-memory" in one_line(r) and "store.url" in one_line(r)


def test_db_upgrade_of_an_unreachable_postgresql_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://casegate:s3cret@127.0.0.1:{free_port()}/casegate"
    r = casegate(tmp_path, "db", "upgrade", CASEGATE_STORE__URL=url)
    assert r.returncode == 1
    line = one_line(r)
    assert line.startswith("casegate: cannot migrate the case store postgresql+asyncpg://casegate:***@127.0.0.1:")
    assert "s3cret" not in r.stderr + r.stdout


# -- read-only commands in the wrong folder -------------------------------------------------------
READ_ONLY = [("cases", "list"), ("cases", "list", "--json"), ("cases", "show", "00001000"),
             ("messages", "export"), ("messages", "show", "<a@b>")]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_read_only_commands_in_a_folder_without_a_store_create_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = casegate(tmp_path, *args)
    assert r.returncode == 1
    store = (tmp_path / "casegate-data" / "cases.db").resolve()
    assert one_line(r) == f"casegate: no case store at {store} — {HINT} (`casegate run` or `casegate db upgrade` " \
                          "creates a new one)"
    assert files_under(tmp_path) == []


def test_read_only_commands_name_a_configured_sqlite_file_that_is_missing(tmp_path: Path) -> None:
    r = casegate(tmp_path, "cases", "list", CASEGATE_STORE__URL=f"sqlite+aiosqlite:///{tmp_path}/elsewhere/c.db")
    assert r.returncode == 1
    assert one_line(r) == f"casegate: no case store at {tmp_path}/elsewhere/c.db (store.url) — check store.url, or " \
                          "run `casegate db upgrade` to create it"
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("action", ["list", "replay"])
def test_dlq_in_a_folder_without_a_bus_log_creates_nothing(tmp_path: Path, action: str) -> None:
    r = casegate(tmp_path, "dlq", action)
    assert r.returncode == 1
    bus = (tmp_path / "casegate-data" / "bus.db").resolve()
    assert one_line(r) == f"casegate: no bus log at {bus} — {HINT}"
    assert files_under(tmp_path) == []


def test_the_data_directory_is_found_with_casegate_data_dir_from_another_folder(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    assert casegate(home, "db", "upgrade").returncode == 0
    r = casegate(elsewhere, "cases", "list", CASEGATE_DATA_DIR=str(home / "casegate-data"))
    assert r.returncode == 0 and "no cases" in r.stdout, r.stderr
    assert files_under(elsewhere) == []


# -- a store at the wrong schema says which store and what to do -----------------------------------
def test_an_old_sqlite_store_is_named_with_how_it_gets_migrated(tmp_path: Path) -> None:
    data = tmp_path / "casegate-data"
    data.mkdir()
    store = (data / "cases.db").resolve()
    upgrade(f"sqlite+aiosqlite:///{store}", "0004")
    r = casegate(tmp_path, "cases", "list")
    assert r.returncode == 1
    assert one_line(r) == (f"casegate: case store {store} is at schema revision 0004, this casegate needs "
                           f"{head_revision()}: `casegate run` migrates it at start, or run `casegate db upgrade`")
    up = casegate(tmp_path, "db", "upgrade")
    assert up.returncode == 0 and f"migrated to schema {head_revision()} (it was at 0004)" in up.stdout
    assert casegate(tmp_path, "cases", "list").returncode == 0


def test_an_empty_sqlite_file_is_named_as_never_migrated(tmp_path: Path) -> None:
    data = tmp_path / "casegate-data"
    data.mkdir()
    (data / "cases.db").touch()  # what earlier versions left behind in a wrong folder
    r = casegate(tmp_path, "messages", "export")
    assert r.returncode == 1
    line = one_line(r)
    assert f"case store {(data / 'cases.db').resolve()} has never been migrated" in line
    assert "PostgreSQL" not in line and "casegate db upgrade" in line


def test_a_sqlite_store_without_auto_migrate_says_run_does_not_migrate_it(tmp_path: Path) -> None:
    (tmp_path / "casegate-data").mkdir()
    (tmp_path / "casegate-data" / "cases.db").touch()
    r = casegate(tmp_path, "cases", "list", CASEGATE_STORE__AUTO_MIGRATE="false")
    assert r.returncode == 1
    assert one_line(r).endswith("run `casegate db upgrade` (store.auto_migrate is false, so `casegate run` "
                                "does not migrate it)")


@pytest.mark.postgres
def test_an_unmigrated_postgresql_store_is_named_and_never_migrated_implicitly(tmp_path: Path,
                                                                                pg_db_url: str) -> None:
    r = casegate(tmp_path, "cases", "list", CASEGATE_STORE__URL=pg_db_url)
    assert r.returncode == 1
    shown = make_url(pg_db_url).render_as_string(hide_password=True)
    assert one_line(r) == (f"casegate: case store {shown} has never been migrated, this casegate needs "
                           f"{head_revision()}: run `casegate db upgrade` (PostgreSQL is never migrated implicitly)")
    up = casegate(tmp_path, "db", "upgrade", CASEGATE_STORE__URL=pg_db_url)
    assert up.returncode == 0 and f"case store {shown}: migrated to schema {head_revision()}" in up.stdout
    assert casegate(tmp_path, "cases", "list", CASEGATE_STORE__URL=pg_db_url).returncode == 0
    assert files_under(tmp_path) == []


def test_a_store_migrated_by_a_newer_casegate_says_so(tmp_path: Path) -> None:
    data = tmp_path / "casegate-data"
    data.mkdir()
    store = (data / "cases.db").resolve()
    url = f"sqlite+aiosqlite:///{store}"
    upgrade(url)

    async def bump() -> None:
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        await engine.dispose()

    asyncio.run(bump())
    r = casegate(tmp_path, "cases", "list")
    assert r.returncode == 1
    assert one_line(r) == (f"casegate: case store {store} is at schema revision 9999, which this casegate does not "
                           f"know (it knows up to {head_revision()}): it was migrated by a newer casegate; use that")


# -- help -----------------------------------------------------------------------------------------
def _every_parser(p: argparse.ArgumentParser, path: str = "casegate") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(path, p)]
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _every_parser(sub, f"{path} {name}")
    return out


def _helped(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """What `--help` shows one line of: each option and argument, and each subcommand (not their group)."""
    out: list[argparse.Action] = []
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            out += a._choices_actions
        elif not isinstance(a, argparse._HelpAction):
            out.append(a)
    return out


def test_every_option_and_argument_of_every_command_has_help() -> None:
    missing = [f"{path}: {'/'.join(a.option_strings) or a.dest}"
               for path, p in _every_parser(_parser()) for a in _helped(p) if not (a.help or "").strip()]
    assert missing == []
    commands = [path for path, p in _every_parser(_parser())]
    assert "casegate cases list" in commands and len(commands) >= 13


def test_help_reads_well_from_the_real_command(tmp_path: Path) -> None:
    top = casegate(tmp_path, "--help")
    assert top.returncode == 0
    for command in ("run", "db", "cases", "messages", "dlq", "mailboxes"):
        assert f"    {command} " in top.stdout, top.stdout
    listing = casegate(tmp_path, "cases", "list", "--help")
    assert listing.returncode == 0
    for option in ("--status", "--owner", "--origin", "--since", "--limit", "--page", "--offset", "--json",
                   "--config"):
        assert option in listing.stdout, listing.stdout
    assert "newest first" in listing.stdout and "default: 50" in listing.stdout
    assert files_under(tmp_path) == []
