"""What placing any message on a case shares, email or not: assigning the owner of a new case by its
fields as stored (and saying on the feed why), keeping a message that opens nothing as suppressed, and
deciding whether a message to a closed case reopens it."""

from __future__ import annotations

from datetime import timedelta

from rules.assignment import CaseFacts, assign
from rules.lifecycle import change_status
from store.batch_writer import BatchWriter
from store.case_policy import CasePolicy
from store.database import as_utc
from store.inbound import InboundMessage, Outcome
from store.lookups import CaseState, ContactRef


class Placement:
    def __init__(self, policy: CasePolicy, writer: BatchWriter):
        self.policy = policy
        self.writer = writer

    def assign(self, case_id: str, owner: str | None, contact: ContactRef | None, via: str) -> None:
        """The owner of a new case: the first assignment entry matching the case as it will be stored
        (opened by the writer just before), else `owner` (of the routing address or channel), else the
        default owner; the feed says which."""
        rules = self.policy.rules
        facts = CaseFacts.of_case(self.writer.new_case(case_id), contact.account_name if contact else None)
        chosen = assign(rules.assignment, owner or rules.default_owner, facts)
        if chosen.entry:
            reason = f"assignment rule entry '{chosen.entry}' matched"
        elif owner:
            reason = f"no assignment entry matched: owner of {via}"
        else:
            reason = "no assignment entry matched: default owner"
        self.writer.set_owner(case_id, self.policy.owner_ids[chosen.owner], chosen.owner, reason)

    def suppress(self, m: InboundMessage, kind: str, reason: str) -> Outcome:
        """Kept on the ledger with its reason (its raw original stays in the blob store); opens nothing."""
        self.writer.add_ledger(m, "suppressed", kind, None, None, reason=reason)
        return Outcome(m.channel, m.external_id, "suppressed", None, None, kind)

    def reopens(self, policy: str, within_days: int, state: CaseState) -> bool:
        """Whether a customer's message reopens this closed case under `policy`."""
        if policy == "reopen":
            return True
        return policy == "reopen_within_days" and state.closed_date is not None and \
            self.writer.now - as_utc(state.closed_date) <= timedelta(days=within_days)

    def reopen(self, state: CaseState, m: InboundMessage, policy: str) -> None:
        change = change_status(self.policy.rules.reopen_status, state.closed_date, self.writer.now)
        self.writer.change_status(state, change, reason=f"customer wrote again ({m.channel}); policy {policy}")

    @staticmethod
    def threaded_body(m: InboundMessage, rule: str, note: str | None) -> str:
        return f"{m.channel} message threaded by {rule}" + (f"; {note}" if note else "")
