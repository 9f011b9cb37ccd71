"""`casegate cases list --status` with the `[case] statuses` of the settings, the real command against a real
store: a configured Status in any letter case, `open` and `closed` as the settings sort them, and a Status
only the defaults have refused with the configured ones listed (exit 2)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from casegate.config import CaseSettings, RulesSettings, StatusValue
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.migrate import upgrade
from casegate.store.owners import ensure_owners

from tests.ingest.test_cli_cases_list import table
from tests.ingest.test_cli_newcomer import casegate

SETTINGS = """
[case]
statuses = [{name = "Received"}, {name = "Waiting on Customer", stops_clock = true},
            {name = "Resolved", closed = true}, {name = "Duplicate", closed = true}]
default_status = "Received"

[rules]
reopen_status = "Received"
"""
CASE = CaseSettings(statuses=[StatusValue(name="Received"), StatusValue(name="Waiting on Customer", stops_clock=True),
                              StatusValue(name="Resolved", closed=True), StatusValue(name="Duplicate", closed=True)],
                    default_status="Received")


async def seed(url: str) -> None:
    """Four cases opened by the worker under those settings; then one waits, one is resolved, one a duplicate."""
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        owners = await ensure_owners(db, ["queue:Support"])
        service = CaseService(db, CasePolicy({}, RulesSettings(), owners, b"k", case=CASE))
        for subject, status in (("new", None), ("waiting", "Waiting on Customer"), ("resolved", "Resolved"),
                                ("duplicate", "Duplicate")):
            msgid = f"<{uuid.uuid4().hex}@example.org>"
            [out] = await service.record_messages([InboundMessage(
                channel="email", external_id=msgid, envelope_id=str(uuid.uuid4()), received_at=datetime.now(UTC),
                conversation_key="ada@example.org", sender_email="ada@example.org", sender_name="Ada",
                recipients=("support@localhost",), subject=subject, text="text", message_id=msgid)])
            if status is not None:
                await service.change_status(out.case_number or "", status)
    finally:
        await db.dispose()


def test_cases_list_filters_by_the_configured_statuses(tmp_path: Path) -> None:
    (tmp_path / "casegate.toml").write_text(SETTINGS)
    asyncio.run(seed(f"sqlite+aiosqlite:///{tmp_path / 'casegate-data' / 'cases.db'}"))

    def listed(*statuses: str) -> list[str]:
        args = [a for s in statuses for a in ("--status", s)]
        return sorted(table(casegate(tmp_path, "cases", "list", "--config", "casegate.toml", *args))[0])

    assert listed("received") == ["new"]
    assert listed("WAITING ON CUSTOMER", "Duplicate") == ["duplicate", "waiting"]
    assert listed("open") == ["new", "waiting"]
    assert listed("closed") == ["duplicate", "resolved"]
    r = casegate(tmp_path, "cases", "list", "--config", "casegate.toml", "--status", "New")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert ("argument --status: unknown status 'New' (one of Received, Waiting on Customer, Resolved, "
            "Duplicate, or open)") in r.stderr
