"""The one list of channels (config.channel_list) and the table of HTTP channels derived from it
(ingest.channels.table): the list agrees with the envelope's `Channel` and the config sections, the
table and the case store's defaults come from it, unknown, missing and duplicate names are refused
(when the modules are imported too), and the registry mounts from the table in each role."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, get_args

import pytest
from casegate.config.channel_list import (
    ENVELOPE_CHANNELS,
    ORIGINS,
    WEBHOOK_CHANNELS,
    Channel,
    ChannelListError,
    EnvelopeChannel,
    WebhookChannel,
    check_channel_list,
)
from casegate.config.channels import ChannelsSettings
from casegate.ingest import envelope
from casegate.ingest.channels.base import HttpChannel, StoreReadingChannel
from casegate.ingest.channels.table import CHANNELS, ChannelTableError, channel_table
from casegate.store import channel_policy
from casegate.store.channel_policy import SECTION_OF_CHANNEL, ChannelPolicy, origin_of, policy_for

from tests.ingest.test_hostile_webhooks import all_channels
from tests.pipeline import settings_for, start_pipeline

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = list(ChannelsSettings.model_fields)
HANDLERS = [(name, spec.module) for name, spec in CHANNELS.items()]


def channel_module(name: str) -> Any:
    """A module that satisfies HttpChannel and is in no table yet."""
    module = types.ModuleType(name)
    module.mount = lambda app, ctx: None  # type: ignore[attr-defined]
    return module


# -- the list ---------------------------------------------------------------------------------------
def test_the_list_has_one_row_for_each_value_of_channel_and_each_config_section() -> None:
    assert sorted(row.value for row in ENVELOPE_CHANNELS) == sorted(get_args(Channel))
    assert len(ENVELOPE_CHANNELS) == len(get_args(Channel))
    assert [hook.name for hook in WEBHOOK_CHANNELS] == SECTIONS
    assert envelope.Channel is Channel  # the envelope validates by the list's type, not a copy of it


@pytest.mark.parametrize(("envelope_rows", "webhook_rows", "error"), [
    ([*ENVELOPE_CHANNELS, EnvelopeChannel("fax", "Fax", None)], WEBHOOK_CHANNELS,  # type: ignore[arg-type]
     "envelope channel 'fax' is not in Channel"),
    ([*ENVELOPE_CHANNELS, EnvelopeChannel("sms", "Text", "twilio")], WEBHOOK_CHANNELS, "'sms' is listed twice"),
    ([r for r in ENVELOPE_CHANNELS if r.value != "api"], WEBHOOK_CHANNELS, "Channel values without a row: api"),
    ([dataclasses.replace(r, section="fax") if r.value == "chat" else r for r in ENVELOPE_CHANNELS],
     WEBHOOK_CHANNELS, "envelope channel 'chat': 'fax' is no config section"),
    (ENVELOPE_CHANNELS, [*WEBHOOK_CHANNELS, WebhookChannel("fax", ("sms",))], "'fax' is no config section"),
    (ENVELOPE_CHANNELS, [*WEBHOOK_CHANNELS, WebhookChannel("chat", ("chat",))], "'chat' is listed twice"),
    (ENVELOPE_CHANNELS, [WebhookChannel("chat", ()) if h.name == "chat" else h for h in WEBHOOK_CHANNELS],
     "'chat' publishes on no envelope channel"),
    (ENVELOPE_CHANNELS, [WebhookChannel("chat", ("chat", "fax")) if h.name == "chat" else h  # type: ignore[arg-type]
                         for h in WEBHOOK_CHANNELS], "'chat': unknown envelope channel 'fax'"),
    (ENVELOPE_CHANNELS, [h for h in WEBHOOK_CHANNELS if h.name != "x"], "config sections without a channel: x"),
    (ENVELOPE_CHANNELS, [*WEBHOOK_CHANNELS[1:], WEBHOOK_CHANNELS[0]], "ChannelsSettings has web_form, twilio"),
])
def test_a_list_that_contradicts_channel_or_the_config_sections_is_refused(
        envelope_rows: list[EnvelopeChannel], webhook_rows: list[WebhookChannel], error: str) -> None:
    check_channel_list(ENVELOPE_CHANNELS, WEBHOOK_CHANNELS)  # the list as it is passes
    with pytest.raises(ChannelListError, match=error):
        check_channel_list(envelope_rows, webhook_rows)


# -- the table and the case store, derived from it ---------------------------------------------------
def test_every_channel_of_the_list_is_one_row_whose_module_mounts_it() -> None:
    assert list(CHANNELS) == SECTIONS
    assert all(isinstance(spec.module, HttpChannel) for spec in CHANNELS.values())
    assert [name for name, spec in CHANNELS.items() if isinstance(spec.module, StoreReadingChannel)] == ["cti"]
    for hook in WEBHOOK_CHANNELS:
        assert dict(CHANNELS[hook.name].origins) == {c: ORIGINS[c] for c in hook.publishes}


def test_the_case_store_takes_its_origins_and_sections_from_the_list() -> None:
    assert channel_policy.ORIGINS is ORIGINS
    assert CHANNELS["meta"].origins == {"whatsapp": "WhatsApp", "messenger": "Messenger", "instagram": "Instagram"}
    for channel, section in SECTION_OF_CHANNEL.items():
        assert channel in CHANNELS[section].origins, (channel, section)
    policies = {name: ChannelPolicy(priority=name) for name in SECTIONS}
    for row in ENVELOPE_CHANNELS:  # a message that names no source: the section of its envelope channel
        policy = policy_for(policies, row.value, None)
        assert policy.priority == (row.section or "Medium"), row
        assert origin_of(policy, row.value) == row.origin
    assert origin_of(ChannelPolicy(origin="Partner"), "sms") == "Partner"


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ChannelTableError, match="'fax' is not in the list of channels"):
        channel_table([*HANDLERS, ("fax", channel_module("fax"))])


def test_a_duplicate_name_is_refused() -> None:
    with pytest.raises(ChannelTableError, match="'chat' is listed twice"):
        channel_table([*HANDLERS, ("chat", channel_module("chat_again"))])


@pytest.mark.parametrize(("module", "error"), [
    (CHANNELS["x"].module, "channels 'x' and 'chat' name the same module"),
    (types.ModuleType("no_mount"), "'chat': its module has no mount"),
])
def test_a_row_whose_module_is_taken_or_mounts_nothing_is_refused(module: Any, error: str) -> None:
    with pytest.raises(ChannelTableError, match=error):
        channel_table([(name, module if name == "chat" else m) for name, m in HANDLERS])


def test_a_channel_of_the_list_without_a_handler_is_refused() -> None:
    with pytest.raises(ChannelTableError, match="channels without a handler: fax"):
        channel_table(HANDLERS, channels=[*WEBHOOK_CHANNELS, WebhookChannel("fax", ("sms",))])


@pytest.mark.parametrize(("patch", "error"), [
    ("import casegate.config.channels as c\n"
     "c.ChannelsSettings.model_fields['fax'] = c.ChannelsSettings.model_fields['chat']",
     "ChannelListError: config sections without a channel: fax"),
    ("import casegate.config.channel_list as c\n"
     "c.WEBHOOK_CHANNELS = (*c.WEBHOOK_CHANNELS, c.WebhookChannel('fax', ('sms',)))",
     "ChannelTableError: channels without a handler: fax"),
])
def test_importing_a_list_or_table_that_does_not_fit_fails(patch: str, error: str) -> None:
    run = subprocess.run([sys.executable, "-c", f"{patch}\nimport casegate.ingest.channels.table"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0
    assert error in run.stderr, run.stderr[-2000:]


@pytest.mark.parametrize(("role", "mounted"), [("ingest", list(CHANNELS)), ("worker", ["cti"])])
async def test_the_registry_mounts_the_enabled_channels_of_the_table_each_role_what_it_serves(
        tmp_path: Path, role: str, mounted: list[str]) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=all_channels()), role=role)
    try:
        assert p.daemon.webhooks == mounted
    finally:
        await p.daemon.stop()
    only_chat = await start_pipeline(settings_for("local-sqlite", tmp_path / "chat",
                                                  channels={"chat": all_channels()["chat"]}), role=role)
    try:
        assert only_chat.daemon.webhooks == (["chat"] if role == "ingest" else [])
    finally:
        await only_chat.daemon.stop()
