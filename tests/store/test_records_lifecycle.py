"""The case lifecycle through the record layer, on SQLite and PostgreSQL: closing needs what `[case]
close_requires` names and stamps IsClosed and ClosedDate; a closed case is locked until an admin reopens
it, and the reopen is on the feed with the rule that allowed it; statuses that stop the clock; parent and
child cases without cycles; merging moves everything to the master; deleting takes the case's records
with it; every change of a field is on the feed with who, old and new value."""

from __future__ import annotations

from datetime import timedelta

import pytest
from casegate.config import CaseSettings, StatusValue
from casegate.store import records
from casegate.store.database import Database
from casegate.store.models import (
    Attachment,
    Case,
    CaseComment,
    CaseFeed,
    ConversationEntry,
    EmailMessage,
    ThreadReference,
)
from casegate.store.records import RecordPolicy
from sqlalchemy import insert, select

from tests.store.test_records import NOW, Team, count, feed, feed_bodies, make_team, refused

LATER = NOW + timedelta(hours=2)
RESOLVED = {"Reason": "Existing problem", "Resolution": "Replaced the fuser"}


@pytest.fixture
async def team(db: Database) -> Team:
    return await make_team(db)


async def open_case(db: Database, team: Team, **fields: object) -> str:
    return await records.create(db, "Case", {"Subject": "Printer on fire", **fields}, team.ann, auto_assign=False,
                                now=NOW)


async def test_closing_needs_reason_and_resolution_and_stamps_closed_date(db: Database, team: Team) -> None:
    case_id = await open_case(db, team)
    before = await feed(db, case_id)
    e = await refused(records.update(db, "Case", case_id, {"Status": "Closed", "Reason": "Other"}, team.ann))
    assert (e.status, e.code, e.fields) == (400, "REQUIRED_FIELD_MISSING", ["Resolution"])
    assert e.message == "Required fields are missing: [Resolution] (to close a case)"
    assert (await records.read(db, "Case", case_id, ["Status", "Reason"]))["Status"] == "New"
    assert await feed(db, case_id) == before
    await records.update(db, "Case", case_id, {"Status": "closed", **RESOLVED}, team.ann, now=LATER)
    got = await records.read(db, "Case", case_id)
    assert (got["Status"], got["IsClosed"], got["ClosedDate"], got["IsClosedOnCreate"], got["LastModifiedDate"]) == (
        "Closed", True, "2026-12-02T14:00:00.000+0000", False, "2026-12-02T14:00:00.000+0000")
    assert (await feed(db, case_id))[len(before):] == [
        ("TrackedChange", "Reason", None, "Existing problem", team.ann.user_id, None),
        ("TrackedChange", "Status", "New", "Closed", team.ann.user_id, None),
        ("TrackedChange", "Resolution", None, "Replaced the fuser", team.ann.user_id, None)]
    assert "closed by Ann" in (await feed_bodies(db, case_id))[-2]


async def test_what_closing_requires_is_configured(db: Database, team: Team) -> None:
    nothing = RecordPolicy(case=CaseSettings(close_requires=[]))
    case_id = await records.create(db, "Case", {"Subject": "x", "Status": "Closed"}, team.shop, policy=nothing,
                                   now=NOW)
    got = await records.read(db, "Case", case_id)
    assert (got["IsClosed"], got["IsClosedOnCreate"], got["ClosedDate"]) == (True, True, "2026-12-02T12:00:00.000+0000")
    satisfied = RecordPolicy(case=CaseSettings(close_requires=["SatisfactionScore"]))
    other = await open_case(db, team)
    e = await refused(records.update(db, "Case", other, {"Status": "Closed", **RESOLVED}, team.ann, policy=satisfied))
    assert e.fields == ["SatisfactionScore"]
    await records.update(db, "Case", other, {"Status": "Closed", "SatisfactionScore": 5}, team.ann, policy=satisfied)


