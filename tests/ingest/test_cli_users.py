"""`casegate users`: add, role, token (alone on the last line), revoke, join, list — run as an operator
runs it, against a SQLite store in a folder; mistakes are one line naming the value, exit 1 or 2."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from casegate.store.access import authenticate
from casegate.store.database import Database
from casegate.store.owners import ensure_owners

from tests.ingest.test_cli_newcomer import casegate, one_line


def test_an_operator_adds_a_user_gives_a_token_and_revokes_it(tmp_path: Path) -> None:
    assert casegate(tmp_path, "db", "upgrade").returncode == 0
    url = f"sqlite+aiosqlite:///{tmp_path / 'casegate-data' / 'cases.db'}"

    added = casegate(tmp_path, "users", "add", "Ada@Example.org", "--role", "Agent", "--name", "Ada Lovelace")
    assert added.returncode == 0, added.stderr
    assert "added ada@example.org (agent)" in added.stdout

    made = casegate(tmp_path, "users", "token", "ada@example.org")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("cg_") and made.stdout.strip() == token  # alone on its line, nothing else on stdout

    async def queues_and_actor() -> tuple[dict[str, str], object]:
        db = Database(url)
        try:
            owners = await ensure_owners(db, ["queue:Billing"])
            return owners, await authenticate(db, token)
        finally:
            await db.dispose()

    owners, actor = asyncio.run(queues_and_actor())
    assert actor is not None and actor.role == "agent"  # type: ignore[attr-defined]

    assert casegate(tmp_path, "users", "join", "Billing", "ada@example.org").returncode == 0
    assert casegate(tmp_path, "users", "role", "ada@example.org", "supervisor").returncode == 0
    listed = casegate(tmp_path, "users", "list", "--json")
    assert json.loads(listed.stdout) == [{
        "Id": json.loads(listed.stdout)[0]["Id"], "Email": "ada@example.org", "Name": "Ada Lovelace",
        "Role": "supervisor", "IsActive": True, "Queues": ["Billing"], "Tokens": 1}]
    table = casegate(tmp_path, "users", "list")
    assert "ada@example.org" in table.stdout and "supervisor" in table.stdout and "(1 user)" in table.stdout

    revoked = casegate(tmp_path, "users", "revoke", token)
    assert revoked.returncode == 0 and "revoked a token of ada@example.org" in revoked.stdout
    assert asyncio.run(queues_and_actor())[1] is None
    again = casegate(tmp_path, "users", "revoke", token)
    assert again.returncode == 1 and "revoked already" in one_line(again)
    assert owners["queue:Billing"].startswith("00G")


def test_mistakes_are_one_line_naming_the_value(tmp_path: Path) -> None:
    assert casegate(tmp_path, "db", "upgrade").returncode == 0
    assert casegate(tmp_path, "users", "add", "bo@example.org", "--role", "admin").returncode == 0
    cases = [
        (("users", "add", "bo@example.org", "--role", "agent"), 1, "a user bo@example.org exists already"),
        (("users", "add", "not-an-address", "--role", "agent"), 1, "not an email address: 'not-an-address'"),
        (("users", "add", "cy@example.org", "--role", "boss"), 2, "invalid choice: 'boss'"),
        (("users", "token", "nobody@example.org"), 1, "no user nobody@example.org"),
        (("users", "join", "Nowhere", "bo@example.org"), 1, "no queue 'Nowhere'"),
        (("users", "revoke", "cg_nope"), 1, "no such token"),
    ]
    for args, code, words in cases:
        r = casegate(tmp_path, *args)
        assert r.returncode == code, (args, r.stderr)
        assert words in r.stderr.strip().splitlines()[-1], (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_users_needs_a_migrated_store_and_says_so(tmp_path: Path) -> None:
    r = casegate(tmp_path, "users", "list")
    assert r.returncode == 1
    assert "no case store at" in one_line(r) and "`casegate db upgrade` creates a new one" in one_line(r)
    assert not (tmp_path / "casegate-data" / "cases.db").exists()
