"""Assignment rules on cases from the real channels, end to end (signed Twilio webhooks and Web-to-Case
posts over HTTP on loopback, through the bus and the worker, on each deployment): an entry matches the
case as it is stored — an SMS's Subject is the first line of its text, a web form's Priority is the one
the form gave, else the channel's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings

from tests.ingest.test_twilio import MESSAGING, Twilio, sms, twilio_section
from tests.ingest.test_web_form import FORM, post, running, web_form
from tests.pipeline import start_pipeline


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def rule(name: str, owner: str, **criteria: Any) -> dict[str, Any]:
    return {"assignment": [{"name": name, "owner": owner, **criteria}]}


def assignment_feed(case: dict[str, Any]) -> str:
    [entry] = [f["Body"] for f in case["Feed"] if f["Type"] == "AssignmentRule"]
    body: str = entry
    return body


async def test_an_sms_is_routed_by_a_keyword_in_its_first_line(deployment_settings: Callable[..., Settings],
                                                                 http: aiohttp.ClientSession) -> None:
    settings = deployment_settings(channels=twilio_section(),
                                   rules=rule("network", "queue:Network", subject_contains=["router"]))
    p = await start_pipeline(settings)
    try:
        twilio = Twilio(p, http)
        assert (await twilio.post(MESSAGING, sms("My ROUTER is broken\nIt blinks red")))[0] == 200
        # the keyword on the second line is in the Description, not the Subject: not routed
        assert (await twilio.post(MESSAGING, sms("Hello\nmy router is broken", sender="+15551230001")))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        by_subject = {c["Subject"]: c for c in cases}
        assert set(by_subject) == {"My ROUTER is broken", "Hello"}
        routed, other = by_subject["My ROUTER is broken"], by_subject["Hello"]
        assert (routed["Origin"], routed["OwnerName"]) == ("SMS", "Network")
        assert assignment_feed(await p.case(routed["CaseNumber"])) == "assignment rule entry 'network' matched"
        assert other["OwnerName"] == "Support"
        assert assignment_feed(await p.case(other["CaseNumber"])).startswith("no assignment entry matched")
    finally:
        await p.daemon.stop()


async def test_a_web_form_is_routed_by_priority_exactly_when_its_case_is_high(
        deployment_settings: Callable[..., Settings]) -> None:
    settings = deployment_settings(channels=web_form(priority="Low"),
                                   rules=rule("urgent", "queue:Urgent", priority="High"))
    async with running(settings) as p:
        for subject, priority in (("Given High", "High"), ("Given Medium", "Medium"), ("Given none", "")):
            status, _, _ = await post(p, {**FORM, "subject": subject, "priority": priority})
            assert status == 200, subject
        cases = await p.wait_for(lambda cs: len(cs) == 3)
        got = {c["Subject"]: (c["Priority"], c["OwnerName"]) for c in cases}
        assert got == {"Given High": ("High", "Urgent"), "Given Medium": ("Medium", "Support"),
                       "Given none": ("Low", "Support")}
        high = next(c for c in cases if c["Subject"] == "Given High")
        assert assignment_feed(await p.case(high["CaseNumber"])) == "assignment rule entry 'urgent' matched"
