"""The message trace keeps a mail's Message-ID header as the mail wrote it, next to the normalised id it
is keyed and threaded by: mails with a malformed header (no angle brackets, a missing `>`, a comment, an
empty header) sent through the real SMTP listener on each deployment, then `casegate messages export`
shows each header verbatim and `casegate messages show` finds each mail by what the operator sees."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from casegate.config import Settings
from casegate.ingest.mail.mime import parse_mail
from casegate.store.message_ids import message_id

from tests.pipeline import start_pipeline

# (subject, the Message-ID header line as sent, as the trace shows it, the normalised id)
MAILS = [
    ("no brackets", "Message-ID: abc-1@host.test", "abc-1@host.test", "<abc-1@host.test>"),
    ("no closing bracket", "Message-ID: <abc-2@host.test", "<abc-2@host.test", "<abc-2@host.test>"),
    ("with a comment", "Message-ID:   <abc-3@host.test>  (comment)", "<abc-3@host.test>  (comment)",
     "<abc-3@host.test>"),
    ("empty", "Message-ID: ", "", None),
    ("words", "Message-ID: not an id", "not an id", None),
]


def raw_mail(subject: str, header_line: str, extra: str = "") -> bytes:
    return (f"From: Ada Customer <ada@example.org>\r\nTo: support@localhost\r\nSubject: {subject}\r\n"
            f"{header_line}\r\n{extra}Content-Type: text/plain\r\n\r\nAbout {subject}.\r\n").encode()


async def casegate(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `casegate` command against the pipeline's store."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CASEGATE_")}
    env["CASEGATE_DATA_DIR"] = str(settings.data_path)
    if settings.store.url:
        env["CASEGATE_STORE__URL"] = settings.store.url
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ingest", *args], env=env,
                                   capture_output=True, text=True, timeout=60, check=False)


def test_the_message_id_is_kept_as_written_and_normalised() -> None:
    for subject, line, verbatim, normalised in MAILS:
        parsed = parse_mail(raw_mail(subject, line))
        assert (parsed.message_id_header, parsed.message_id) == (verbatim, normalised), subject
    absent = parse_mail(b"From: a@example.org\r\nSubject: none\r\n\r\nhi\r\n")
    assert (absent.message_id_header, absent.message_id) == (None, None)
    assert message_id("<a@b> <c@d>") == "<a@b>" and message_id("a@b>") == "<a@b>" and message_id("<>") is None
    assert message_id("abc@host ((nested) comment)") == "<abc@host>" and message_id(" (only a comment) ") is None


async def test_export_shows_the_header_as_written_and_show_finds_the_mail_by_it(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings())
    try:
        for subject, line, _, _ in MAILS:
            assert (await p.send(raw_mail(subject, line)))[0] == 250
        # threading keeps using the normalised id: a reply to the bracketless one lands on its case
        assert (await p.send(raw_mail("Re: no brackets", "Message-ID: <reply-1@example.org>",
                                      "In-Reply-To: <abc-1@host.test>\r\n")))[0] == 250
        cases = await p.wait_for(lambda cs: len(cs) == len(MAILS))
        await p.wait_idle()
        assert len(cases) == len(MAILS)
        by_subject = {c["Subject"]: c["CaseNumber"] for c in await p.cases()}
        assert len((await p.case(by_subject["no brackets"]))["EmailMessages"]) == 2
    finally:
        await p.daemon.stop()

    exported = await casegate(p.settings, "messages", "export")
    assert exported.returncode == 0, exported.stderr
    entries = {e["subject"]: e for e in map(json.loads, exported.stdout.splitlines())}
    for subject, _, verbatim, normalised in MAILS:
        entry = entries[subject]
        assert (entry["message_id_header"], entry["message_id"]) == (verbatim, normalised), entry
        assert (entry["outcome"], entry["case_number"]) == ("created", by_subject[subject])
    assert entries["Re: no brackets"]["outcome"] == "threaded"

    async def shown(what: str) -> list[dict[str, Any]]:
        done = await casegate(p.settings, "messages", "show", what, "--json")
        assert done.returncode == 0, f"{what!r}: {done.stderr}"
        found: list[dict[str, Any]] = json.loads(done.stdout)
        return found

    # by the header as written (also as copied with its leading blanks), with or without brackets
    asked = {"no brackets": ["abc-1@host.test", "<abc-1@host.test>"],
             "no closing bracket": ["<abc-2@host.test", "abc-2@host.test", "<abc-2@host.test>"],
             "with a comment": ["<abc-3@host.test>  (comment)", "  <abc-3@host.test>  (comment)",
                                "abc-3@host.test"],
             "empty": [""], "words": ["not an id"]}
    for subject, forms in asked.items():
        for form in forms:
            assert [e["subject"] for e in await shown(form)] == [subject], form
    text = await casegate(p.settings, "messages", "show", "<abc-2@host.test")
    assert text.returncode == 0 and f"on case {by_subject['no closing bracket']} (created" in text.stdout