async def test_a_closed_case_is_locked_until_an_admin_reopens_it(db: Database, team: Team) -> None:
    case_id = await open_case(db, team, **RESOLVED)
    await records.update(db, "Case", case_id, {"Status": "Closed"}, team.ann, now=NOW)
    closed = await records.read(db, "Case", case_id)
    entries = await feed(db, case_id)
    for actor in (team.ann, team.supervisor, team.shop, team.admin):
        e = await refused(records.update(db, "Case", case_id, {"Subject": "edited"}, actor))
        assert (e.status, e.code) == (400, "ENTITY_IS_LOCKED") and "00001000 is closed" in e.message
    for actor in (team.ann, team.supervisor, team.shop):
        e = await refused(records.update(db, "Case", case_id, {"Status": "Working"}, actor))
        assert (e.status, e.code) == (403, "INSUFFICIENT_ACCESS_OR_READONLY")
        assert "only an admin reopens a closed case" in e.message
    for call in (records.create(db, "CaseComment", {"ParentId": case_id, "CommentBody": "late"}, team.ann),
                 records.delete(db, "Case", case_id, team.admin)):
        assert (await refused(call)).code == "ENTITY_IS_LOCKED"
    assert await records.read(db, "Case", case_id) == closed and await feed(db, case_id) == entries

    await records.update(db, "Case", case_id, {"Status": "Working", "Priority": "High"}, team.admin, now=LATER)
    got = await records.read(db, "Case", case_id)
    assert (got["Status"], got["IsClosed"], got["ClosedDate"], got["LastModifiedById"]) == (
        "Working", False, None, team.admin.user_id)
    assert (await feed(db, case_id))[len(entries):] == [
        ("TrackedChange", "Status", "Closed", "Working", team.admin.user_id, "access.closed_case_reopen"),
        ("TrackedChange", "Priority", "Medium", "High", team.admin.user_id, None)]
    assert "reopened by Root" in (await feed_bodies(db, case_id))[len(entries)]
    await records.update(db, "Case", case_id, {"Subject": "edited"}, team.ann)  # open again: the owner edits it


async def test_statuses_that_stop_the_clock(db: Database, team: Team) -> None:
    case_id = await open_case(db, team)
    await records.update(db, "Case", case_id, {"Status": "On Hold"}, team.ann, now=NOW)
    got = await records.read(db, "Case", case_id, ["IsStopped", "StopStartDate"])
    assert (got["IsStopped"], got["StopStartDate"]) == (True, "2026-12-02T12:00:00.000+0000")
    await records.update(db, "Case", case_id, {"Subject": "still waiting"}, team.ann, now=LATER)
    assert (await records.read(db, "Case", case_id, ["StopStartDate"]))["StopStartDate"] == \
        "2026-12-02T12:00:00.000+0000"
    await records.update(db, "Case", case_id, {"Status": "Working"}, team.ann, now=LATER)
    got = await records.read(db, "Case", case_id, ["IsStopped", "StopStartDate"])
    assert (got["IsStopped"], got["StopStartDate"]) == (False, None)
    await records.update(db, "Case", case_id, {"IsStopped": True}, team.ann, now=LATER)
    assert (await records.read(db, "Case", case_id, ["StopStartDate"]))["StopStartDate"] == \
        "2026-12-02T14:00:00.000+0000"


async def test_the_statuses_and_picklists_are_configured(db: Database, team: Team) -> None:
    policy = RecordPolicy(case=CaseSettings(
        statuses=[StatusValue(name="Open"), StatusValue(name="Waiting", stops_clock=True),
                  StatusValue(name="Solved", closed=True), StatusValue(name="Dropped", closed=True)],
        default_status="Open", types=["Billing"], close_requires=["Type"]))
    case_id = await records.create(db, "Case", {"Subject": "x"}, team.shop, policy=policy)
    assert (await records.read(db, "Case", case_id, ["Status"]))["Status"] == "Open"
    e = await refused(records.update(db, "Case", case_id, {"Status": "New"}, team.shop, policy=policy))
    assert e.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    e = await refused(records.update(db, "Case", case_id, {"Status": "Dropped"}, team.shop, policy=policy))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["Type"])
    await records.update(db, "Case", case_id, {"Status": "Dropped", "Type": "billing"}, team.shop, policy=policy)
    got = await records.read(db, "Case", case_id, ["Status", "Type", "IsClosed"])
    assert (got["Status"], got["Type"], got["IsClosed"]) == ("Dropped", "Billing", True)


