"""Who may change what through the record layer (`rules.access`), on SQLite and PostgreSQL: an agent changes
their own cases and their queues' cases, a supervisor and an integration any open case, an admin anything;
settings objects (users, queues, queue members) only an admin; everyone opens cases and keeps contacts,
accounts and assets. A refused change writes nothing."""

from __future__ import annotations

import pytest
from casegate.rules.access import Actor
from casegate.store import records
from casegate.store.database import Database
from casegate.store.models import CaseComment, Queue, QueueMember, User

from tests.store.test_records import NOW, Team, count, feed, make_team, refused

FORBIDDEN = (403, "INSUFFICIENT_ACCESS_OR_READONLY")


@pytest.fixture
async def team(db: Database) -> Team:
    return await make_team(db)


def who(team: Team, name: str) -> Actor:
    actor: Actor = getattr(team, name)
    return actor


async def owned_by(db: Database, team: Team, owner: str) -> str:
    """A case owned by `owner` (a Team attribute: ann, bob, billing ...)."""
    owner_id = getattr(team, owner)
    return await records.create(db, "Case", {"Subject": f"{owner}'s", "OwnerId": owner_id if isinstance(owner_id, str)
                                             else owner_id.user_id}, team.admin, now=NOW)


CASE_RIGHTS = [  # (who asks, who owns the case, may they change it)
    ("ann", "ann", True), ("ann", "billing", True), ("ann", "bob", False), ("ann", "support", False),
    ("bob", "ann", False), ("bob", "billing", False), ("supervisor", "bob", True), ("supervisor", "billing", True),
    ("shop", "ann", True), ("shop", "support", True), ("admin", "bob", True),
]


@pytest.mark.parametrize(("actor", "owner", "allowed"), CASE_RIGHTS, ids=[f"{a}-on-{o}" for a, o, _ in CASE_RIGHTS])
async def test_who_may_change_an_open_case(db: Database, team: Team, actor: str, owner: str, allowed: bool) -> None:
    case_id = await owned_by(db, team, owner)
    before, entries = await records.read(db, "Case", case_id), await feed(db, case_id)
    me = who(team, actor)
    calls = (lambda: records.update(db, "Case", case_id, {"Priority": "High"}, me),
             lambda: records.create(db, "CaseComment", {"ParentId": case_id, "CommentBody": "hi"}, me),
             lambda: records.delete(db, "Case", case_id, me))
    if allowed:
        await calls[0]()
        await calls[1]()
        assert (await records.read(db, "Case", case_id))["LastModifiedById"] == me.user_id
        await calls[2]()
        return
    for call in calls:
        e = await refused(call())
        assert (e.status, e.code) == FORBIDDEN
        assert e.message.startswith(f"insufficient access rights on object id {case_id}: ")
        assert "neither the user's nor one of their queues'" in e.message
    assert await records.read(db, "Case", case_id) == before and await feed(db, case_id) == entries
    assert await count(db, CaseComment) == 0


@pytest.mark.parametrize("actor", ["ann", "bob", "supervisor", "shop", "admin"])
async def test_everyone_opens_cases_and_keeps_contacts_accounts_and_assets(db: Database, team: Team,
                                                                           actor: str) -> None:
    me = who(team, actor)
    account = await records.create(db, "Account", {"Name": "Acme"}, me)
    contact = await records.create(db, "Contact", {"LastName": "Lovelace", "AccountId": account}, me)
    asset = await records.create(db, "Asset", {"Name": "Printer", "ContactId": contact}, me)
    await records.create(db, "Case", {"Subject": "x", "ContactId": contact, "AssetId": asset}, me)
    await records.update(db, "Contact", contact, {"FirstName": "Ada"}, me)
    await records.delete(db, "Asset", (await records.create(db, "Asset", {"Name": "Spare", "AccountId": account},
                                                            me)), me)


@pytest.mark.parametrize("actor", ["ann", "supervisor", "shop"])
async def test_only_an_admin_changes_users_queues_and_members(db: Database, team: Team, actor: str) -> None:
    me = who(team, actor)
    member = await records.create(db, "QueueMember", {"QueueId": team.support, "UserId": team.bob.user_id},
                                  team.admin)
    counts = (await count(db, User), await count(db, Queue), await count(db, QueueMember))
    calls = [lambda: records.create(db, "User", {"Email": "eve@example.org"}, me),
             lambda: records.update(db, "User", me.user_id, {"Role": "admin"}, me),
             lambda: records.update(db, "User", team.bob.user_id, {"IsActive": False}, me),
             lambda: records.delete(db, "User", team.bob.user_id, me),
             lambda: records.create(db, "Queue", {"Name": "Returns"}, me),
             lambda: records.update(db, "Queue", team.billing, {"Name": "Money"}, me),
             lambda: records.delete(db, "Queue", team.billing, me),
             lambda: records.create(db, "QueueMember", {"QueueId": team.billing, "UserId": me.user_id}, me),
             lambda: records.delete(db, "QueueMember", member, me),
             lambda: records.upsert(db, "Queue", "Name", "Billing", {"Email": "billing@example.org"}, me)]
    for call in calls:
        e = await refused(call())
        assert (e.status, e.code) == FORBIDDEN and "only an admin changes" in e.message, e
    assert (await count(db, User), await count(db, Queue), await count(db, QueueMember)) == counts
    assert (await records.read(db, "User", me.user_id, ["Role"]))["Role"] == me.role
    await records.update(db, "Queue", team.billing, {"Name": "Money"}, team.admin)
    await records.delete(db, "QueueMember", member, team.admin)
