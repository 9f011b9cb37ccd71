"""The one table of HTTP channels (ingest.channels.table): it covers every config section once, agrees
with the case store's defaults, refuses unknown and duplicate names (when the module is imported too),
and the registry mounts from it in each role."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from casegate.ingest.channels.base import HttpChannel, StoreReadingChannel
from casegate.ingest.channels.table import CHANNELS, SECTIONS, ChannelSpec, ChannelTableError, channel_table
from casegate.store.channel_policy import ORIGINS, SECTION_OF_CHANNEL

from tests.ingest.test_hostile_webhooks import all_channels
from tests.pipeline import settings_for, start_pipeline

ROOT = Path(__file__).resolve().parents[2]


def channel_module(name: str) -> Any:
    """A module that satisfies HttpChannel and is in no table yet."""
    module = types.ModuleType(name)
    module.mount = lambda app, ctx: None  # type: ignore[attr-defined]
    return module


def test_every_config_section_is_one_channel_whose_module_mounts_it() -> None:
    assert list(CHANNELS) == list(SECTIONS)
    assert all(isinstance(spec.module, HttpChannel) for spec in CHANNELS.values())
    assert [name for name, spec in CHANNELS.items() if isinstance(spec.module, StoreReadingChannel)] == ["cti"]


def test_the_default_origins_and_sections_agree_with_the_case_store() -> None:
    for spec in CHANNELS.values():
        for channel, origin in spec.origins.items():
            assert ORIGINS[channel] == origin, (spec.name, channel)
    for channel, section in SECTION_OF_CHANNEL.items():
        assert channel in CHANNELS[section].origins, (channel, section)


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ChannelTableError, match="'fax' is no config section"):
        channel_table([*CHANNELS.values(), ChannelSpec("fax", {"sms": "SMS"}, channel_module("fax"))])


def test_a_duplicate_name_is_refused() -> None:
    again = ChannelSpec("chat", {"chat": "Chat"}, channel_module("chat_again"))
    with pytest.raises(ChannelTableError, match="'chat' is listed twice"):
        channel_table([*CHANNELS.values(), again])


@pytest.mark.parametrize(("change", "error"), [
    ({"origins": {"fax": "Fax"}}, "'chat': unknown envelope channel 'fax'"),
    ({"origins": {"chat": "Chat", "sms": "Text"}},
     r"'sms' has two default Origins: 'SMS' \(twilio\) and 'Text' \(chat\)"),
    ({"origins": {}}, "'chat' publishes on no envelope channel"),
    ({"module": CHANNELS["x"].module}, "channels 'x' and 'chat' name the same module"),
    ({"module": types.ModuleType("no_mount")}, "'chat': its module has no mount"),
])
def test_a_row_that_contradicts_the_envelope_or_another_row_is_refused(change: dict[str, Any], error: str) -> None:
    rows = [dataclasses.replace(spec, **change) if name == "chat" else spec for name, spec in CHANNELS.items()]
    with pytest.raises(ChannelTableError, match=error):
        channel_table(rows)


def test_a_config_section_without_a_channel_is_refused() -> None:
    with pytest.raises(ChannelTableError, match="config sections without a channel: fax"):
        channel_table(CHANNELS.values(), sections=[*SECTIONS, "fax"])


@pytest.mark.parametrize(("patch", "error"), [
    ("import config.channels as c; c.ChannelsSettings.model_fields['fax'] = c.ChannelsSettings.model_fields['chat']",
     "config sections without a channel: fax"),
    ("import typing, ingest.envelope as e; e.Channel = typing.Literal['email', 'web']",
     "unknown envelope channel 'sms'"),
])
def test_importing_a_table_that_does_not_fit_fails(patch: str, error: str) -> None:
    run = subprocess.run([sys.executable, "-c", f"{patch}\nimport ingest.channels.table"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode != 0
    assert "ChannelTableError" in run.stderr and error in run.stderr, run.stderr[-2000:]


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
