"""What `casegate` prints to an operator's terminal when a stranger's mail carries terminal escapes:
text output shows them as escapes (`\\x1b`), never raw; `--json` keeps the value exact yet prints no
raw control or bidi character either."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from casegate.ingest.channels.imap_state import ImapState, MailboxStatus, state_path

from tests.ingest.test_daemon_process import CASEGATE
from tests.pipeline import Pipeline, settings_for, start_pipeline

# sets the terminal title, turns the text red, then a right-to-left override and a C1 CSI (8-bit ESC [)
HOSTILE = (b"=?utf-8?q?=1B]0;pwned=07=1B[31mRED=1B[0m?= =?utf-8?q?=E2=80=AEgnp.exe=C2=9B2J?=")
SUBJECT = "\x1b]0;pwned\x07\x1b[31mRED\x1b[0m\u202egnp.exe\x9b2J"
RAW_CONTROLS = "\x1b\x07\x9b\u202e"


def hostile_mail() -> bytes:
    return (b"From: Ada Customer <ada@example.org>\r\nTo: support@localhost\r\nSubject: " + HOSTILE
            + b"\r\nMessage-ID: <hostile-1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
            + b"look at the subject\r\n")


async def cli(p: Pipeline, *args: str) -> str:
    """`casegate ARGS` as an operator runs it against the pipeline's store; its standard output."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")},
           "CASEGATE_DATA_DIR": str(p.settings.data_path.resolve())}
    run = await asyncio.to_thread(subprocess.run, [CASEGATE, *args], capture_output=True, env=env, timeout=60,
                                  cwd=p.settings.data_path.parent)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    return run.stdout.decode("utf-8")  # strict: it is UTF-8 throughout


def no_raw_controls(out: str) -> bool:
    return not any(c in out for c in RAW_CONTROLS)


async def test_a_subject_with_terminal_escapes_is_shown_escaped_and_exact_in_json(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        assert (await p.send(hostile_mail()))[0] == 250
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert cases[0]["Subject"] == SUBJECT  # the store keeps what was sent; printing it is the CLI's care
        number = cases[0]["CaseNumber"]

        table = await cli(p, "cases", "list")
        assert no_raw_controls(table), table
        assert "\\x1b]0;pwned\\x07\\x1b[31mRED\\x1b[0m" in table

        text = await cli(p, "cases", "show", number)
        assert no_raw_controls(text), text
        shown = "\\x1b]0;pwned\\x07\\x1b[31mRED\\x1b[0m\\u202egnp.exe\\x9b2J"
        assert f"Subject: {shown}" in text and f"<hostile-1@example.org>  {shown}" in text

        trace = await cli(p, "messages", "show", "<hostile-1@example.org>")
        assert no_raw_controls(trace) and "\\x1b]0;pwned" in trace, trace

        subjects: dict[tuple[str, ...], Callable[[str], list[str]]] = {
            ("cases", "list", "--json"): lambda out: [json.loads(out)[0]["Subject"]],
            ("cases", "show", number, "--json"): lambda out: [json.loads(out)["Subject"],
                                                              json.loads(out)["EmailMessages"][0]["Subject"]],
            ("messages", "show", "hostile-1@example.org", "--json"): lambda out: [json.loads(out)[0]["subject"]],
            ("messages", "export"): lambda out: [json.loads(line)["subject"] for line in out.splitlines()]}
        for args, subjects_in in subjects.items():
            out = await cli(p, *args)
            assert no_raw_controls(out), (args, out)
            assert subjects_in(out) and set(subjects_in(out)) == {SUBJECT}, args  # the value, not its escaped text
    finally:
        await p.daemon.stop()


async def test_a_mailbox_error_with_terminal_escapes_is_shown_escaped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    state = ImapState(state_path(data))  # as a mailbox watcher records what its server answered
    await state.save(MailboxStatus(name="gone", source="u@imap.example.com:993/INBOX", state="stopped",
                                   last_error="NO \x1b[2J\x1b]0;pwned\x07 login failed"))
    await state.close()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")},
           "CASEGATE_DATA_DIR": str(data)}
    for args in (["mailboxes", "status"], ["mailboxes", "status", "--json"]):
        run = await asyncio.to_thread(subprocess.run, [CASEGATE, *args], capture_output=True, env=env, timeout=60,
                                      cwd=tmp_path)
        out = run.stdout.decode("utf-8")
        assert run.returncode == 0 and no_raw_controls(out), (run.stderr, out)
        if "--json" in args:
            assert json.loads(out)[0]["last_error"] == "NO \x1b[2J\x1b]0;pwned\x07 login failed"
        else:
            assert "NO \\x1b[2J\\x1b]0;pwned\\x07 login failed" in out
