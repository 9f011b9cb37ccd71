"""Real bounces from Mailman's corpus (tests/data/bounces, from flufl.bounce's sdist: see its README):
every notice is recognised with the failed recipients and permanence flufl.bounce's own tests expect,
and through the real pipeline (SMTP listener → bus → worker → case store) at most 3% of the bounces
open a case, with the envelope sender as the notice's From (no null reverse-path to go by) and with
the null reverse-path bounces really carry. The corpus' one person's mail must still open its case."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import pytest
from casegate.ingest.mail.mime import parse_mail
from casegate.ingest.mail.noise import classify
from casegate.store import message_trace

from tests.pipeline import Pipeline, settings_for, start_pipeline

DATA = Path(__file__).parent.parent / "data" / "bounces"
PERSON = "groupwise_03.txt"  # an Outlook reply that once confused flufl.bounce's GroupWise detector
AUTO_REPLY = "qmail_08.txt"  # an autoresponder's "Auto reply" (Precedence: auto_reply), not a bounce
MAX_OPENING = 0.03
"""At most this share of the corpus' bounces may open a case."""
OPENING = {  # the bounces that still open a case when the envelope gives nothing away (README.md says why)
    "simple_20.txt": "a reply-looking subject (RE: ...), an ordinary sender and envelope: nothing says look",
    "simple_43.txt": "From ndr@, no failed address in it: the detectors find nothing",
}

_RETURN_PATH = re.compile(rb"^return-path:[^\n]*\n(?:[ \t][^\n]*\n)*", re.I | re.M)


@dataclass(frozen=True)
class Expected:
    recipients: frozenset[str]
    temporary: bool


def expected() -> dict[str, Expected]:
    """expected.tsv: what flufl.bounce's tests/test_detectors.py expects of each file."""
    rows = {}
    for line in (DATA / "expected.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, recipients, temporary, _detectors = line.split("\t")
        found = frozenset() if recipients == "-" else frozenset(a.lower() for a in recipients.split(","))
        rows[name] = Expected(found, temporary == "yes")
    return rows


EXPECTED = expected()
FILES = sorted(p.name for p in DATA.glob("*.txt"))
BOUNCES = [name for name in FILES if name not in (PERSON, AUTO_REPLY)]


def as_relayed(raw: bytes) -> bytes:
    """The message as an MTA hands it on: without the mbox `From ` line the corpus keeps, without
    `Return-Path` (written only at final delivery: it would give away the envelope), CRLF line ends."""
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    end = raw.find(b"\n\n")
    raw = _RETURN_PATH.sub(b"", raw[:end + 1]) + raw[end + 1:]
    raw = re.sub(rb"\r?\n", b"\r\n", raw)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def envelope_sender(raw: bytes) -> str:
    """The notice's From address (not the null path: what a relay that rewrote the envelope, or a
    broken MTA, sends), or an ordinary address when it has none."""
    return parse_mail(raw).from_email or "relay@example.net"


def test_corpus_is_complete_and_described() -> None:
    assert len(FILES) == 117 and set(EXPECTED) == set(FILES)
    readme = (DATA / "README.md").read_text()
    assert "flufl.bounce 6.0.0" in readme and "Apache" in readme and (DATA / "LICENSE").exists()


@pytest.mark.parametrize("name", FILES)
def test_each_notice_is_read_as_flufl_bounce_expects(name: str) -> None:
    """The failed recipients (lowercased) and permanence flufl.bounce's own tests expect; a notice it
    finds nothing in is still no case unless README.md says why (a person's mail must stay one)."""
    raw = as_relayed((DATA / name).read_bytes())
    noise = classify(parse_mail(raw), raw, envelope_sender(raw))
    want = EXPECTED[name]
    if name == PERSON or name in OPENING:
        assert noise is None
    elif want.recipients:
        assert noise is not None and noise.kind == "bounce", noise
        assert (set(noise.bounced_recipients), noise.permanent) == (set(want.recipients), not want.temporary)
    else:
        assert noise is not None, name


async def _send_all(p: Pipeline, names: list[str], null_sender: bool) -> dict[str, str]:
    """Send each file over one SMTP session; its raw sha256 → file name."""
    sent: dict[str, str] = {}
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=p.daemon.smtp_port, timeout=30)
    await client.connect()
    try:
        for name in names:
            raw = as_relayed((DATA / name).read_bytes())
            code, reply = await p.send(raw, sender="" if null_sender else envelope_sender(raw), client=client)
            assert code == 250, (name, code, reply)
            sent[hashlib.sha256(raw).hexdigest()] = name
    finally:
        await client.quit()
    return sent


async def _outcomes(p: Pipeline, count: int, timeout: float = 120) -> list[dict[str, object]]:
    """The message trace once the worker has handled `count` messages."""
    assert p.daemon.db is not None
    end = time.monotonic() + timeout
    while True:
        entries = [e async for e in message_trace.export(p.daemon.db)]
        if len(entries) >= count or time.monotonic() > end:
            return entries
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("null_sender", [False, True], ids=["envelope-from-notice", "null-reverse-path"])
async def test_at_most_3_percent_of_the_corpus_bounces_open_a_case(tmp_path: Path, null_sender: bool) -> None:
    names = BOUNCES if null_sender else FILES  # a person's mail never comes with the null path
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        sent = await _send_all(p, names, null_sender)
        entries = await _outcomes(p, len(names))
    finally:
        await p.daemon.stop()
    by_file = {sent[str(e["raw_sha256"])]: e for e in entries}
    assert set(by_file) == set(names), sorted(set(names) - set(by_file))
    opened = sorted(n for n in BOUNCES if n in by_file and by_file[n]["outcome"] == "created")
    share = len(opened) / len(BOUNCES)
    figure = f"{len(opened)} of {len(BOUNCES)} corpus bounces opened a case ({share:.1%}): {opened}"
    print(f"\n[{'null reverse-path' if null_sender else 'envelope sender = From'}] {figure}")
    assert share <= MAX_OPENING, figure
    if null_sender:
        assert opened == [], figure
    else:
        assert opened == sorted(OPENING), figure
        assert by_file[PERSON]["outcome"] == "created"
        assert by_file[AUTO_REPLY]["outcome"] == "suppressed" and by_file[AUTO_REPLY]["suppressed"] == "auto-reply"
        kinds = {n: by_file[n].get("suppressed") for n in BOUNCES if n not in opened}
        # the rest are bounces, but for two relayed by a mailing list (List-Id) whose notice names no address
        assert {n for n, k in kinds.items() if k != "bounce"} == {"bounce_01.txt", "dumbass_01.txt"}, kinds
