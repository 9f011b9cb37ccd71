"""What the case service needs from the configuration, resolved once at start: routing addresses,
assignment rules, owners, the thread-token key, loop limits, the outbound relay, channel policies, the
`[case]` values new and reopened cases take (the status model, the default Status and Priority) and the
`[accounts]` settings contacts get their Account by."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from casegate.config import AccountSettings, CaseSettings, LoopSettings, OutboundSettings, RoutingAddress, RulesSettings
from casegate.rules.lifecycle import StatusModel
from casegate.store.channel_policy import ChannelPolicy

UNROUTED = RoutingAddress(address="unrouted@casegate.invalid", auto_acknowledge=False)
"""The policy of a mail that reached none of the routing addresses (e.g. replayed from elsewhere)."""


@dataclass(frozen=True)
class CasePolicy:
    routing: Mapping[str, RoutingAddress]
    rules: RulesSettings
    owner_ids: Mapping[str, str]
    """Owner reference (`queue:Support`) → record Id."""
    thread_secret: bytes
    loops: LoopSettings = field(default_factory=LoopSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    channels: Mapping[str, ChannelPolicy] = field(default_factory=dict)
    """Configured channel section (`twilio`, `meta`, `web_form` ...) → how its messages become cases."""
    case: CaseSettings = field(default_factory=CaseSettings)
    """`[case]`: the Status values (which are closed, which stop the clock), the default Status and Priority."""
    accounts: AccountSettings = field(default_factory=AccountSettings)
    """`[accounts]`: whether a new contact's Account is found or made from their email domain."""
    statuses: StatusModel = field(init=False)
    """The status model of `case` (`rules.lifecycle`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", StatusModel.of(self.case))

    def routing_for(self, recipients: Sequence[str]) -> RoutingAddress | None:
        for r in recipients:
            if r.lower() in self.routing:
                return self.routing[r.lower()]
        return None