async def test_parent_and_child_cases_never_make_a_cycle(db: Database, team: Team) -> None:
    top = await open_case(db, team)
    middle = await open_case(db, team, ParentId=top)
    bottom = await open_case(db, team, ParentId=middle)
    e = await refused(records.update(db, "Case", top, {"ParentId": bottom}, team.ann))
    assert (e.code, e.fields) == ("FIELD_INTEGRITY_EXCEPTION", ["ParentId"])
    assert "cannot be its own ancestor" in e.message
    e = await refused(records.update(db, "Case", top, {"ParentId": top}, team.ann))
    assert "cannot be its own parent" in e.message
    await records.update(db, "Case", bottom, {"ParentId": top}, team.ann)
    await records.update(db, "Case", middle, {"ParentId": bottom}, team.ann)  # top <- bottom <- middle: no cycle
    await records.update(db, "Case", middle, {"ParentId": None}, team.ann)
    assert (await feed(db, middle))[-2:] == [
        ("TrackedChange", "ParentId", top, bottom, team.ann.user_id, None),
        ("TrackedChange", "ParentId", bottom, None, team.ann.user_id, None)]


async def test_every_tracked_field_is_on_the_feed_with_who_old_and_new(db: Database, team: Team) -> None:
    account = await records.create(db, "Account", {"Name": "Acme"}, team.shop)
    contact = await records.create(db, "Contact", {"LastName": "Lovelace", "AccountId": account}, team.shop)
    case_id = await open_case(db, team, Type="Problem")
    start = len(await feed(db, case_id))
    change = {"Subject": "Printer still on fire", "Priority": "High", "Type": "Question", "OwnerId": team.billing,
              "ContactId": contact, "IsEscalated": True, "SlaStartDate": "2026-12-02T12:30:00Z"}
    await records.update(db, "Case", case_id, change, team.ann, now=LATER)
    assert (await feed(db, case_id))[start:] == [
        ("TrackedChange", "Subject", "Printer on fire", "Printer still on fire", team.ann.user_id, None),
        ("TrackedChange", "Type", "Problem", "Question", team.ann.user_id, None),
        ("TrackedChange", "Priority", "Medium", "High", team.ann.user_id, None),
        ("TrackedChange", "IsEscalated", "false", "true", team.ann.user_id, None),
        ("TrackedChange", "OwnerId", team.ann.user_id, team.billing, team.ann.user_id, None),
        ("TrackedChange", "ContactId", None, contact, team.ann.user_id, None),
        ("TrackedChange", "AccountId", None, account, team.ann.user_id, None),  # the contact's account came along
        ("TrackedChange", "SlaStartDate", None, "2026-12-02T12:30:00.000+0000", team.ann.user_id, None)]
    got = await records.read(db, "Case", case_id, ["LastModifiedDate", "LastModifiedById", "CreatedById"])
    assert got["LastModifiedDate"] == "2026-12-02T14:00:00.000+0000" and got["LastModifiedById"] == team.ann.user_id
    end = len(await feed(db, case_id))
    await records.update(db, "Case", case_id, {"Subject": "Printer still on fire"}, team.ann)  # no change, no entry
    assert len(await feed(db, case_id)) == end


async def add_messages(db: Database, team: Team, case_id: str) -> str:
    """An email with an attachment, a comment, a messaging entry and the email's thread reference on the case;
    the email's Id."""
    email_id = await records.create(db, "EmailMessage", {"ParentId": case_id, "Incoming": True, "Subject": "dup"},
                                    team.shop, now=NOW)
    await records.create(db, "CaseComment", {"ParentId": case_id, "CommentBody": "seen"}, team.admin, now=NOW)
    async with db.engine.begin() as conn:
        await conn.execute(insert(Attachment).values(Id="00P" + case_id[3:], ParentId=case_id, EmailMessageId=email_id,
                                                     Name="log.txt", BodyLength=3, Sha256="0" * 64, CreatedDate=NOW))
        await conn.execute(insert(ConversationEntry).values(
            Id="0Mw" + case_id[3:], ParentId=case_id, Channel="sms", EntryType="Text", ActorType="EndUser",
            Message="also this", MessageIdentifier=f"SM{case_id}", EntryTime=NOW, CreatedDate=NOW))
        for key in (f"<{case_id}@example.org>", "<shared@example.org>"):
            await conn.execute(insert(ThreadReference).values(MessageKey=key, CaseId=case_id, CreatedDate=NOW))
    return email_id


async def thread_keys(db: Database, case_id: str) -> set[str]:
    async with db.engine.connect() as conn:
        return set((await conn.execute(select(ThreadReference.MessageKey).where(ThreadReference.CaseId == case_id)))
                   .scalars())


