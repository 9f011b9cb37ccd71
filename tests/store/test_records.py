"""The record layer the REST API calls, on SQLite and PostgreSQL: create, read, update, delete and upsert of
every object, each refusal with Salesforce's errorCode, message and fields, and nothing written by a
refused call. (`test_records_lifecycle.py`: closing, locking, reopening, hierarchy, merge, the feed;
`test_records_access.py`: who may change what.)"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from casegate.config import AssignmentEntry, CaseSettings, RulesSettings, StatusValue
from casegate.config.case_settings import EXTERNAL_ID_FIELDS
from casegate.rules.access import Actor
from casegate.store import access, records
from casegate.store.database import Database
from casegate.store.models import Base, Case, CaseComment, CaseFeed, Contact, ContactHandle, Counter, QueueMember, User
from casegate.store.owners import ensure_owners
from casegate.store.records import RecordError, RecordPolicy
from sqlalchemy import func, insert, select

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


@dataclass(frozen=True)
class Team:
    admin: Actor
    supervisor: Actor
    ann: Actor
    """An agent, member of the Billing queue."""
    bob: Actor
    """An agent in no queue."""
    shop: Actor
    """An integration."""
    support: str
    billing: str


async def make_team(db: Database) -> Team:
    """Users of every role, as the API sees them (tokens authenticated), and the Support and Billing queues."""
    owners = await ensure_owners(db, ["queue:Support", "queue:Billing"])
    people = {"root": "admin", "sue": "supervisor", "ann": "agent", "bob": "agent", "shop": "integration"}
    actors: dict[str, Actor] = {}
    for name, role in people.items():
        await access.add_user(db, f"{name}@example.org", role, name.title())
    await access.add_member(db, "Billing", "ann@example.org")
    for name in people:
        actor = await access.authenticate(db, await access.issue_token(db, f"{name}@example.org", now=NOW), now=NOW)
        assert actor is not None
        actors[name] = actor
    return Team(actors["root"], actors["sue"], actors["ann"], actors["bob"], actors["shop"],
                owners["queue:Support"], owners["queue:Billing"])


@pytest.fixture
async def team(db: Database) -> Team:
    return await make_team(db)


async def refused(call: Awaitable[object]) -> RecordError:
    with pytest.raises(RecordError) as info:
        await call
    return info.value


async def count(db: Database, model: type[Base], **where: object) -> int:
    table = Base.metadata.tables[model.__tablename__]
    async with db.engine.connect() as conn:
        stmt = select(func.count()).select_from(table).where(*(table.c[k] == v for k, v in where.items()))
        return int((await conn.execute(stmt)).scalar_one())


async def feed(db: Database, case_id: str) -> list[tuple[Any, ...]]:
    """(Type, Field, OldValue, NewValue, CreatedById, Rule) of the case's feed, in order."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(CaseFeed.Type, CaseFeed.Field, CaseFeed.OldValue, CaseFeed.NewValue,
                                         CaseFeed.CreatedById, CaseFeed.Rule)
                                  .where(CaseFeed.ParentId == case_id)
                                  .order_by(CaseFeed.CreatedDate, CaseFeed.Seq))
        return [tuple(r) for r in rows]


async def feed_bodies(db: Database, case_id: str) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(CaseFeed.Body).where(CaseFeed.ParentId == case_id)
                                  .order_by(CaseFeed.CreatedDate, CaseFeed.Seq))
        return [r[0] or "" for r in rows]


async def case_number_counter(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(Counter.Value).where(Counter.Name == "CaseNumber"))).scalar_one())


