"""How the case service treats messages that are not emails, per configured channel section: the
Origin, Priority and owner of the cases they open, how long one conversation stays on one case, what
a message after the case closed does, and (web form) how many cases a day may open. The defaults per
envelope channel come from the one list of channels (`config.channel_list`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import get_args

from casegate.config import Settings, channel_list
from casegate.config.channels import CaseFieldName, ChannelBase, WebFormChannel

ORIGINS: Mapping[str, str] = channel_list.ORIGINS
"""Envelope channel → the Case Origin of its cases, unless the section or routing address sets one."""
SECTION_OF_CHANNEL: Mapping[str, str] = MappingProxyType(
    {row.value: row.section for row in channel_list.ENVELOPE_CHANNELS if row.section is not None})
"""Envelope channel → the section whose policy applies when a message does not name its `source`."""
CASE_FIELDS: tuple[str, ...] = get_args(CaseFieldName)
"""Case fields a sender may supply (the web form's type, reason, priority and mapped custom fields)."""
SUBJECT_FROM_TEXT = 80


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    origin: str | None = None
    priority: str = "Medium"
    owner: str | None = None
    window_hours: float = 24.0
    closed_case_policy: str = "reopen_within_days"
    reopen_within_days: int = 7
    daily_cap: int | None = None

    @classmethod
    def of(cls, section: ChannelBase) -> ChannelPolicy:
        return cls(origin=section.origin or None, priority=section.priority, owner=section.owner,
                   window_hours=section.conversation_window_hours,
                   closed_case_policy=section.closed_case_policy, reopen_within_days=section.reopen_within_days,
                   daily_cap=section.daily_cap if isinstance(section, WebFormChannel) else None)


def channel_policies(settings: Settings) -> dict[str, ChannelPolicy]:
    """Section name → policy, for every channel section (enabled or not: a replayed message still works)."""
    channels = settings.channels
    return {name: ChannelPolicy.of(getattr(channels, name)) for name in type(channels).model_fields}


def policy_for(policies: Mapping[str, ChannelPolicy], channel: str, source: str | None) -> ChannelPolicy:
    section = source or SECTION_OF_CHANNEL.get(channel, channel)
    return policies.get(section) or ChannelPolicy()


def origin_of(policy: ChannelPolicy, channel: str) -> str:
    return policy.origin or ORIGINS.get(channel, channel.title())


def subject_of(subject: str | None, text: str | None) -> str | None:
    """The subject given, else the first non-empty line of the message cut at 80 characters."""
    if subject and subject.strip():
        return subject.strip()
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:SUBJECT_FROM_TEXT]
    return None