async def test_merge_moves_everything_to_the_master_and_says_so_on_both_feeds(db: Database, team: Team) -> None:
    master = await open_case(db, team)
    dup = await open_case(db, team, Subject="Printer on fire (again)")
    child = await open_case(db, team, ParentId=dup)
    await add_messages(db, team, master)
    await add_messages(db, team, dup)
    await records.merge(db, master, [dup], team.ann, now=LATER)

    got = await records.read(db, "Case", dup)
    assert (got["MasterRecordId"], got["Status"], got["IsClosed"], got["ClosedDate"]) == (
        master, "Closed", True, "2026-12-02T14:00:00.000+0000")
    for model in (EmailMessage, CaseComment, ConversationEntry, Attachment):
        assert (await count(db, model, ParentId=master), await count(db, model, ParentId=dup)) == (2, 0), model
    assert await thread_keys(db, master) == {f"<{master}@example.org>", f"<{dup}@example.org>",
                                             "<shared@example.org>"}
    assert await thread_keys(db, dup) == set()
    assert (await records.read(db, "Case", child, ["ParentId"]))["ParentId"] == master
    assert (await feed(db, dup))[-3:] == [
        ("TrackedChange", "Status", "New", "Closed", team.ann.user_id, None),
        ("TrackedChange", "MasterRecordId", None, master, team.ann.user_id, None),
        ("CaseMerged", None, None, None, team.ann.user_id, None)]
    moved = "1 email message, 1 case comment, 1 messaging entry, 1 attachment, 1 child case"
    assert (await feed_bodies(db, dup))[-1] == f"Merged into case 00001000 by Ann ({team.ann.user_id}); " \
                                               f"moved there: {moved}"
    assert (await feed_bodies(db, master))[-1] == f"Case 00001001 merged into this case by Ann " \
                                                  f"({team.ann.user_id}); moved here: {moved}"
    assert (await feed(db, child))[-1] == ("TrackedChange", "ParentId", dup, master, team.ann.user_id, None)
    e = await refused(records.merge(db, master, [dup], team.ann))  # the duplicate is closed now: locked
    assert e.code == "ENTITY_IS_LOCKED"


async def test_a_refused_merge_moves_nothing(db: Database, team: Team) -> None:
    master = await open_case(db, team)
    dup = await open_case(db, team)
    others = await records.create(db, "Case", {"Subject": "bob's"}, team.bob, auto_assign=False)
    await add_messages(db, team, dup)
    cases: list[tuple[str, list[str], str, int]] = [
        (master, [master], "FIELD_INTEGRITY_EXCEPTION", 400), (master, [dup, dup], "FIELD_INTEGRITY_EXCEPTION", 400),
        (master, [], "REQUIRED_FIELD_MISSING", 400), (master, [dup, others, dup[:15]], "LIMIT_EXCEEDED", 400),
        (master, [dup, others], "INSUFFICIENT_ACCESS_OR_READONLY", 403), (master, ["500" + "0" * 12 + "AAA"],
                                                                         "NOT_FOUND", 404),
        (master, ["003" + "0" * 12 + "AAA"], "MALFORMED_ID", 400)]
    for m, dups, code, status in cases:
        e = await refused(records.merge(db, m, dups, team.ann))
        assert (e.code, e.status) == (code, status), (dups, e)
    assert (await count(db, EmailMessage, ParentId=dup), await count(db, Case, MasterRecordId=None)) == (1, 3)
    assert await thread_keys(db, dup) == {f"<{dup}@example.org>", "<shared@example.org>"}


async def test_deleting_a_case_takes_its_records_and_frees_its_children(db: Database, team: Team) -> None:
    parent = await open_case(db, team)
    child = await open_case(db, team, ParentId=parent)
    await add_messages(db, team, parent)
    await records.delete(db, "Case", parent, team.ann)
    for model in (EmailMessage, CaseComment, ConversationEntry, Attachment, CaseFeed):
        assert await count(db, model, ParentId=parent) == 0, model
    assert await thread_keys(db, parent) == set()
    assert (await records.read(db, "Case", child, ["ParentId"]))["ParentId"] is None
    assert (await feed(db, child))[-1] == ("TrackedChange", "ParentId", parent, None, team.ann.user_id, None)
    assert "parent case 00001000 deleted by Ann" in (await feed_bodies(db, child))[-1]
    assert (await refused(records.read(db, "Case", parent))).code == "NOT_FOUND"