# -- Case: create and read ---------------------------------------------------------------------------
async def test_a_new_case_is_numbered_defaulted_assigned_and_on_the_feed(db: Database, team: Team) -> None:
    case_id = await records.create(db, "Case", {"Subject": "Printer on fire", "Origin": "phone"}, team.shop, now=NOW)
    assert case_id.startswith("500") and len(case_id) == 18
    case = await records.read(db, "Case", case_id)
    assert {k: case[k] for k in ("CaseNumber", "Subject", "Status", "Priority", "Origin", "OwnerId", "IsClosed",
                                 "CreatedById", "LastModifiedById", "CreatedDate", "LastModifiedDate")} == {
        "CaseNumber": "00001000", "Subject": "Printer on fire", "Status": "New", "Priority": "Medium",
        "Origin": "Phone", "OwnerId": team.support, "IsClosed": False, "CreatedById": team.shop.user_id,
        "LastModifiedById": team.shop.user_id, "CreatedDate": "2026-12-02T12:00:00.000+0000",
        "LastModifiedDate": "2026-12-02T12:00:00.000+0000"}
    assert "attributes" not in case and case["Id"] == case_id and case["IsDeleted"] is False
    assert await feed(db, case_id) == [
        ("CaseCreated", None, None, None, team.shop.user_id, None),
        ("AssignmentRule", "OwnerId", None, "queue:Support", team.shop.user_id, "assignment.default_owner")]
    assert "created through the API by Shop" in (await feed_bodies(db, case_id))[0]
    second = await records.create(db, "Case", {"Subject": "again"}, team.shop, now=NOW)
    assert (await records.read(db, "Case", second, ["CaseNumber"]))["CaseNumber"] == "00001001"


async def test_the_owner_comes_from_the_assignment_rules_unless_given_or_auto_assign_is_off(
        db: Database, team: Team) -> None:
    policy = RecordPolicy(rules=RulesSettings(assignment=[
        AssignmentEntry(name="money", owner="queue:Billing", subject_contains=["invoice"]),
        AssignmentEntry(name="vip", owner="user:vip-desk@example.org", priority="High")]))
    by_rule = await records.create(db, "Case", {"Subject": "Invoice 12 wrong"}, team.shop, policy=policy)
    assert (await records.read(db, "Case", by_rule))["OwnerId"] == team.billing
    assert (await feed(db, by_rule))[1][2:] == (None, "queue:Billing", team.shop.user_id, "assignment.entries")
    new_owner = await records.create(db, "Case", {"Subject": "hi", "Priority": "High"}, team.shop, policy=policy)
    owner_id = (await records.read(db, "Case", new_owner))["OwnerId"]
    assert isinstance(owner_id, str) and await count(db, User, Id=owner_id, Email="vip-desk@example.org") == 1
    mine = await records.create(db, "Case", {"Subject": "invoice"}, team.ann, auto_assign=False, policy=policy)
    assert (await records.read(db, "Case", mine))["OwnerId"] == team.ann.user_id
    given = await records.create(db, "Case", {"Subject": "invoice", "OwnerId": team.bob.user_id}, team.ann,
                                 policy=policy)
    assert (await records.read(db, "Case", given))["OwnerId"] == team.bob.user_id
    assert [t for t, *_ in await feed(db, given)] == ["CaseCreated"]


async def test_a_case_takes_its_contacts_account_and_posts_its_comments(db: Database, team: Team) -> None:
    account = await records.create(db, "Account", {"Name": "Acme", "Domain": "acme.example"}, team.shop)
    contact = await records.create(db, "Contact", {"LastName": "Lovelace", "FirstName": "Ada", "AccountId": account,
                                                   "Email": "Ada@Acme.example", "MobilePhone": "+44 7700 900123"},
                                   team.shop)
    case_id = await records.create(db, "Case", {"Subject": "x", "ContactId": contact, "Comments": "called twice"},
                                   team.shop, now=NOW)
    case = await records.read(db, "Case", case_id, ["AccountId", "ContactEmail", "ContactMobile", "ContactPhone"])
    assert case == {"AccountId": account, "ContactEmail": "Ada@Acme.example", "ContactMobile": "+44 7700 900123",
                    "ContactPhone": None, "Id": case_id}
    assert await count(db, CaseComment, ParentId=case_id, CommentBody="called twice", IsPublished=False,
                       CreatedById=team.shop.user_id) == 1
    assert ("CaseCommentPost", None, None, None, team.shop.user_id, None) in await feed(db, case_id)


