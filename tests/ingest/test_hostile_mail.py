"""Hostile mail: charsets that are no text charsets (punycode decodes in quadratic time; idna and undefined
raise) in RFC 2047 words, body charsets and RFC 2231 parameters are read as unknown charsets, tolerantly
and in linear time; a mail of 10,000 tiny parts keeps its first `max_attachments` as attachments, records
the cut and keeps the raw original. Through `parse_mail`, and over SMTP (a real client) to a case."""

from __future__ import annotations

import base64
import codecs
import functools
import random
import time
from pathlib import Path

from casegate.config.mail import MailSettings
from casegate.ingest.bus.local import LocalBus
from casegate.ingest.envelope import Envelope, decode
from casegate.ingest.mail.charsets import TEXT_CODECS, form_codec, text_codec
from casegate.ingest.mail.mime import MAX_ATTACHMENTS, parse_mail
from casegate.store.models import Attachment

from tests.ingest.test_web_form import running
from tests.pipeline import Pipeline, settings_for

NOT_TEXT = ["punycode", "idna", "undefined", "rot13", "base64_codec", "zlib_codec", "uu", "hex", "bz2_codec",
            "quopri_codec", "unicode_escape", "raw_unicode_escape"]


@functools.cache
def punycode(chars: int) -> bytes:
    """Valid punycode of `chars` random CJK characters, on which CPython's email package spends time
    quadratic in its length (`make_header` decodes it, then encodes it back to check it): as this does,
    1.6 s for 3,000 characters."""
    rng = random.Random(chars)
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(chars)).encode("punycode")


def word(charset: str, data: bytes) -> str:
    return f"=?{charset}?b?{base64.b64encode(data).decode()}?="


def folded_words(charset: str, data: bytes) -> str:
    """`data` as encoded words of at most 75 characters on folded lines (SMTP takes lines of 1,000 bytes
    at most); decoders join adjacent words of one charset before decoding them as one text."""
    return "\r\n ".join(word(charset, data[i:i + 45]) for i in range(0, len(data), 45))


def folded_param(name: str, charset: str, data: bytes) -> bytes:
    """An RFC 2231 parameter in continuations: `name*0*=charset''...; name*1*=...`."""
    chunks = [data[i:i + 60] for i in range(0, len(data), 60)]
    return b";\r\n ".join(b"%s*%d*=%s%s" % (name.encode(), n, (charset.encode() + b"''") if n == 0 else b"", c)
                           for n, c in enumerate(chunks))


def lines(data: bytes) -> bytes:
    return b"\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))


def test_the_charset_allow_list() -> None:
    assert all(codecs.lookup(name).name == name for name in TEXT_CODECS)
    for label, codec in [("UTF8", "utf-8"), ('"latin1"', "iso8859-1"), ("Shift-JIS", "shift_jis"),
                         ("windows-1252", "cp1252"), ("KOI8-R", "koi8-r"), ("ks_c_5601-1987", "euc_kr"),
                         ("GB2312", "gb2312"), ("big5", "big5"), ("ISO-2022-JP", "iso2022_jp"), ("UTF-16", "utf-16")]:
        assert text_codec(label) == codec == form_codec(label), label
    for bad in [*NOT_TEXT, "base64", "zlib", "utf-\x00", "x" * 5000, "", None, "x-unknown"]:
        assert text_codec(bad) is None and form_codec(bad) is None, bad
    assert (text_codec("utf-7"), form_codec("utf-7")) == ("utf-7", None)  # mail has it; no browser sends it


def test_codecs_that_are_no_charset_are_read_as_unknown_charsets_everywhere() -> None:
    for label in NOT_TEXT:
        raw = (f"From: {word(label, b'Ada')} <ada@example.org>\r\nSubject: {word(label, b'Hello')} there\r\n"
               "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary*=" + label + "''b\r\n\r\n"
               "--b\r\nContent-Type: text/plain; charset=" + label + "\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "caf\xe9\r\n--b\r\nContent-Type: text/html; charset*=" + label + "''x\r\n\r\n<p>html</p>\r\n"
               "--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=" + label +
               "''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF\r\n--b--\r\n").encode("latin-1")
        p = parse_mail(raw)
        assert (p.from_name, p.subject, p.text, p.html) == ("Ada", "Hello there", "café", "<p>html</p>"), label
        assert [(a.name, a.data) for a in p.parts] == [("résumé.pdf", b"%PDF")], label


