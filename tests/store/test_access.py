"""Users and tokens in the store, on SQLite and PostgreSQL: a token speaks for its user's role and
queues until it is revoked or expires or the user is made inactive; only its hash is kept; bad input is
refused naming the value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casegate.store import access
from casegate.store.access import AccessError, authenticate, hash_token, issue_token
from casegate.store.database import Database
from casegate.store.models import ApiToken, Queue, User
from casegate.store.owners import ensure_owners
from sqlalchemy import select, update

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


async def test_a_token_speaks_for_its_user_with_role_and_queues(db: Database) -> None:
    owners = await ensure_owners(db, ["queue:Billing", "queue:Support"])
    ada = await access.add_user(db, "Ada@Example.org", "agent", "Ada Lovelace")
    assert (ada.email, ada.name, ada.role, ada.id[:3]) == ("ada@example.org", "Ada Lovelace", "agent", "005")
    await access.add_member(db, "Billing", "ada@example.org")
    await access.add_member(db, "Billing", "ada@example.org")  # twice is once
    token = await issue_token(db, "ada@example.org", now=NOW)
    assert token.startswith("cg_") and len(token) == 46

    actor = await authenticate(db, token, now=NOW)
    assert actor is not None
    assert (actor.user_id, actor.role, actor.queue_ids) == (ada.id, "agent", frozenset({owners["queue:Billing"]}))
    (listed,) = await access.list_users(db, now=NOW)
    assert (listed.queues, listed.tokens) == (("Billing",), 1)

    async with db.session() as s:
        kept = (await s.execute(select(ApiToken.TokenHash, ApiToken.Hint))).one()
    assert kept.TokenHash == hash_token(token) and token not in kept.TokenHash and kept.Hint == token[:10]


async def test_revoked_expired_unknown_and_inactive_speak_for_no_one(db: Database) -> None:
    await access.add_user(db, "bo@example.org", "supervisor")
    revoked = await issue_token(db, "bo@example.org", now=NOW)
    expiring = await issue_token(db, "bo@example.org", "access", ttl=timedelta(hours=2), now=NOW)
    refresh = await issue_token(db, "bo@example.org", "refresh", now=NOW)
    assert await authenticate(db, expiring, now=NOW + timedelta(minutes=119)) is not None
    assert await authenticate(db, expiring, now=NOW + timedelta(hours=2)) is None
    assert await authenticate(db, refresh, now=NOW) is None  # a refresh token is not a bearer token
    assert await authenticate(db, refresh, now=NOW, kinds=("refresh",)) is not None

    assert await access.revoke_token(db, revoked) == "bo@example.org"
    assert await authenticate(db, revoked, now=NOW) is None
    with pytest.raises(AccessError, match="revoked already"):
        await access.revoke_token(db, revoked)
    with pytest.raises(AccessError, match="no such token"):
        await access.revoke_token(db, "cg_" + "x" * 43)
    assert await authenticate(db, "cg_" + "x" * 43, now=NOW) is None
    assert await authenticate(db, "not-a-token", now=NOW) is None

    live = await issue_token(db, "bo@example.org", now=NOW)
    async with db.engine.begin() as conn:
        await conn.execute(update(User).values(IsActive=False))
    assert await authenticate(db, live, now=NOW) is None
    with pytest.raises(AccessError, match="inactive"):
        await issue_token(db, "bo@example.org")


async def test_last_used_is_written_at_most_once_a_minute(db: Database) -> None:
    await access.add_user(db, "cy@example.org", "integration")
    token = await issue_token(db, "cy@example.org", now=NOW)

    async def last_used() -> datetime | None:
        async with db.session() as s:
            value = (await s.execute(select(ApiToken.LastUsedDate))).scalar_one()
        return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)

    await authenticate(db, token, now=NOW)
    await authenticate(db, token, now=NOW + timedelta(seconds=30))
    assert await last_used() == NOW
    await authenticate(db, token, now=NOW + timedelta(seconds=61))
    assert await last_used() == NOW + timedelta(seconds=61)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda db: access.add_user(db, "not an address", "agent"), "not an email address: 'not an address'"),
        (lambda db: access.add_user(db, "dee@example.org", "boss"), "unknown role 'boss'"),
        (lambda db: access.issue_token(db, "nobody@example.org"), "no user nobody@example.org"),
        (lambda db: access.set_role(db, "nobody@example.org", "admin"), "no user nobody@example.org"),
        (lambda db: access.add_member(db, "Nowhere", "ed@example.org"), "no queue 'Nowhere'"),
    ],
)
async def test_bad_input_is_refused_naming_the_value(db: Database, call: object, words: str) -> None:
    await access.add_user(db, "ed@example.org", "agent")
    with pytest.raises(AccessError, match=words):
        await call(db)  # type: ignore[operator]
    async with db.session() as s:
        assert (await s.execute(select(Queue))).first() is None
        assert [u.Email for u in (await s.execute(select(User))).scalars()] == ["ed@example.org"]


async def test_a_user_is_added_once_and_roles_change(db: Database) -> None:
    await access.add_user(db, "fay@example.org", "agent")
    with pytest.raises(AccessError, match="exists already"):
        await access.add_user(db, "FAY@example.org", "admin")
    assert (await access.set_role(db, "fay@example.org", "Admin")).role == "admin"
