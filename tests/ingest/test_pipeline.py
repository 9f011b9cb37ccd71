"""The whole path, SMTP → bus → worker → case store, on each deployment: (local bus, SQLite) and
(Kafka via tansu, PostgreSQL)."""

from __future__ import annotations

import asyncio

import aiosmtplib

from tests.pipeline import Pipeline, mail


async def test_new_mail_reply_second_reply_and_unrelated_mail(pipeline: Pipeline) -> None:
    raw, first_id = mail("Printer on fire", "It is on fire.")
    assert (await pipeline.send(raw))[0] == 250
    cases = await pipeline.wait_for(lambda cs: len(cs) == 1)
    assert len(cases) == 1
    case = cases[0]
    assert case["CaseNumber"] == "00001000"
    assert (case["Subject"], case["Description"].strip(), case["Origin"], case["Status"]) == (
        "Printer on fire", "It is on fire.", "Email", "New")
    assert case["ContactEmail"] == "ada@example.org" and case["ContactId"].startswith("003")
    assert case["IsClosed"] is False and case["OwnerName"] == "Support"

    raw, reply_id = mail("Re: Printer on fire", "Still burning.", in_reply_to=first_id)
    assert (await pipeline.send(raw))[0] == 250
    raw, _ = mail("Re: Re: Printer on fire", "Now smoke.", in_reply_to=reply_id, references=[first_id, reply_id])
    assert (await pipeline.send(raw))[0] == 250
    raw, _ = mail("Invoice question", "Unrelated.")
    assert (await pipeline.send(raw))[0] == 250

    cases = await pipeline.wait_for(lambda cs: len(cs) == 2)
    await pipeline.wait_idle()
    assert [c["Subject"] for c in await pipeline.cases()] == ["Printer on fire", "Invoice question"]
    shown = await pipeline.case("00001000")
    assert next(m["MessageIdentifier"] for m in shown["EmailMessages"]) == first_id
    assert len(shown["EmailMessages"]) == 3
    assert all(m["Incoming"] and m["ParentId"] == case["Id"] for m in shown["EmailMessages"])
    kinds = [f["Type"] for f in shown["Feed"]]
    assert kinds.count("EmailMessageEvent") == 3 and kinds.count("ThreadingRule") == 2
    assert "CaseCreated" in kinds and "AssignmentRule" in kinds
    assert shown["SourceId"] == shown["EmailMessages"][0]["Id"]
    other = await pipeline.case("00001001")
    assert len(other["EmailMessages"]) == 1


async def test_unrouted_recipient_is_refused_with_550(pipeline: Pipeline) -> None:
    raw, _ = mail("relay attempt", to="someone@elsewhere.test")
    code, text = await pipeline.send(raw, rcpt="someone@elsewhere.test")
    assert code == 550 and text.startswith("5.1.1")


async def test_oversize_mail_is_refused_with_552(deployment_settings) -> None:  # type: ignore[no-untyped-def]
    from tests.pipeline import start_pipeline

    p = await start_pipeline(deployment_settings(smtp={"max_message_size": 4096}))
    try:
        raw, _ = mail("big", "x" * 10000)
        code, _ = await p.send(raw)
        assert code == 552
        raw, _ = mail("small", "fits")
        assert (await p.send(raw))[0] == 250
        assert len(await p.wait_for(lambda cs: len(cs) == 1)) == 1
    finally:
        await p.daemon.stop()


async def test_200_concurrent_mails_from_20_senders_get_200_gapless_case_numbers(pipeline: Pipeline) -> None:
    async def sender(i: int) -> list[int]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=pipeline.daemon.smtp_port, timeout=30)
        await client.connect()
        try:
            codes = []
            for j in range(10):
                raw, _ = mail(f"question {i}-{j}", sender=f"Customer {i} <c{i}@example.org>")
                codes.append((await pipeline.send(raw, sender=f"c{i}@example.org", client=client))[0])
            return codes
        finally:
            await client.quit()

    results = await asyncio.gather(*(sender(i) for i in range(20)))
    assert all(code == 250 for codes in results for code in codes)
    cases = await pipeline.wait_for(lambda cs: len(cs) >= 200, timeout=60)
    numbers = sorted(int(c["CaseNumber"]) for c in cases)
    assert numbers == list(range(1000, 1200))
    assert len({c["ContactId"] for c in cases}) == 20


async def test_same_mail_to_two_addresses_in_one_transaction_is_one_message(deployment_settings) -> None:  # type: ignore[no-untyped-def]
    from tests.pipeline import start_pipeline

    p = await start_pipeline(deployment_settings(routing=[{"address": "support@localhost"},
                                                          {"address": "billing@localhost", "priority": "High"}]))
    try:
        raw, _ = mail("to both", to="support@localhost, billing@localhost")
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=p.daemon.smtp_port, timeout=10)
        await client.connect()
        errors, _ = await client.sendmail("ada@example.org", ["support@localhost", "billing@localhost"], raw)
        await client.quit()
        assert errors == {}
        assert (await p.send(raw, rcpt="billing@localhost"))[0] == 250  # and once more on its own
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        cases = await p.cases()
        assert len(cases) == 1
        assert len((await p.case(cases[0]["CaseNumber"]))["EmailMessages"]) == 1
    finally:
        await p.daemon.stop()
