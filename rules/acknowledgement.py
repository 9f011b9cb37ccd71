"""Whether casegate writes to the sender: the acknowledgement of a new case (with its case number), or
the notice that a case is closed (closed-case policy `reject`). Never to automatic mail, never to
ourselves, not without a relay, and at most so many to one address (`rules.loops.acknowledgement_limit`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casegate.rules import loops
from casegate.rules.decision import Chain, Decision, miss
from casegate.rules.loops import WITHHOLD

__all__ = ["ACKNOWLEDGEMENT", "CHAIN", "NOTICE", "SEND", "SKIP", "WITHHOLD", "Acknowledgement"]

ACKNOWLEDGEMENT = "acknowledgement"
NOTICE = "notice"
"""The kinds of automatic mail (the outbox's Kind)."""

SEND = "send"
"""Queue the mail."""
SKIP = "skip"
"""No mail is due; nothing to record."""


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An automatic mail casegate might write to the sender of a message."""

    kind: str
    """ACKNOWLEDGEMENT or NOTICE."""
    to: str | None
    """The sender's address."""
    automatic: str | None
    """The message is automatic mail of this kind; None when a person wrote it."""
    routing_address_acknowledges: bool
    """The routing address's `auto_acknowledge`."""
    relay: bool
    """An outbound relay is configured (`[outbound] enabled`)."""
    own_address: bool
    """`to` is one of our routing addresses."""
    recent: loops.Acknowledgements


def automatic_mail(f: Acknowledgement, now: datetime) -> Decision:
    rule = "acknowledgement.automatic_mail"
    if f.automatic is None:
        return miss(rule, "written by a person")
    return Decision(rule, SKIP, f"automatic mail ({f.automatic}) is never answered")


def routing_address(f: Acknowledgement, now: datetime) -> Decision:
    """The routing address turns acknowledgements off (notices are not acknowledgements)."""
    rule = "acknowledgement.routing_address"
    if f.kind != ACKNOWLEDGEMENT:
        return miss(rule, f"a {f.kind} is not an acknowledgement")
    if f.routing_address_acknowledges:
        return miss(rule, "the routing address acknowledges")
    return Decision(rule, SKIP, "the routing address does not acknowledge")


def no_relay(f: Acknowledgement, now: datetime) -> Decision:
    rule = "acknowledgement.no_relay"
    if f.relay:
        return miss(rule, "an outbound relay is configured")
    return Decision(rule, SKIP, "no outbound relay configured")


def no_address(f: Acknowledgement, now: datetime) -> Decision:
    rule = "acknowledgement.no_address"
    if f.to:
        return miss(rule, f"the sender is {f.to}")
    return Decision(rule, SKIP, "the sender has no address")


def own_address(f: Acknowledgement, now: datetime) -> Decision:
    rule = "acknowledgement.own_address"
    if not f.own_address:
        return miss(rule, f"{f.to} is not one of our routing addresses")
    return Decision(rule, SKIP, f"{f.to} is one of our routing addresses")


def send(f: Acknowledgement, now: datetime) -> Decision:
    """The last rule: nothing held it back."""
    s = f.recent.settings
    return Decision("acknowledgement.send", SEND, f"automatic mail {f.recent.sent + 1} of at most "
                    f"{s.acknowledgements_per_address} to this address within {s.acknowledgement_window_minutes:g} min")


CHAIN: Chain[Acknowledgement] = (
    ("acknowledgement.automatic_mail", automatic_mail),
    ("acknowledgement.routing_address", routing_address),
    ("acknowledgement.no_relay", no_relay),
    ("acknowledgement.no_address", no_address),
    ("acknowledgement.own_address", own_address),
    ("loops.acknowledgement_limit", lambda f, now: loops.acknowledgement_limit(f.recent, now)),
    ("acknowledgement.send", send),
)