async def test_read_gives_salesforce_values_and_refuses_what_is_not_there(db: Database, team: Team) -> None:
    case_id = await records.create(db, "Case", {"Subject": "x", "SlaStartDate": "2026-12-01T08:30:00.250+0100",
                                                "SatisfactionScore": 4}, team.shop, now=NOW)
    got = await records.read(db, "Case", case_id, ["slastartdate", "SatisfactionScore", "IsEscalated"])
    assert got == {"SlaStartDate": "2026-12-01T07:30:00.250+0000", "SatisfactionScore": 4, "IsEscalated": False,
                   "Id": case_id}
    e = await refused(records.read(db, "Case", case_id, ["Subject", "Foo"]))
    assert (e.status, e.code, e.message, e.fields) == (400, "INVALID_FIELD",
                                                       "No such column 'Foo' on sobject of type Case", ["Foo"])
    e = await refused(records.read(db, "Case", "500" + "0" * 12 + "AAA"))
    assert (e.status, e.code, e.message) == (404, "NOT_FOUND", "The requested resource does not exist")
    e = await refused(records.read(db, "Case", "not-an-id"))
    assert (e.status, e.code, e.fields) == (400, "MALFORMED_ID", ["Id"]) and "not-an-id" in e.message
    contact = await records.create(db, "Contact", {"LastName": "X"}, team.shop)
    e = await refused(records.read(db, "Case", contact))
    assert (e.status, e.code, e.message, e.fields) == (400, "MALFORMED_ID",
                                                       f"Case ID: id value of incorrect type: {contact}", ["Id"])
    e = await refused(records.read(db, "Widget", case_id))
    assert (e.status, e.code, e.message) == (404, "INVALID_TYPE", "sObject type 'Widget' is not supported.")
    assert (await records.read(db, "case", case_id[:15], ["Id"])) == {"Id": case_id}  # 15 characters, any case


