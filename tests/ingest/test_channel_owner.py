"""The owner a webhook channel section names (`[channels.<name>] owner`) is resolved at start like every
other owner the settings name, so the cases the channel opens get it — over real HTTP on loopback,
through the bus and the worker, on each deployment."""

from __future__ import annotations

from collections.abc import Callable

from casegate.config import Settings
from casegate.ingest.app.daemon import owner_refs

from tests.ingest.test_chat import channels, message, post
from tests.pipeline import start_pipeline


def test_every_owner_the_settings_name_is_resolved_at_start() -> None:
    settings = Settings(channels={"chat": {"owner": "queue:Chat Team"}, "cti": {"owner": "user:Sam@Example.org"}})
    assert owner_refs(settings) == {"queue:Support", "queue:Chat Team", "user:Sam@Example.org"}


async def test_a_chat_case_gets_the_owner_of_its_channel(deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels=channels(owner="queue:Chat Team")))
    try:
        assert await post(p, message("m-owner-1", "My invoice is wrong")) == (200, {"accepted": 1})
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert [(c["Origin"], c["OwnerName"]) for c in cases] == [("Chat", "Chat Team")]
        [feed] = [f["Body"] for f in (await p.case(cases[0]["CaseNumber"]))["Feed"] if f["Type"] == "AssignmentRule"]
        assert feed == "no assignment entry matched: owner of chat channel"
    finally:
        await p.daemon.stop()
