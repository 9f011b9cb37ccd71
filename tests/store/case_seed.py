"""Cases made as the worker makes them (the real case service on a real store), each at a chosen time,
through a chosen routing address (which sets its Origin and owner) and with a chosen Status: what the
tests of the case list read back."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from casegate.config import RoutingAddress, RulesSettings
from casegate.store.case_policy import CasePolicy
from casegate.store.case_service import CaseService
from casegate.store.database import Database
from casegate.store.inbound import InboundMessage
from casegate.store.owners import ensure_owners

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ROUTING = {
    "support@localhost": RoutingAddress(address="support@localhost"),  # Email, queue Support (the default)
    "web@example.com": RoutingAddress(address="web@example.com", origin="Web", owner="queue:Billing"),
    "sms@example.com": RoutingAddress(address="sms@example.com", origin="SMS", owner="user:Lead@Example.com"),
}
OWNER_REFS = ["queue:Support", "queue:Billing", "user:Lead@Example.com"]


@dataclass(frozen=True, slots=True)
class Seed:
    subject: str
    created: datetime = T0
    to: str = "support@localhost"
    status: str | None = None
    """Set after the case is opened (at the same moment); None keeps New."""


async def seed_cases(db: Database, seeds: Sequence[Seed]) -> list[str]:
    """Open one case per seed in a migrated store, in order; their CaseNumbers."""
    owners = await ensure_owners(db, OWNER_REFS)
    service = CaseService(db, CasePolicy(ROUTING, RulesSettings(), owners, b"case-seed-secret"))
    numbers: list[str] = []
    for seed in seeds:
        msgid = f"<{uuid.uuid4().hex}@example.org>"
        message = InboundMessage(channel="email", external_id=msgid, envelope_id=str(uuid.uuid4()),
                                 received_at=seed.created, conversation_key="ada@example.org",
                                 sender_email="ada@example.org", sender_name="Ada", recipients=(seed.to,),
                                 subject=seed.subject, text="text", message_id=msgid, to_address=seed.to)
        [out] = await service.record_messages([message], now=seed.created)
        assert out.case_number is not None
        numbers.append(out.case_number)
        if seed.status is not None:
            await service.change_status(out.case_number, seed.status, now=seed.created)
    return numbers
