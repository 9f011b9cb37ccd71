"""Migrations: `store.migrate.upgrade` builds exactly the schema of `store.models` on SQLite and on
PostgreSQL, `downgrade` to base and back works, and the CaseNumber counter is seeded.

These tests are synchronous: Alembic's env.py runs its own event loop (`asyncio.run`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from casegate.config import OutboundSettings, RoutingAddress, RulesSettings
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.knowledge import is_search_object
from casegate.store.migrate import current_revision, downgrade, head_revision, upgrade
from casegate.store.models import Base, Counter, EmailMessage, Outbox
from casegate.store.owners import ensure_owners
from sqlalchemy import Connection, inspect, select, update
from sqlalchemy.ext.asyncio import create_async_engine

T = TypeVar("T")


def on_sync_connection(url: str, fn: Callable[[Connection], T]) -> T:
    """Run `fn` on a sync view of an async connection to `url`."""

    async def go() -> T:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def schema_diff(conn: Connection) -> list[Any]:
    """How the store's schema differs from the models, leaving out the full-text objects the models do not
    describe (`store.knowledge.is_search_object`; test_knowledge.py checks they are there)."""
    ctx = MigrationContext.configure(conn, opts={
        "compare_type": True, "compare_server_default": True,
        "include_name": lambda name, type_, parents: not is_search_object(name, type_, parents)})
    return list(compare_metadata(ctx, Base.metadata))


def table_names(conn: Connection) -> set[str]:
    return {t for t in inspect(conn).get_table_names() if not is_search_object(t, "table", {})}


def case_number_counter(conn: Connection) -> list[tuple[str, int]]:
    return [tuple(r) for r in conn.execute(select(Counter.Name, Counter.Value))]  # type: ignore[misc]


def test_upgrade_creates_every_model_table_and_matches_the_models(store_url: str) -> None:
    assert on_sync_connection(store_url, current_revision) is None
    upgrade(store_url)
    tables = on_sync_connection(store_url, table_names)
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
    assert on_sync_connection(store_url, schema_diff) == []
    assert on_sync_connection(store_url, current_revision) == head_revision() is not None


def test_case_number_counter_is_seeded_so_the_first_case_is_00001000(store_url: str) -> None:
    upgrade(store_url)
    assert on_sync_connection(store_url, case_number_counter) == [("CaseNumber", 999)]
    assert asyncio.run(open_one_case(store_url)) == "00001000"
    assert on_sync_connection(store_url, case_number_counter) == [("CaseNumber", 1000)]


async def open_one_case(url: str) -> str | None:
    db = Database(url)
    try:
        owners = await ensure_owners(db, ["queue:Support"])
        service = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k"))
        now = datetime.now(UTC)
        [out] = await service.record_messages([InboundMessage(
            channel="email", external_id="<first@example.org>", envelope_id="env-1", received_at=now,
            conversation_key="ada@example.org", sender_email="ada@example.org", subject="first",
            message_id="<first@example.org>")])
        return out.case_number
    finally:
        await db.dispose()


def test_the_comparison_sees_a_schema_that_differs(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    upgrade(url)

    def tamper(conn: Connection) -> None:
        conn.exec_driver_sql('CREATE INDEX ix_extra ON "case" ("Subject")')
        conn.exec_driver_sql("CREATE TABLE stray (x INTEGER)")
        conn.commit()

    on_sync_connection(url, tamper)
    kinds = {d[0] for d in on_sync_connection(url, schema_diff) if isinstance(d, tuple)}
    assert {"remove_index", "remove_table"} <= kinds


def test_upgrade_twice_is_a_no_op(store_url: str) -> None:
    upgrade(store_url)
    upgrade(store_url)
    assert on_sync_connection(store_url, case_number_counter) == [("CaseNumber", 999)]
    assert on_sync_connection(store_url, schema_diff) == []


def test_downgrade_to_base_then_upgrade_again(store_url: str) -> None:
    upgrade(store_url)
    downgrade(store_url, "base")
    assert on_sync_connection(store_url, table_names) <= {"alembic_version"}
    assert on_sync_connection(store_url, current_revision) is None
    upgrade(store_url)
    assert set(Base.metadata.tables) <= on_sync_connection(store_url, table_names)
    assert on_sync_connection(store_url, schema_diff) == []
    assert on_sync_connection(store_url, case_number_counter) == [("CaseNumber", 999)]


async def open_acknowledged_cases(url: str, n: int) -> None:
    db = Database(url)
    try:
        owners = await ensure_owners(db, ["queue:Support"])
        route = RoutingAddress(address="support@localhost")
        service = CaseService(db, CasePolicy({route.address: route}, RulesSettings(), owners, b"k",
                                             outbound=OutboundSettings(enabled=True)))
        now = datetime.now(UTC)
        await service.record_messages([InboundMessage(
            channel="email", external_id=f"<m{i}@example.org>", envelope_id=f"env-{i}", received_at=now,
            conversation_key=f"c{i}@example.org", sender_email=f"c{i}@example.org", subject=f"mail {i}",
            recipients=("support@localhost",), message_id=f"<m{i}@example.org>") for i in range(n)])
    finally:
        await db.dispose()


def outgoing_status(conn: Connection) -> list[tuple[str, str]]:
    """(outbox Status, its EmailMessage's Status) of every outgoing mail, by recipient."""
    rows = conn.execute(select(Outbox.Status, EmailMessage.Status).join(EmailMessage, EmailMessage.Id ==
                                                                         Outbox.EmailMessageId)
                        .order_by(Outbox.ToAddress))
    return [(r[0], r[1]) for r in rows]


def test_0004_sets_the_status_of_outgoing_mail_from_its_outbox_row_and_back(store_url: str) -> None:
    upgrade(store_url)
    asyncio.run(open_acknowledged_cases(store_url, 3))
    assert on_sync_connection(store_url, outgoing_status) == [("queued", "Q")] * 3
    downgrade(store_url, "0003")  # as the older code wrote them: Sent from the start
    assert on_sync_connection(store_url, outgoing_status) == [("queued", "3")] * 3

    def deliver(conn: Connection) -> None:
        for to, status in (("c0@example.org", "sent"), ("c1@example.org", "failed")):
            conn.execute(update(Outbox).where(Outbox.ToAddress == to).values(Status=status))
        conn.commit()

    on_sync_connection(store_url, deliver)
    upgrade(store_url)
    assert on_sync_connection(store_url, outgoing_status) == [("sent", "3"), ("failed", "F"), ("queued", "Q")]
    assert on_sync_connection(store_url, schema_diff) == []


async def record_mails_with_message_id_headers(url: str) -> None:
    db = Database(url)
    try:
        owners = await ensure_owners(db, ["queue:Support"])
        service = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k"))
        now = datetime.now(UTC)
        await service.record_messages([InboundMessage(
            channel="email", external_id=external, envelope_id=f"env-{i}", received_at=now,
            conversation_key=f"c{i}@example.org", sender_email=f"c{i}@example.org", subject=f"mail {i}",
            message_id=normalised, message_id_header=header)
            for i, (external, normalised, header) in enumerate([("<abc@host>", "<abc@host>", "abc@host"),
                                                                 ("sha256:00", None, "")])])
    finally:
        await db.dispose()


def ledger_headers(conn: Connection) -> list[tuple[str, str | None, str | None]]:
    rows = conn.exec_driver_sql('SELECT "ExternalId", "MessageIdentifier", "MessageIdHeader" FROM processed_message '
                                'ORDER BY "ExternalId"')
    return [(r[0], r[1], r[2]) for r in rows]


def ledger_indexes(conn: Connection) -> dict[str, dict[str, Any]]:
    return {str(i["name"]): dict(i["dialect_options"]) for i in inspect(conn).get_indexes("processed_message")}


def test_0005_keeps_the_message_id_header_as_written_and_indexes_only_those_naming_no_id(store_url: str) -> None:
    upgrade(store_url)
    asyncio.run(record_mails_with_message_id_headers(store_url))
    assert on_sync_connection(store_url, ledger_headers) == [("<abc@host>", "<abc@host>", "abc@host"),
                                                             ("sha256:00", None, "")]
    partial = on_sync_connection(store_url, ledger_indexes)["ix_processed_message_unnormalised_id"]
    where = str(partial.get("postgresql_where", partial.get("sqlite_where")))
    assert '"MessageIdentifier" IS NULL' in where.replace("(", "").replace(")", ""), where  # a partial index
    downgrade(store_url, "0004")
    assert "ix_processed_message_unnormalised_id" not in on_sync_connection(store_url, ledger_indexes)
    columns = on_sync_connection(store_url, lambda c: [col["name"] for col in inspect(c).get_columns(
        "processed_message")])
    assert "MessageIdHeader" not in columns and "MessageIdentifier" in columns
    upgrade(store_url)
    assert on_sync_connection(store_url, ledger_headers) == [("<abc@host>", "<abc@host>", None),
                                                             ("sha256:00", None, None)]
    assert on_sync_connection(store_url, schema_diff) == []


def feed_rules(conn: Connection) -> list[tuple[str, str | None]]:
    rows = conn.exec_driver_sql('SELECT "Type", "Rule" FROM case_feed ORDER BY "Seq"')
    return [(r[0], r[1]) for r in rows]


def test_0006_records_the_deciding_rule_on_the_feed_and_older_entries_have_none(store_url: str) -> None:
    upgrade(store_url)
    assert asyncio.run(open_one_case(store_url)) == "00001000"
    assert on_sync_connection(store_url, feed_rules) == [("CaseCreated", None),
                                                         ("AssignmentRule", "assignment.default_owner"),
                                                         ("EmailMessageEvent", None)]
    downgrade(store_url, "0005")
    columns = on_sync_connection(store_url, lambda c: [col["name"] for col in inspect(c).get_columns("case_feed")])
    assert "Rule" not in columns and "Body" in columns
    upgrade(store_url)
    assert on_sync_connection(store_url, feed_rules) == [("CaseCreated", None), ("AssignmentRule", None),
                                                         ("EmailMessageEvent", None)]
    assert on_sync_connection(store_url, schema_diff) == []
