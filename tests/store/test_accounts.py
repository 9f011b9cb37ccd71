"""Accounts from a contact's email domain, through the worker's path on SQLite and PostgreSQL: people of one
company share one Account (found by Domain, or made) and their cases carry it; free-mail senders and the
setting off make none; workers making the same Account at once make one. Also the `[accounts]` settings
and what the domain of an address is."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from casegate.config import AccountSettings, ConfigError, RulesSettings, load_settings
from casegate.config.accounts import registrable_domain
from casegate.store.batch_writer import BatchWriter
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.models import Account, Case, Contact
from casegate.store.owners import ensure_owners
from sqlalchemy import Connection, func, select, text

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def mail(sender: str, name: str = "A Person") -> InboundMessage:
    msgid = f"<{uuid.uuid4().hex}@example.net>"
    return InboundMessage(channel="email", external_id=msgid, envelope_id=str(uuid.uuid4()), received_at=T0,
                          conversation_key=sender.lower(), sender_email=sender, sender_name=name,
                          subject="Help", text="Please help.", message_id=msgid)


async def service(db: Database) -> CaseService:
    owners = await ensure_owners(db, ["queue:Support"])
    return CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k"))


async def rows(db: Database, query: Any) -> list[Any]:
    async with db.session() as s:
        return list((await s.execute(query)).all())


async def accounts(db: Database) -> list[tuple[str, str]]:
    return [(r.Name, r.Domain) for r in await rows(db, select(Account.Name, Account.Domain).order_by(Account.Name))]


async def account_of_case(db: Database, case_id: str | None) -> tuple[str | None, str | None]:
    [(contact_account, case_account)] = await rows(db, select(Contact.AccountId, Case.AccountId).join(
        Contact, Contact.Id == Case.ContactId).where(Case.Id == case_id))
    return contact_account, case_account


async def test_people_of_one_domain_share_one_account_and_their_cases_carry_it(db: Database) -> None:
    cases = await service(db)
    first = await cases.record_messages([mail("Ann@Example.com"), mail("bob@support.example.com.")], now=T0)
    later = await cases.record_messages([mail("cy@EXAMPLE.COM")], now=T0 + timedelta(hours=1))
    assert await accounts(db) == [("example.com", "example.com")]
    [(account_id,)] = await rows(db, select(Account.Id))
    assert account_id.startswith("001")
    for out in (*first, *later):
        assert await account_of_case(db, out.case_id) == (account_id, account_id)
    again = await cases.record_messages([mail("ann@example.com")], now=T0 + timedelta(hours=2))
    assert await account_of_case(db, again[0].case_id) == (account_id, account_id)  # a known contact's account
    assert await rows(db, select(func.count()).select_from(Contact)) == [(3,)]


async def test_free_mail_and_addresses_without_a_domain_make_no_account(db: Database) -> None:
    cases = await service(db)
    outs = await cases.record_messages([mail("ann@gmail.com"), mail("bob@mail.yahoo.co.uk"),
                                        mail("cy@hotmail.fr"), mail("dee@localhost")], now=T0)
    assert await accounts(db) == []
    for out in outs:
        assert await account_of_case(db, out.case_id) == (None, None)


async def test_an_existing_account_with_the_domain_is_used_the_oldest_of_two(db: Database) -> None:
    async with db.session() as s, s.begin():
        s.add_all([Account(Id="001000000000002AAA", Name="Acme (new)", Domain="acme.com", CreatedDate=T0),
                   Account(Id="001000000000001AAA", Name="Acme Corp", Domain="acme.com",
                           CreatedDate=T0 - timedelta(days=1))])
    [out] = await (await service(db)).record_messages([mail("ann@eu.acme.com")], now=T0)
    assert await account_of_case(db, out.case_id) == ("001000000000001AAA", "001000000000001AAA")
    assert len(await accounts(db)) == 2


async def test_the_worker_follows_the_accounts_section(db: Database) -> None:
    """The case service takes `[accounts]` from its policy (as the daemon's worker is given it): switched off,
    a company sender gets no Account, nor does their case; an extra free-mail domain makes none either."""
    owners = await ensure_owners(db, ["queue:Support"])
    off = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k", accounts=AccountSettings(
        from_email_domain=False)))
    [out] = await off.record_messages([mail("ann@acme.com")], now=T0)
    assert await accounts(db) == []
    assert await account_of_case(db, out.case_id) == (None, None)
    own = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k", accounts=AccountSettings(
        extra_free_mail_domains=["initech.com"])))
    outs = await own.record_messages([mail("bob@initech.com"), mail("cy@globex.com")], now=T0)
    assert await accounts(db) == [("globex.com", "globex.com")]
    assert [(await account_of_case(db, o.case_id))[1] is not None for o in outs] == [False, True]


async def resolve(db: Database, settings: AccountSettings, *messages: InboundMessage) -> None:
    """The worker's first step for a batch, as the case service takes it: its senders' contacts, written."""

    def go(conn: Connection) -> None:
        writer = BatchWriter(conn, T0, settings)
        writer.resolve_contacts(messages)
        writer.flush()

    await db.transaction(go)


async def test_the_setting_off_or_an_extra_free_domain_makes_no_account(db: Database) -> None:
    await resolve(db, AccountSettings(from_email_domain=False), mail("ann@acme.com"))
    await resolve(db, AccountSettings(extra_free_mail_domains=["Acme.com."]), mail("bob@sales.acme.com"))
    await resolve(db, AccountSettings(free_mail_domains=[]), mail("cy@gmail.com"))
    assert await accounts(db) == [("gmail.com", "gmail.com")]
    contacts = await rows(db, select(Contact.EmailKey, Contact.AccountId).order_by(Contact.EmailKey))
    assert [(email, account is not None) for email, account in contacts] == [
        ("ann@acme.com", False), ("bob@sales.acme.com", False), ("cy@gmail.com", True)]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_workers_making_the_same_account_at_once_make_one(db: Database) -> None:
    """One worker holds the new domain's lock (it made the Account, not yet committed); another worker's
    batch with the same domain waits for it, then finds that Account instead of making a second."""
    async with db.engine.connect() as first:
        await first.begin()
        await first.run_sync(lambda conn: _resolve_in(conn, mail("ann@acme.com")))
        other = asyncio.create_task(resolve(db, AccountSettings(), mail("bob@acme.com")))
        deadline = asyncio.get_running_loop().time() + 30.0
        async with db.engine.connect() as watcher:  # polls a fact: the lock wait shows in pg_locks
            while not other.done() and not await _waits_for_an_advisory_lock(watcher):
                assert asyncio.get_running_loop().time() < deadline, "the second worker neither waited nor ended"
                await asyncio.sleep(0.01)
        assert not other.done(), "the second worker did not wait for the first one's lock"
        await first.commit()
    await other
    assert await accounts(db) == [("acme.com", "acme.com")]


def _resolve_in(conn: Connection, *messages: InboundMessage) -> None:
    writer = BatchWriter(conn, T0, AccountSettings())
    writer.resolve_contacts(messages)
    writer.flush()


async def _waits_for_an_advisory_lock(conn: Any) -> bool:
    found = await conn.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))
    await conn.rollback()
    return bool(found.scalar_one())



# the settings and the domain of an address ---------------------------------------------------------------
@pytest.mark.parametrize(("address", "domain"), [
    ("ann@Acme.COM.", "acme.com"), ("ann@eu.support.acme.com", "acme.com"), ("ann@acme.co.uk", "acme.co.uk"),
    ("ann@mail.acme.co.uk", "acme.co.uk"), ("ann@shop.com.au", "shop.com.au"), ("ann@a.b.uni.edu", "uni.edu"),
    ("ann@contoso.onmicrosoft.com", "contoso.onmicrosoft.com"), ("ann@müller.de", "müller.de"),
    ("ann@gmail.com", None), ("ann@mail.yahoo.com", None), ("ann@yahoo.com.br", None), ("ann@foo.mail.ru", None),
    ("ann@localhost", None), ("ann@[192.0.2.1]", None), ("ann@-bad-.com", None), ("not an address", None), (None, None),
])
def test_the_account_domain_of_an_address(address: str | None, domain: str | None) -> None:
    assert AccountSettings().account_domain(address) == domain


def test_registrable_domain_keeps_two_labels_or_three_under_a_public_suffix() -> None:
    assert [registrable_domain(d) for d in ("acme.com", "x.y.acme.com", "acme.co.jp", "x.acme.ne.jp", "co.uk")] == [
        "acme.com", "acme.com", "acme.co.jp", "acme.ne.jp", "co.uk"]


def test_the_accounts_section_from_toml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().accounts == AccountSettings() and "gmail.com" in AccountSettings().free_mail_domains
    path = tmp_path / "casegate.toml"
    path.write_text('[accounts]\nfree_mail_domains = ["Example.ORG.", "mail.*"]\nextra_free_mail_domains = ["a.b"]\n')
    s = load_settings(path).accounts
    assert (s.from_email_domain, s.free_mail_domains, s.extra_free_mail_domains) == (True, ["example.org", "mail.*"],
                                                                                     ["a.b"])
    assert s.account_domain("x@gmail.com") == "gmail.com" and s.account_domain("x@mail.co.uk") is None
    monkeypatch.setenv("CASEGATE_ACCOUNTS__FROM_EMAIL_DOMAIN", "false")
    assert load_settings(path).accounts.account_domain("x@acme.com") is None
    path.write_text('[accounts]\nfree_mail_domains = ["not a domain"]\n')
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    assert "accounts.free_mail_domains: " in str(e.value) and "not a domain" in str(e.value)