def test_a_punycode_word_costs_no_more_than_utf8() -> None:
    data = punycode(3000)  # 9 kB; CPython's make_header: 1.6 s for this one word
    raw = (f"From: a@example.org\r\nSubject: {word('punycode', data)}\r\n"
           f"Content-Type: text/plain; charset=punycode\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode() + data
    started = time.perf_counter()
    p = parse_mail(raw)
    assert time.perf_counter() - started < 0.5
    assert p.subject == data.decode("ascii") and p.text == data.decode("ascii")


def punycode_mail(data: bytes) -> bytes:
    """Punycode in RFC 2047 words (From, Subject, three more headers), as the body's charset, and in an
    RFC 2231 file name: each decoded as punycode by CPython's email package."""
    headers = "".join(f"X-Note-{i}: {folded_words('punycode', data)}\r\n" for i in range(3))
    return (f"From: {folded_words('punycode', data[:3000])} <ada@example.org>\r\nTo: support@localhost\r\n"
            f"Subject: {folded_words('punycode', data)}\r\nMessage-ID: <puny@example.org>\r\n{headers}"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            "Content-Type: text/plain; charset=punycode\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode() + (
        lines(data) + b"\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n "
        + folded_param("filename", "punycode", data[:15000]) + b"\r\n\r\nx\r\n--b--\r\n")


async def test_a_mail_with_punycode_words_and_charsets_becomes_a_case_at_once(tmp_path: Path) -> None:
    data = punycode(3000)  # CPython's email package: 1.6 s for each of six words, with SMTP and HTTP frozen
    raw = punycode_mail(data)
    assert len(raw) < 1024 * 1024  # parsed on the event loop, as most mail is
    parsed = parse_mail(raw)
    assert (parsed.subject, [a.name for a in parsed.parts]) == (data.decode(), [data[:15000].decode()[:255]])
    async with running(settings_for("local-sqlite", tmp_path)) as p:
        started = time.perf_counter()
        code, _ = await p.send(raw)
        assert code == 250
        assert time.perf_counter() - started < 2  # 10 s before
        [summary] = await p.wait_for(lambda cs: len(cs) == 1)
        case = await p.case(summary["CaseNumber"])
        assert case["Subject"] == data.decode()[:255]
        assert case["Description"].replace("\r\n", "").startswith(data.decode()[:1000])
        assert [a["Name"] for a in case["Attachments"]] == [data[:15000].decode()[:255]]


def tiny_parts(n: int) -> bytes:
    parts = b"".join(b"--b\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=\"p%d.bin\"\r\n\r\n%d\r\n" % (i, i) for i in range(n))
    return (b"From: Ada <ada@example.org>\r\nTo: support@localhost\r\nSubject: ten thousand parts\r\n"
            b"Message-ID: <parts@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\nsee the parts\r\n" + parts + b"--b--\r\n")


def test_parts_beyond_max_attachments_are_left_out_and_the_cut_recorded() -> None:
    assert MailSettings().max_attachments == MAX_ATTACHMENTS == 100
    raw = tiny_parts(250)
    p = parse_mail(raw)
    assert [a.name for a in p.parts] == [f"p{i}.bin" for i in range(100)]
    assert (p.text, p.truncated, p.attachments_left_out) == ("see the parts", ["attachments"], 150)
    assert "more than 100 attachments: 150 more not stored (they are in the raw original)" in p.defects
    p = parse_mail(raw, max_attachments=3)
    assert ([a.data for a in p.parts], p.attachments_left_out) == ([b"0", b"1", b"2"], 247)
    assert parse_mail(raw, max_attachments=0).parts == []
    p = parse_mail(raw, max_attachments=250)
    assert (len(p.parts), p.truncated, p.attachments_left_out) == (250, [], 0)


async def envelope_of(p: Pipeline, external_id: str) -> Envelope:
    bus = p.daemon.bus
    assert isinstance(bus, LocalBus)
    found = [e for e in (decode(r.value) for r in await bus.read(p.settings.bus.topic, limit=100))
             if e.external_id == external_id]
    assert len(found) == 1
    return found[0]


async def test_a_mail_of_ten_thousand_tiny_parts_is_one_case_with_the_first_hundred(tmp_path: Path) -> None:
    async with running(settings_for("local-sqlite", tmp_path)) as p:
        code, _ = await p.send(tiny_parts(10_000))
        assert code == 250
        [summary] = await p.wait_for(lambda cs: len(cs) == 1)
        case = await p.case(summary["CaseNumber"])
        assert (case["Subject"], case["Description"]) == ("ten thousand parts", "see the parts")
        assert sorted(a["Name"] for a in case["Attachments"]) == sorted(f"p{i}.bin" for i in range(100))
        assert await p.count(Attachment) == 100  # it made 10,000 rows (and 10,000 blobs)
        envelope = await envelope_of(p, "<parts@example.org>")
        assert envelope.meta["truncated"] == "attachments"
        assert "9900 more not stored" in envelope.meta["defects"]
        assert envelope.raw_sha256 is not None and p.daemon.blobs.exists(envelope.raw_sha256)
        assert await p.daemon.blobs.get(envelope.raw_sha256) == tiny_parts(10_000)  # the raw original, whole
