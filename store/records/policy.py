"""What the record layer needs from the configuration, resolved once where the API starts: the `[case]`
picklists and status model, what closing requires, the external-id fields of upserts, the assignment
rules and default owner new cases are given (`[rules]`, the same the worker runs), and what agents'
replies need: how an outgoing EmailMessage is sent (`store.agent_replies.ReplyPolicy`: `[outbound]`, the
routing addresses and the thread-token key) and the check a messaging reply passes before it is queued
(the providers' limits and windows, built by the API from the configured reply senders, which live in
ingest). Without a reply policy an outgoing EmailMessage is refused; without a check a messaging reply
meets only the store's own refusals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from casegate.config import CaseSettings, RulesSettings, Settings
from casegate.rules.lifecycle import StatusModel
from casegate.store.agent_replies import ReplyCheck, ReplyPolicy
from casegate.store.records.objects import OBJECTS

EXTERNAL_ID_TYPES = frozenset({"string", "email", "url", "phone"})


@dataclass(frozen=True)
class RecordPolicy:
    case: CaseSettings = field(default_factory=CaseSettings)
    rules: RulesSettings = field(default_factory=RulesSettings)
    replies: ReplyPolicy | None = None
    """How an outgoing EmailMessage is sent (through the outbox, as an agent's reply); None: it is refused."""
    conversation_check: ReplyCheck | None = None
    """What a messaging reply (a ConversationEntry) must pass before it is queued: its provider's limits."""
    statuses: StatusModel = field(init=False)
    picklists: Mapping[str, tuple[str, ...]] = field(init=False)
    """`[case]` list name (statuses, priorities ...) → its values, as FieldSpec.picklist names them."""
    external_ids: Mapping[str, tuple[str, ...]] = field(init=False)
    """Object → the fields upserts find its records by (besides Id)."""

    def __post_init__(self) -> None:
        statuses = StatusModel.of(self.case)
        object.__setattr__(self, "statuses", statuses)
        object.__setattr__(self, "picklists", MappingProxyType({
            "statuses": statuses.all, "priorities": tuple(self.case.priorities), "types": tuple(self.case.types),
            "reasons": tuple(self.case.reasons), "origins": tuple(self.case.origins)}))
        ext: dict[str, tuple[str, ...]] = {}
        for obj, names in self.case.external_ids.items():
            found = []
            for name in names:
                f = OBJECTS[obj].field(name)
                if f is None or f.column is None or f.type not in EXTERNAL_ID_TYPES:
                    raise ValueError(f"case.external_ids.{obj}: {name!r} is not a text field of {obj} records can "
                                     "be found by")
                found.append(f.name)
            ext[obj] = tuple(found)
        object.__setattr__(self, "external_ids", MappingProxyType(ext))

    @classmethod
    def of(cls, settings: Settings, thread_secret: bytes | None = None,
           conversation_check: ReplyCheck | None = None) -> RecordPolicy:
        """The policy of `settings`; with the thread-token key, outgoing EmailMessages are sent."""
        replies = ReplyPolicy.of(settings, thread_secret) if thread_secret is not None else None
        return cls(settings.case, settings.rules, replies, conversation_check)

    @property
    def merged_status(self) -> str:
        return self.case.merged_status or self.statuses.closed[0]


DEFAULT_POLICY = RecordPolicy()
"""The defaults of `[case]` and `[rules]`: what a caller that passes no policy gets."""
