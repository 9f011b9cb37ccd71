"""What placing any message on a case shares, email or not: assigning the owner of a new case by its
fields as stored (and saying on the feed why), keeping a message that opens nothing as suppressed, and
judging a message to a closed case (`rules.closed_case`) and reopening it.

The decisions are the rules' (`rules/`); here the facts are gathered, the decision applied and recorded:
each feed entry a decision produces names its rule (`CaseFeed.Rule`)."""

from __future__ import annotations

from casegate.rules import assignment, closed_case
from casegate.rules.assignment import CaseFacts
from casegate.rules.decision import Verdict, run
from casegate.store.batch_writer import BatchWriter
from casegate.store.case_policy import CasePolicy
from casegate.store.database import as_utc
from casegate.store.inbound import InboundMessage, Outcome
from casegate.store.lookups import CaseState, ContactRef


class Placement:
    def __init__(self, policy: CasePolicy, writer: BatchWriter):
        self.policy = policy
        self.writer = writer

    def assign(self, case_id: str, owner: str | None, contact: ContactRef | None, via: str) -> None:
        """The owner of a new case (`rules.assignment`): the first assignment entry matching the case as
        it will be stored (opened by the writer just before), else `owner` (of the routing address or
        channel), else the default owner; the feed says which."""
        rules = self.policy.rules
        facts = assignment.NewCase(
            case=CaseFacts.of_case(self.writer.new_case(case_id), contact.account_name if contact else None),
            entries=tuple(rules.assignment), source_owner=owner, source=via, default_owner=rules.default_owner)
        verdict = run(assignment.CHAIN, facts, self.writer.now)
        self.writer.set_owner(case_id, self.policy.owner_ids[verdict.action], verdict.action, verdict.decision)

    def suppress(self, m: InboundMessage, kind: str, reason: str) -> Outcome:
        """Kept on the ledger with its reason (its raw original stays in the blob store); opens nothing."""
        self.writer.add_ledger(m, "suppressed", kind, None, None, reason=reason)
        return Outcome(m.channel, m.external_id, "suppressed", None, None, kind)

    def judge_closed(self, m: InboundMessage, state: CaseState, policy: str, within_days: int) -> Verdict:
        """What `m` does to the closed case `state` under the closed-case `policy` (`rules.closed_case`)."""
        facts = closed_case.ClosedCase(policy=policy, within_days=within_days, automatic=m.auto,
                                       closed_date=as_utc(state.closed_date) if state.closed_date else None)
        return run(closed_case.CHAIN, facts, self.writer.now)

    def reopen(self, state: CaseState, m: InboundMessage, policy: str, rule: str) -> None:
        """Reopen the closed case `state` as `rule` (of `rules.closed_case`) decided under `policy`: its Status
        becomes `[rules] reopen_status`, one of the `[case]` statuses."""
        self.writer.set_status(state, self.policy.rules.reopen_status,
                               reason=f"customer wrote again ({m.channel}); policy {policy}", rule=rule)

    @staticmethod
    def threaded_body(m: InboundMessage, rule: str, note: str | None) -> str:
        return f"{m.channel} message threaded by {rule}" + (f"; {note}" if note else "")
