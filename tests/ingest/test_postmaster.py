"""RFC 5321 §4.5.1: a server must accept mail to `postmaster`. Over real SMTP: `RCPT TO:<postmaster>` in
any case, and `postmaster@` the domain of any routing address, are accepted and become cases as if sent
to `smtp.postmaster` (the first routing address by default); postmaster at a foreign domain is still
refused like any other stranger (never an open relay)."""

from __future__ import annotations

from pathlib import Path

import aiosmtplib

from tests.pipeline import mail, settings_for, start_pipeline

ROUTING = [{"address": "support@localhost", "priority": "Low"},
           {"address": "billing@example.com", "priority": "High"}]


async def test_postmaster_goes_to_the_first_routing_address_by_default(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, routing=ROUTING))
    try:
        for i, rcpt in enumerate(["postmaster", "PostMaster", "POSTMASTER@localhost", "postmaster@Example.COM"]):
            code, reply = await p.send(mail(f"to {rcpt}", to=rcpt)[0], rcpt=rcpt, sender=f"c{i}@example.org")
            assert code == 250, (rcpt, reply)
        cases = await p.wait_for(lambda cs: len(cs) == 4)
        assert sorted((c["Subject"], c["Priority"]) for c in cases) == [  # the first routing address's defaults
            ("to POSTMASTER@localhost", "Low"), ("to PostMaster", "Low"), ("to postmaster", "Low"),
            ("to postmaster@Example.COM", "Low")]
    finally:
        await p.daemon.stop()


async def test_postmaster_goes_to_the_configured_routing_address(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, routing=ROUTING,
                                          smtp={"postmaster": "Billing@example.com"}))
    try:
        assert (await p.send(mail("bounce trouble", to="postmaster")[0], rcpt="postmaster"))[0] == 250
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert (cases[0]["Subject"], cases[0]["Priority"]) == ("bounce trouble", "High")
    finally:
        await p.daemon.stop()


async def test_postmaster_and_the_routing_address_in_one_transaction_is_one_message(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=p.daemon.smtp_port, timeout=10)
        await client.connect()
        errors, _ = await client.sendmail("ada@example.org", ["support@localhost", "postmaster"],
                                          mail("twice addressed")[0])
        await client.quit()
        assert errors == {}
        await p.wait_idle()
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert len(cases) == 1 and len((await p.case(cases[0]["CaseNumber"]))["EmailMessages"]) == 1
    finally:
        await p.daemon.stop()


async def test_postmaster_elsewhere_is_refused_like_any_stranger(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        for rcpt in ("postmaster@elsewhere.example", "postmaster-x@localhost", "xpostmaster"):
            code, reply = await p.send(mail("relay?")[0], rcpt=rcpt)
            assert code == 550 and "5.1.1" in reply, (rcpt, code, reply)
    finally:
        await p.daemon.stop()