# -- every refusal of a body, and nothing written ------------------------------------------------------
MISSING_CONTACT = "003" + "0" * 12 + "AAA"
BAD_BODIES = [
    ({"Id": "500000000000000AAA"}, "INVALID_FIELD", "The Id field should not be specified in the sobject data.",
     ["Id"]),
    ({"Subject": "x", "Foo": 1}, "INVALID_FIELD", "No such column 'Foo' on sobject of type Case", ["Foo"]),
    ({"CaseNumber": "1", "IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create fields: CaseNumber, "
     "IsClosed. Please check the security settings", ["CaseNumber", "IsClosed"]),
    ({"CreatedById": MISSING_CONTACT}, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create fields: CreatedById",
     ["CreatedById"]),
    ({"Subject": "x" * 256}, "STRING_TOO_LONG", "Subject: data value too large: xxxx", ["Subject"]),
    ({"Subject": 12}, "JSON_PARSER_ERROR", "Subject: Cannot deserialize instance of string from VALUE_NUMBER_INT "
     "value 12", ["Subject"]),
    ({"IsEscalated": "yes"}, "JSON_PARSER_ERROR", "IsEscalated: Cannot deserialize instance of boolean from "
     "VALUE_STRING value yes", ["IsEscalated"]),
    ({"SlaStartDate": "tomorrow"}, "JSON_PARSER_ERROR", "datetime from VALUE_STRING value tomorrow",
     ["SlaStartDate"]),
    ({"SatisfactionScore": 2.5}, "JSON_PARSER_ERROR", "int from VALUE_NUMBER_FLOAT", ["SatisfactionScore"]),
    ({"SatisfactionScore": 6}, "NUMBER_OUTSIDE_VALID_RANGE",
     "Satisfaction Score: value outside valid range 1 to 5: 6", ["SatisfactionScore"]),
    ({"Priority": "Urgent"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
     "Priority: bad value for restricted picklist field: Urgent", ["Priority"]),
    ({"Status": None}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status: bad value for restricted picklist field: "
     "null", ["Status"]),
    ({"Origin": "Carrier pigeon"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Case Origin: bad value",
     ["Origin"]),
    ({"IsEscalated": None}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [IsEscalated]", ["IsEscalated"]),
    ({"SuppliedEmail": "nobody"}, "INVALID_EMAIL_ADDRESS", "Email Address: invalid email address: nobody",
     ["SuppliedEmail"]),
    ({"ContactId": "abc"}, "MALFORMED_ID", "Contact ID: id value of incorrect type: abc", ["ContactId"]),
    ({"ContactId": "001" + "0" * 12 + "AAA"}, "FIELD_INTEGRITY_EXCEPTION", "Contact ID: id value of incorrect type",
     ["ContactId"]),
    ({"ContactId": MISSING_CONTACT}, "FIELD_INTEGRITY_EXCEPTION",
     f"Contact ID: id value of a record that does not exist: {MISSING_CONTACT}", ["ContactId"]),
    ({"ParentId": "500" + "0" * 12 + "AAA"}, "FIELD_INTEGRITY_EXCEPTION", "Parent Case ID: id value of a record "
     "that does not exist", ["ParentId"]),
    ({"Status": "Closed"}, "REQUIRED_FIELD_MISSING", "Required fields are missing: [Reason, Resolution]",
     ["Reason", "Resolution"]),
    ({"Subject": "x", "subject": "y"}, "JSON_PARSER_ERROR", "Duplicate field in the body: Subject", ["Subject"]),
]


@pytest.mark.parametrize(("body", "code", "message", "fields"), BAD_BODIES,
                         ids=[f"{i}-{c}" for i, (_, c, _, _) in enumerate(BAD_BODIES)])
async def test_a_bad_case_body_is_refused_naming_the_field_and_nothing_is_written(
        db: Database, team: Team, body: dict[str, object], code: str, message: str, fields: list[str]) -> None:
    e = await refused(records.create(db, "Case", body, team.admin, now=NOW))
    assert (e.status, e.code, e.fields) == (400, code, fields) and message in e.message, e
    assert e.as_salesforce() == [{"message": e.message, "errorCode": code, "fields": fields}]
    assert (await count(db, Case), await count(db, CaseFeed), await case_number_counter(db)) == (0, 0, 999)


async def test_the_same_refusals_on_update_leave_the_case_as_it_was(db: Database, team: Team) -> None:
    case_id = await records.create(db, "Case", {"Subject": "kept"}, team.admin, now=NOW)
    before, entries = await records.read(db, "Case", case_id), await feed(db, case_id)
    for body, code, _, fields in BAD_BODIES[1:]:
        e = await refused(records.update(db, "Case", case_id, {"Subject": "changed?", **body}, team.admin, now=LATER))
        assert (e.code, e.fields) == (code, fields), e
    e = await refused(records.update(db, "Case", case_id, {"Id": case_id}, team.admin))
    assert (e.code, e.message) == ("INVALID_FIELD", "The Id field should not be specified in the sobject data.")
    assert await records.read(db, "Case", case_id) == before and await feed(db, case_id) == entries


# -- Contact, Account, Asset -------------------------------------------------------------------------
async def test_contacts_are_created_changed_and_deleted_with_their_match_keys(db: Database, team: Team) -> None:
    e = await refused(records.create(db, "Contact", {"FirstName": "Ada"}, team.shop))
    assert (e.code, e.message, e.fields) == ("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]",
                                             ["LastName"])
    contact = await records.create(db, "Contact", {"LastName": "Lovelace", "Email": " Ada@Example.org",
                                                   "Phone": "+44 20 7946 0018"}, team.shop, now=NOW)
    got = await records.read(db, "Contact", contact)
    assert (got["EmailKey"], got["PhoneKey"], got["Name"], got["CreatedDate"]) == (
        "ada@example.org", "+442079460018", "Lovelace", "2026-12-02T12:00:00.000+0000")
    await records.update(db, "Contact", contact, {"FirstName": "Ada", "Phone": None, "MobilePhone": "+447700900123"},
                         team.ann)
    got = await records.read(db, "Contact", contact, ["Name", "PhoneKey"])
    assert (got["Name"], got["PhoneKey"]) == ("Ada Lovelace", "+447700900123")
    e = await refused(records.update(db, "Contact", contact, {"EmailKey": "x"}, team.ann))
    assert (e.code, e.fields) == ("INVALID_FIELD_FOR_INSERT_UPDATE", ["EmailKey"])

    case_id = await records.create(db, "Case", {"Subject": "x", "ContactId": contact}, team.shop)
    e = await refused(records.delete(db, "Contact", contact, team.admin))
    assert (e.status, e.code) == (400, "DELETE_FAILED") and "associated with 1 case(s)" in e.message
    await records.delete(db, "Case", case_id, team.admin)
    async with db.engine.begin() as conn:
        await conn.execute(insert(ContactHandle).values(Channel="telegram", Handle="42", ContactId=contact,
                                                        CreatedDate=NOW))
    await records.delete(db, "Contact", contact, team.bob)
    assert (await count(db, Contact), await count(db, ContactHandle)) == (0, 0)
    e = await refused(records.delete(db, "Contact", contact, team.bob))
    assert (e.status, e.code) == (404, "NOT_FOUND")


async def test_accounts_and_assets(db: Database, team: Team) -> None:
    e = await refused(records.create(db, "Account", {}, team.shop))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["Name"])
    account = await records.create(db, "Account", {"Name": "Acme"}, team.shop)
    e = await refused(records.create(db, "Asset", {"Name": "Printer"}, team.shop))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["AccountId", "ContactId"])
    assert "every asset needs an account, a contact, or both" in e.message
    asset = await records.create(db, "Asset", {"Name": "Printer", "AccountId": account, "SerialNumber": "PR-1",
                                               "InstallDate": "2026-11-30", "Status": "installed"},
                                 team.shop, now=NOW)
    got = await records.read(db, "Asset", asset)
    assert (got["InstallDate"], got["Status"], got["LastModifiedDate"]) == (
        "2026-11-30", "Installed", "2026-12-02T12:00:00.000+0000")
    await records.update(db, "Asset", asset, {"InstallDate": date(2026, 12, 1).isoformat()}, team.shop, now=LATER)
    got = await records.read(db, "Asset", asset, ["InstallDate", "LastModifiedDate", "CreatedDate"])
    assert (got["InstallDate"], got["LastModifiedDate"], got["CreatedDate"]) == (
        "2026-12-01", "2026-12-02T13:00:00.000+0000", "2026-12-02T12:00:00.000+0000")
    e = await refused(records.update(db, "Asset", asset, {"AccountId": None}, team.shop))
    assert e.code == "REQUIRED_FIELD_MISSING"
    e = await refused(records.update(db, "Asset", asset, {"Status": "Lost"}, team.shop))
    assert e.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    case_id = await records.create(db, "Case", {"Subject": "x", "AssetId": asset}, team.shop)
    assert "associated with 1 case(s)" in (await refused(records.delete(db, "Asset", asset, team.shop))).message
    assert "associated with 1 asset(s)" in (await refused(records.delete(db, "Account", account, team.shop))).message
    await records.delete(db, "Case", case_id, team.admin)
    await records.delete(db, "Asset", asset, team.shop)
    await records.delete(db, "Account", account, team.shop)
    e = await refused(records.read(db, "Account", account))
    assert e.code == "NOT_FOUND"


# -- CaseComment and EmailMessage ------------------------------------------------------------------------
async def test_comments_post_to_the_feed_and_only_an_admin_rewrites_one(db: Database, team: Team) -> None:
    case_id = await records.create(db, "Case", {"Subject": "x"}, team.ann, auto_assign=False, now=NOW)
    e = await refused(records.create(db, "CaseComment", {"CommentBody": "hi"}, team.ann))
    assert (e.code, e.fields) == ("REQUIRED_FIELD_MISSING", ["ParentId"])
    e = await refused(records.create(db, "CaseComment", {"ParentId": case_id, "CommentBody": "é" * 2001}, team.ann))
    assert (e.code, e.fields) == ("STRING_TOO_LONG", ["CommentBody"]) and "(max length=4000 bytes)" in e.message
    comment = await records.create(db, "CaseComment", {"ParentId": case_id, "CommentBody": "Restarted it"},
                                   team.ann, now=LATER)
    got = await records.read(db, "CaseComment", comment)
    assert (got["CreatedById"], got["IsPublished"], got["CreatedDate"]) == (
        team.ann.user_id, False, "2026-12-02T13:00:00.000+0000")
    assert (await records.read(db, "Case", case_id, ["LastModifiedDate"]))["LastModifiedDate"] == \
        "2026-12-02T13:00:00.000+0000"
    assert (await feed(db, case_id))[-1] == ("CaseCommentPost", None, None, None, team.ann.user_id, None)
    assert "internal comment by Ann" in (await feed_bodies(db, case_id))[-1]

    await records.update(db, "CaseComment", comment, {"IsPublished": True}, team.ann)
    assert (await feed(db, case_id))[-1] == ("TrackedChange", "CaseComment.IsPublished", "false", "true",
                                             team.ann.user_id, None)
    e = await refused(records.update(db, "CaseComment", comment, {"CommentBody": "Rebooted it"}, team.ann))
    assert (e.status, e.code, e.fields) == (403, "INSUFFICIENT_ACCESS_OR_READONLY", ["CommentBody"])
    await records.update(db, "CaseComment", comment, {"CommentBody": "Rebooted it"}, team.admin)
    assert (await records.read(db, "CaseComment", comment, ["CommentBody"]))["CommentBody"] == "Rebooted it"
    e = await refused(records.update(db, "CaseComment", comment, {"ParentId": case_id}, team.admin))
    assert (e.code, e.fields) == ("INVALID_FIELD_FOR_INSERT_UPDATE", ["ParentId"])
    await records.delete(db, "CaseComment", comment, team.ann)
    assert await count(db, CaseComment) == 0
    assert (await feed(db, case_id))[-1][:3] == ("TrackedChange", "CaseComment", "Rebooted it")


async def test_email_messages_are_written_whole_and_only_their_status_changes(db: Database, team: Team) -> None:
    case_id = await records.create(db, "Case", {"Subject": "x"}, team.shop, now=NOW)
    email = await records.create(db, "EmailMessage", {
        "ParentId": case_id, "Incoming": True, "FromAddress": "ada@example.org", "ToAddress": "support@localhost",
        "Subject": "It broke", "TextBody": "Help", "MessageDate": "2026-12-02T11:59:00Z"}, team.shop, now=LATER)
    got = await records.read(db, "EmailMessage", email)
    assert (got["Status"], got["Incoming"], got["MessageDate"], got["HasAttachment"]) == (
        "0", True, "2026-12-02T11:59:00.000+0000", False)
    assert (await feed(db, case_id))[-1][0] == "EmailMessageEvent"
    assert "Email from ada@example.org: It broke" in (await feed_bodies(db, case_id))[-1]
    # an outgoing EmailMessage is sent through the outbox (test_records_integration.py); a store without
    # reply settings refuses it, writing nothing
    e = await refused(records.create(db, "EmailMessage", {"ParentId": case_id, "ToAddress": "ada@example.org"},
                                     team.shop))
    assert e.status == 400 and e.code
    await records.update(db, "EmailMessage", email, {"Status": "1"}, team.shop)
    assert (await feed(db, case_id))[-1][:4] == ("TrackedChange", "EmailMessage.Status", "0", "1")
    e = await refused(records.update(db, "EmailMessage", email, {"Subject": "edited"}, team.shop))
    assert (e.code, e.fields) == ("INVALID_FIELD_FOR_INSERT_UPDATE", ["Subject"])
    e = await refused(records.update(db, "EmailMessage", email, {"Status": "Q"}, team.shop))
    assert e.code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    e = await refused(records.create(db, "EmailMessage", {"ParentId": MISSING_CONTACT}, team.shop))
    assert (e.code, e.fields) == ("FIELD_INTEGRITY_EXCEPTION", ["ParentId"])
    await records.delete(db, "EmailMessage", email, team.shop)
    e = await refused(records.read(db, "EmailMessage", email))
    assert e.code == "NOT_FOUND"


# -- settings objects ----------------------------------------------------------------------------------
async def test_admins_keep_users_queues_and_members(db: Database, team: Team) -> None:
    user = await records.create(db, "User", {"Email": "New.Agent@Example.org"}, team.admin, now=NOW)
    got = await records.read(db, "User", user)
    assert (got["Email"], got["Name"], got["Role"], got["IsActive"]) == ("new.agent@example.org", "new.agent",
                                                                         "agent", True)
    e = await refused(records.create(db, "User", {"Email": "NEW.AGENT@example.org"}, team.admin))
    assert (e.code, e.fields) == ("DUPLICATE_VALUE", ["Email"]) and user in e.message
    e = await refused(records.create(db, "User", {"Email": "x@example.org", "Role": "boss"}, team.admin))
    assert (e.code, e.message) == ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                                   "Role: bad value for restricted picklist field: boss")
    await records.update(db, "User", user, {"Role": "supervisor", "IsActive": False}, team.admin)
    e = await refused(records.delete(db, "User", user, team.admin))
    assert (e.status, e.code) == (400, "INVALID_TYPE_FOR_OPERATION") and "IsActive false" in e.message
    e = await refused(records.create(db, "Case", {"Subject": "x", "OwnerId": user}, team.admin))
    assert (e.code, e.fields) == ("FIELD_INTEGRITY_EXCEPTION", ["OwnerId"]) and "inactive" in e.message

    queue = await records.create(db, "Queue", {"Name": "Returns", "Email": "returns@example.org"}, team.admin)
    e = await refused(records.create(db, "Queue", {"Name": "returns"}, team.admin))
    assert e.code == "DUPLICATE_VALUE"
    member = await records.create(db, "QueueMember", {"QueueId": queue, "UserId": team.bob.user_id}, team.admin)
    e = await refused(records.create(db, "QueueMember", {"QueueId": queue, "UserId": team.bob.user_id}, team.admin))
    assert (e.code, e.fields) == ("DUPLICATE_VALUE", ["QueueId", "UserId"]) and member in e.message
    e = await refused(records.update(db, "QueueMember", member, {}, team.admin))
    assert (e.code, e.message) == ("INVALID_TYPE_FOR_OPERATION", "entity type cannot be updated: QueueMember")
    case_id = await records.create(db, "Case", {"Subject": "x", "OwnerId": queue}, team.admin)
    e = await refused(records.delete(db, "Queue", queue, team.admin))
    assert e.code == "DELETE_FAILED" and "1 case(s) it owns" in e.message
    await records.update(db, "Case", case_id, {"OwnerId": team.support}, team.admin)
    await records.delete(db, "Queue", queue, team.admin)
    assert await count(db, QueueMember, QueueId=queue) == 0


# -- upsert ------------------------------------------------------------------------------------------------
async def test_upsert_creates_then_updates_by_external_id(db: Database, team: Team) -> None:
    made, created = await records.upsert(db, "Contact", "Email", "ada@example.org", {"LastName": "Lovelace"},
                                         team.shop)
    assert created and (await records.read(db, "Contact", made, ["Email"]))["Email"] == "ada@example.org"
    same, created = await records.upsert(db, "contact", "email", "ADA@example.org",
                                         {"FirstName": "Ada", "Email": "Ada@Example.org"}, team.shop)
    assert (same, created) == (made, False)
    assert (await records.read(db, "Contact", made, ["Name"]))["Name"] == "Ada Lovelace"
    account, created = await records.upsert(db, "Account", "Domain", "acme.example", {"Name": "Acme"}, team.shop)
    assert created
    assert await records.upsert(db, "Account", "Domain", "acme.example", {"Name": "ACME"}, team.shop) == (account,
                                                                                                            False)
    by_id = await records.upsert(db, "Contact", "Id", made, {"LastName": "King"}, team.shop)
    assert by_id == (made, False)

    await records.create(db, "Contact", {"LastName": "Twin", "Email": "ada@example.org"}, team.shop)
    e = await refused(records.upsert(db, "Contact", "Email", "ada@example.org", {"FirstName": "A"}, team.shop))
    assert (e.status, e.code, len(e.ids)) == (300, "MULTIPLE_CHOICES", 2) and made in e.ids
    e = await refused(records.upsert(db, "Contact", "LastName", "King", {}, team.shop))
    assert (e.status, e.code, e.message) == (
        404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: LastName")
    e = await refused(records.upsert(db, "Contact", "Email", "bo@example.org", {"Email": "other@example.org"},
                                     team.shop))
    assert (e.code, e.fields) == ("INVALID_FIELD", ["Email"])
    e = await refused(records.upsert(db, "Contact", "Id", MISSING_CONTACT, {}, team.shop))
    assert e.code == "NOT_FOUND"
    e = await refused(records.upsert(db, "Contact", "Email", "new@example.org", {"FirstName": "No last name"},
                                     team.shop))
    assert e.code == "REQUIRED_FIELD_MISSING"
    assert await count(db, Contact) == 2

    e = await refused(records.upsert(db, "User", "Email", "ops@example.org", {}, team.shop))
    assert (e.status, e.code) == (403, "INSUFFICIENT_ACCESS_OR_READONLY")
    user, created = await records.upsert(db, "User", "Email", "Ops@example.org", {"Role": "supervisor"}, team.admin)
    assert created and (await records.read(db, "User", user, ["Email"]))["Email"] == "ops@example.org"


# -- describe -----------------------------------------------------------------------------------------------
async def test_describe_is_generated_from_the_models_and_the_configured_picklists() -> None:
    case = records.describe("Case")
    assert (case["name"], case["keyPrefix"], case["labelPlural"], case["createable"]) == ("Case", "500", "Cases",
                                                                                         True)
    fields = {f["name"]: f for f in case["fields"]}
    assert {k: fields["Subject"][k] for k in ("type", "length", "nillable", "createable", "updateable")} == {
        "type": "string", "length": 255, "nillable": True, "createable": True, "updateable": True}
    assert (fields["CaseNumber"]["createable"], fields["CaseNumber"]["autoNumber"]) == (False, True)
    assert (fields["OwnerId"]["referenceTo"], fields["OwnerId"]["relationshipName"]) == (["User", "Queue"], "Owner")
    assert fields["Description"]["type"] == "textarea" and fields["Description"]["length"] == 32000
    assert fields["SatisfactionScore"]["type"] == "int" and fields["ClosedDate"]["type"] == "datetime"
    assert [(p["value"], p["defaultValue"]) for p in fields["Status"]["picklistValues"]] == [
        ("New", True), ("Working", False), ("On Hold", False), ("Escalated", False), ("Closed", False)]
    children = {c["relationshipName"]: c for c in case["childRelationships"]}
    assert children["CaseComments"]["childSObject"] == "CaseComment" and children["CaseComments"]["cascadeDelete"]
    assert children["Cases"]["field"] == "ParentId"

    policy = RecordPolicy(case=CaseSettings(statuses=[StatusValue(name="Open"), StatusValue(name="Done", closed=True)],
                                            default_status="Open", priorities=["P1", "P2"], default_priority="P2"))
    fields = {f["name"]: f for f in records.describe("case", policy)["fields"]}
    assert [p["value"] for p in fields["Status"]["picklistValues"]] == ["Open", "Done"]
    assert [(p["value"], p["defaultValue"]) for p in fields["Priority"]["picklistValues"]] == [("P1", False),
                                                                                               ("P2", True)]
    contact = {f["name"]: f for f in records.describe("Contact")["fields"]}
    assert contact["Email"]["externalId"] and contact["Email"]["type"] == "email" and contact["Name"]["calculated"]
    assert records.describe("Asset")["keyPrefix"] == "02i"
    assert not records.describe("User")["deletable"] and not records.describe("QueueMember")["updateable"]
    assert set(records.OBJECTS) == {"Case", "Contact", "Account", "CaseComment", "EmailMessage", "User", "Queue",
                                    "QueueMember", "Asset", "ConversationEntry", "Knowledge__kav", "CaseArticle"}
    with pytest.raises(RecordError) as info:
        records.describe("Widget")
    assert (info.value.status, info.value.code) == (404, "INVALID_TYPE")


def test_a_policy_refuses_external_ids_that_are_not_text_fields() -> None:
    with pytest.raises(ValueError, match="external_ids"):
        CaseSettings(external_ids={"Contact": ["CreatedDate"]})
    for obj, names in EXTERNAL_ID_FIELDS.items():  # every field the settings allow is one the store can find by
        assert RecordPolicy(case=CaseSettings(external_ids={obj: list(names)})).external_ids[obj] == names
