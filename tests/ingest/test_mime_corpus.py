"""Real-world and hostile mail through `parse_mail`, and through the whole pipeline: CPython's own email test
messages, the collected set in tests/data/mail/ (broken MIME, wrong charsets, unsafe names, hostile HTML),
and messages too big to commit, made here (deep nesting, huge headers, a 25 MB attachment)."""

from __future__ import annotations

import hashlib
import os
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from casegate.ingest.envelope import AttachmentRef
from casegate.ingest.mail.handoff import mail_to_envelope
from casegate.ingest.mail.mime import MAX_BODY_CHARS, MAX_HEADERS_TEXT, MailPart, ParsedMail, parse_mail
from casegate.ingest.mail.text import MAX_FILENAME_BYTES, decode_text, safe_filename
from casegate.store.models import ProcessedMessage
from sqlalchemy import select

from tests.pipeline import Pipeline, mail

CPYTHON_DATA = Path("/usr/lib/python3.11/test/test_email/data")  # Debian: libpython3.11-testsuite
COLLECTED = Path(__file__).resolve().parent.parent / "data" / "mail"


def _messages(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith("msg_") or p.suffix == ".eml")


CPYTHON = _messages(CPYTHON_DATA)
MAILS = _messages(COLLECTED)


def collected(name: str) -> ParsedMail:
    return parse_mail((COLLECTED / name).read_bytes())


def assert_safe_name(name: str) -> None:
    assert name and not name.startswith((".", " ")) and "/" not in name and "\\" not in name
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in name), repr(name)
    assert len(name.encode()) <= MAX_FILENAME_BYTES


def assert_well_formed(p: ParsedMail) -> None:
    """What every parse must give, however broken the input."""
    assert isinstance(p, ParsedMail)
    assert p.text is None or len(p.text) <= MAX_BODY_CHARS
    assert p.html is None or (len(p.html) <= MAX_BODY_CHARS and "<script" not in p.html.lower())
    assert len(p.headers_text) <= MAX_HEADERS_TEXT
    for field in (p.subject, p.from_name, p.text, p.html, p.headers_text):
        assert field is None or "\x00" not in field
    for part in p.parts:
        assert isinstance(part, MailPart) and isinstance(part.data, bytes)
        assert_safe_name(part.name)
    assert set(p.truncated) <= {"text", "html", "headers", "attachments"}


# --- every real message parses ---------------------------------------------------------------------------------

def test_cpython_corpus_is_there() -> None:
    if not CPYTHON:
        pytest.skip(f"no CPython email test data in {CPYTHON_DATA} (Debian package libpython3.11-testsuite)")
    assert len(CPYTHON) >= 40


@pytest.mark.parametrize("path", CPYTHON + MAILS, ids=lambda p: p.name)
def test_every_message_parses(path: Path) -> None:
    assert_well_formed(parse_mail(path.read_bytes()))


def test_cpython_corpus_reads_as_expected() -> None:
    if not CPYTHON:
        pytest.skip("no CPython email test data")
    p = parse_mail((CPYTHON_DATA / "msg_02.txt").read_bytes())  # a MIME digest of five messages
    assert p.subject == "Ppp digest, Vol 1 #2 - 5 msgs"
    assert p.text is not None and p.text.startswith("Send Ppp mailing list submissions to")
    p = parse_mail((CPYTHON_DATA / "msg_10.txt").read_bytes())  # 7bit, 8bit, qp and base64 parts
    assert p.text == "This is a 7bit encoded message.\n"
    assert p.html == "\u00a1This is a Quoted Printable encoded message!"
    assert [part.data for part in p.parts] == [b"This is a Base64 encoded message.",
                                               b"This is a Base64 encoded message.\n",
                                               b"This has no Content-Transfer-Encoding: header.\n"]


# --- the collected set: specific behaviour --------------------------------------------------------------------

def test_html_only_mail_is_sanitised_and_gives_text_with_line_breaks() -> None:
    p = collected("html_only_xss.eml")
    assert p.html is not None
    lowered = p.html.lower()
    for bad in ("<script", "<style", "onclick", "onload", "onerror", "javascript", "<iframe", "<form",
                "<input", "alert(", "document.cookie", "page title"):
        assert bad not in lowered, bad
    assert '<a href="https://shop.example/orders/4711" rel="noopener noreferrer">order page</a>' in p.html
    assert "<p>My order <b>4711</b> has not arrived.</p>" in p.html
    assert p.text is not None  # derived from the HTML: the words, paragraph and line breaks, no script
    assert p.text.startswith("Order problem\n\nMy order 4711 has not arrived.\n\n"
                             "Please call me back.\nThanks,\nMallory")
    assert "first item\nsecond item" in p.text
    assert "alert" not in p.text and "Page title" not in p.text and "background" not in p.text


def test_outlook_html_keeps_inline_image_and_drops_office_markup() -> None:
    p = collected("outlook_html.eml")
    assert p.headers["Thread-Index"] == "AdmZ1x2Y3Z4Q5w6T7u8V9w0X1Y2Z3A=="
    assert p.text is not None and p.text.startswith("Hello,\r\n\r\nthe printer still prints blank pages.")
    assert p.html is not None
    assert '<img width="320" height="200" src="cid:image001.png@01D9A1B2.C3D4E5F0">' in p.html
    for office in ("<o:p>", "mso", "font-face", "MsoNormal", "<xml", "<meta", "<style"):
        assert office not in p.html, office
    [image] = p.parts
    assert (image.name, image.content_type, image.content_id, image.inline) == (
        "image001.png", "image/png", "image001.png@01D9A1B2.C3D4E5F0", True)
    assert image.data.startswith(b"\x89PNG")


def test_html_only_mail_with_inline_cid_image() -> None:
    p = collected("html_only_inline_cid_image.eml")
    assert p.html == ('<div>The error dialog:</div><div><img src="cid:dialog@example.org" alt="dialog"></div>'
                      "<div>Grüße</div>")
    assert p.text == "The error dialog:\nGrüße"
    [image] = p.parts
    assert (image.name, image.content_id, image.inline) == ("attachment-1.png", "dialog@example.org", True)
    assert image.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(("name", "text", "defect"), [
    ("unknown_8bit_charset.eml", "die Rechnung für März ist zu hoch", "read as windows-1252"),
    ("x_unknown_charset_utf8.eml", "Grüße aus Köln — the café is closed.", "unknown charset 'x-unknown'"),
    ("misdeclared_utf8_latin1.eml", "le café coûte 3€ et la crème brûlée", "not utf-8, read as windows-1252"),
    ("not_a_text_codec_charset.eml", "plain text labelled zlib", "unknown charset 'zlib'"),
    ("utf16_body.eml", "Hallo Welt ü", None),
])
def test_unknown_and_wrong_charsets_are_read_tolerantly(name: str, text: str, defect: str | None) -> None:
    p = collected(name)
    assert p.text is not None and text in p.text
    assert defect is None or any(defect in d for d in p.defects), p.defects


def test_unknown_codec_in_html_part() -> None:
    p = collected("not_a_text_codec_charset.eml")
    assert p.html == "<p>html labelled punycode</p>"


def test_rfc2047_words_with_unknown_charset_or_bad_base64() -> None:
    p = collected("rfc2047_broken_words.eml")
    assert p.from_name == "Müller" and p.from_email == "mueller@example.org"
    assert p.subject is not None and p.subject.startswith("Invoice questionfür März")
    assert p.to == ["support@localhost"]


def test_eight_bit_headers_are_read_as_utf8() -> None:
    p = collected("eight_bit_headers.eml")
    assert (p.from_name, p.subject) == ("Zoë François", "Réclamation: commande numéro 42")
    assert "X-Latin1: caf\ufffd" in p.headers_text
    assert p.text == "Le colis est arrivé abîmé.\r\n"


def test_rfc2231_filenames() -> None:
    p = collected("rfc2231_filenames.eml")
    assert [a.name for a in p.parts] == ["€ rates 2026.pdf", "Grüße und Übersicht.csv", "ÿþbad.bin"]
    assert p.parts[0].data == b"%PDF-1.4\n"


def test_unsafe_filenames_become_safe_names_keeping_the_extension() -> None:
    p = collected("unsafe_filenames.eml")
    names = [a.name for a in p.parts]
    assert names[:4] == ["passwd", "evil.dll", "htaccess", "invoicefdp.exe"]  # U+202E would show "exe.pdf"
    assert names[4].startswith("Quarterly report Quarterly") and names[4].endswith(".xlsx")
    assert len(names[4].encode()) == MAX_FILENAME_BYTES
    assert names[5:] == ["attachment-6.pdf", "bell_tab_cr.txt"]
    for name in names:
        assert_safe_name(name)


def test_safe_filename_rules() -> None:
    assert safe_filename("../../etc/passwd", "x", "text/plain") == "passwd"
    assert safe_filename("C:\\Users\\a\\report.pdf", "x", "application/pdf") == "report.pdf"
    assert safe_filename("...", "attachment-3", "application/pdf") == "attachment-3.pdf"
    assert safe_filename(None, "attachment-4", "application/x-unknown") == "attachment-4"
    assert safe_filename("a\x00b\x1bc\x7f.txt", "x", "text/plain") == "ab_c_.txt"
    long = safe_filename("Ω" * 300 + ".tar.gz", "x", "application/gzip")
    assert long.endswith("Ω.gz") and len(long.encode()) <= MAX_FILENAME_BYTES


def test_decode_text_never_raises() -> None:
    assert decode_text(b"caf\xc3\xa9", "utf-8") == ("café", None)
    assert decode_text(b"caf\xe9", "us-ascii")[0] == "café"
    assert decode_text(b"\xff\xfe\xfa", "x-unknown")[0] == "ÿþú"
    assert decode_text(b"abc\x81", "unknown-8bit")[0] == "abc\x81"  # not cp1252 either: latin-1
    assert decode_text(b"ok \xc3\xa9 \xff", "utf-8") == ("ok é \ufffd", "charset 'utf-8': not valid utf-8, "
                                                                          "bad bytes replaced")
    for label in ("base64", "zlib", "rot13", "punycode", "idna", "undefined", "utf-\x00", "x" * 5000, ""):
        assert decode_text(b"text", label)[0] == "text"
    assert decode_text(b"a\x00b", "utf-8")[0] == "a\ufffdb"


def test_broken_and_missing_boundaries_are_guessed_from_the_body() -> None:
    p = collected("broken_boundary.eml")
    assert p.text == "The boundary in the body is not the one declared."
    assert [(a.name, a.data) for a in p.parts] == [("lost.pdf", b"%PDF-1.4\n")]
    assert "multipart boundary missing or wrong: guessed from the body" in p.defects
    p = collected("missing_boundary_param.eml")
    assert p.text == "Where does this end?" and "NoBoundaryInMultipartDefect" in p.defects
    p = collected("unterminated_multipart.eml")
    assert p.text == "First part, complete." and "CloseBoundaryNotFoundDefect" in p.defects


def test_garbage_nul_and_headerless_messages() -> None:
    p = collected("garbage_bytes.eml")
    assert p.text and p.defects and p.from_email is None
    p = collected("nul_bytes.eml")
    assert p.subject == "NUL\ufffd in the subject"
    assert p.html is not None and "before" in p.html and "after" in p.html
    assert collected("no_headers.eml").text == "Just a body, no headers at all.\r\n"
    assert collected("headers_only.eml").subject == "no body at all"
    assert parse_mail(b"").text == ""


@pytest.mark.parametrize(("raw", "text"), [
    (b"Content-Type: text/plain; charset=punycode\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9", "café"),
    (b"Content-Type: text/plain; charset=\"utf\x00-8\"\r\n\r\nhi \xe9", "hi é"),
    (b"Content-Type: multipart/mixed; boundary*=ut\x00f-8''abc\r\n\r\n--abc\r\n\r\nhi\r\n--abc--\r\n", "hi"),
    (b"Content-Type: multipart/mixed; boundary*=utf-8''%FF\xe2\r\n\r\n--x\r\n\r\nhi\r\n--x--\r\n", "hi"),
    (b"Content-Type: text/plain; name*0=\"a\"; name*=\"b\"; name*1=\"c\"\r\n\r\nhi", "hi"),
    (b"Content-Type: text/html\r\n\r\n<script>x</script><p>a\x01b\x1fc</p>", "abc"),
], ids=["8bit-punycode", "nul-in-charset", "nul-in-rfc2231-boundary", "8bit-rfc2231-boundary",
        "rfc2231-continuations", "control-chars-in-html"])
def test_inputs_on_which_cpython_email_raises(raw: bytes, text: str | None) -> None:
    """Found by fuzzing: CPython's email package raises (UnicodeDecodeError, ValueError, TypeError) on
    these when asked for the payload, charset, boundary or file name."""
    p = parse_mail(raw)
    assert_well_formed(p)
    assert p.text == text


def test_broken_transfer_encodings() -> None:
    p = collected("bad_base64_and_qp.eml")
    assert p.text == "Soft line break, bad escape =ZZ, trailing "
    assert {a.name: a.data for a in p.parts}["pad.bin"] == b"ABCD"
    assert {a.name: a.data for a in p.parts}["uu.bin"] == b"abc"


def test_200_levels_of_multipart_nesting_parse_normally() -> None:
    p = collected("deep_nesting_200.eml")
    assert p.text == "the text at the bottom" and p.defects == []


# --- made at test time: too big to commit -------------------------------------------------------------------

def nested_multipart(levels: int) -> bytes:
    lines = ["From: Deep <deep@example.org>", "Subject: deep", "Message-ID: <deep@example.org>"]
    for i in range(levels):
        lines += [f'Content-Type: multipart/mixed; boundary="level{i}"', "", f"--level{i}"]
    lines += ["Content-Type: text/plain; charset=iso-8859-1", "Content-Transfer-Encoding: quoted-printable", "",
              "the text at the bottom, Gr=FC=DFe"]
    lines += [f"--level{i}--" for i in reversed(range(levels))]
    return "\r\n".join(lines).encode() + b"\r\n"


@pytest.mark.parametrize("levels", [2000, 20000])
def test_nesting_deeper_than_the_recursion_limit_keeps_headers_and_text(levels: int) -> None:
    started = time.perf_counter()
    p = parse_mail(nested_multipart(levels))
    assert time.perf_counter() - started < 5
    assert (p.subject, p.message_id) == ("deep", "<deep@example.org>")
    assert p.text == "the text at the bottom, Grüße"
    assert "MIME structure too deeply nested: headers and first text only" in p.defects


def test_one_megabyte_of_headers_is_cut_and_recorded() -> None:
    raw = (b"From: a@example.org\r\nSubject: big headers\r\nX-Huge: " + b"x" * 1_000_000 + b"\r\n"
           + b"".join(b"Received: from relay%d.example.net\r\n" % i for i in range(20000)) + b"\r\nbody\r\n")
    started = time.perf_counter()
    p = parse_mail(raw)
    assert time.perf_counter() - started < 2
    assert p.subject == "big headers" and p.text == "body\r\n"
    assert p.truncated == ["headers"] and len(p.headers_text) == MAX_HEADERS_TEXT


def test_a_huge_content_type_costs_no_quadratic_time() -> None:
    params = b"; ".join(b'p%d="a;b"' % i for i in range(50000))
    raw = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=b; " + params
           + b"\r\n\r\n--b\r\nContent-Type: text/plain; " + params + b"\r\n\r\nhello\r\n--b--\r\n")
    started = time.perf_counter()
    p = parse_mail(raw)
    assert time.perf_counter() - started < 1  # CPython's get_param alone: ~1 s per call on this header
    assert p.text == "hello"


def test_nul_bytes_everywhere() -> None:
    raw = b"From: N\x00ul <nul@example.org>\r\nSubject: a\x00b\r\nContent-Type: text/plain\r\n\r\nx\x00y\r\n"
    p = parse_mail(raw)
    assert_well_formed(p)
    assert p.text == "x\ufffdy\r\n"


def test_25_mb_attachment() -> None:
    data = os.urandom(25 * 1024 * 1024)
    m = EmailMessage()
    m["From"], m["Subject"] = "a@example.org", "big"
    m.set_content("see attached")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename="big.bin")
    raw = bytes(m)
    started = time.perf_counter()
    p = parse_mail(raw)
    assert time.perf_counter() - started < 10
    assert p.text == "see attached\n"
    [part] = p.parts
    assert part.name == "big.bin" and hashlib.sha256(part.data).digest() == hashlib.sha256(data).digest()


def test_long_bodies_are_cut_to_the_salesforce_limit_and_recorded() -> None:
    m = EmailMessage()
    m["From"], m["Subject"] = "a@example.org", "long"
    m.set_content("word " * 40000)
    m.add_alternative("<p>word <b>bold</b></p>" * 20000 + "<script>x()</script>", subtype="html")
    p = parse_mail(bytes(m))
    assert sorted(p.truncated) == ["html", "text"]
    assert p.text is not None and len(p.text) == MAX_BODY_CHARS
    assert p.html is not None and len(p.html) <= MAX_BODY_CHARS and p.html.endswith("</p>")
    assert "<script" not in p.html
    env = mail_to_envelope("0" * 64, "a@example.org", ("support@localhost",), (), p)
    assert env.meta["truncated"] == "html,text"


def test_html_only_long_body_gives_bounded_text() -> None:
    m = EmailMessage()
    m["From"], m["Subject"] = "a@example.org", "long html"
    m.set_content("<div>line of text</div>" * 20000, subtype="html")
    p = parse_mail(bytes(m))
    assert sorted(p.truncated) == ["html", "text"]
    assert p.text is not None and p.text.startswith("line of text\nline of text\n")
    assert len(p.text) == MAX_BODY_CHARS


@pytest.mark.parametrize("shape", ["<div>", "<i><b><u><div>x</i>", "<option><optgroup>", "<b></div>"])
def test_deeply_nested_html_is_cut_in_bounded_time(shape: str) -> None:
    m = EmailMessage()
    m["From"], m["Subject"] = "a@example.org", "deep html"
    m.set_content("<p>start</p>" + shape * 100000 + "<p>end</p>", subtype="html")
    started = time.perf_counter()
    p = parse_mail(bytes(m))
    assert time.perf_counter() - started < 2  # html5ever alone: minutes on these
    assert p.html is not None and p.html.startswith("<p>start</p>") and p.text is not None
    assert "html" in p.truncated and any("nested deeper than 255" in d for d in p.defects)


def test_html_beyond_the_sanitiser_input_cap_is_cut() -> None:
    m = EmailMessage()
    m["From"], m["Subject"] = "a@example.org", "huge html"
    m.set_content("<p>para</p>" * 300000, subtype="html")  # 3.3 MB
    started = time.perf_counter()
    p = parse_mail(bytes(m))
    assert time.perf_counter() - started < 5
    assert "html" in p.truncated and any("longer than 2000000 chars, cut" in d for d in p.defects)


def test_defects_and_truncation_travel_in_the_envelope() -> None:
    p = parse_mail(b"From: a@example.org\r\nX-Big: " + b"y" * 40000 + b"\r\nDate: never\r\n\r\nbody")
    env = mail_to_envelope("1" * 64, "a@example.org", ("support@localhost",),
                           (AttachmentRef(name="x", content_type="text/plain", size=1, sha256="2" * 64),), p)
    assert env.meta["truncated"] == "headers"
    assert "Date: unparseable" in env.meta["defects"]


# --- through the real pipeline ------------------------------------------------------------------------------

async def test_every_message_becomes_a_case_or_a_dead_letter(pipeline: Pipeline) -> None:
    """Each message over SMTP (a real client) to each deployment: accepted, and handled by the worker
    (a case, a message threaded on one, or a suppressed auto-reply: the ledger has every one, and none is
    dead-lettered); the worker stays up and still makes a case of the next ordinary mail."""
    p = pipeline
    expected: dict[str, str] = {}
    without_id = 0
    for path in CPYTHON + MAILS:
        raw = path.read_bytes()
        code, reply = await p.send(raw)
        assert code == 250, (path.name, code, reply)
        parsed = parse_mail(raw)
        if parsed.message_id:
            expected[parsed.message_id] = path.name
        else:
            without_id += 1
    await p.wait_idle()
    assert p.daemon.db is not None
    async with p.daemon.db.session() as s:
        ledger = (await s.execute(select(ProcessedMessage.ExternalId, ProcessedMessage.Outcome,
                                         ProcessedMessage.Reason))).all()
    outcomes = {external_id: (outcome, reason) for external_id, outcome, reason in ledger}
    missing = {mid: name for mid, name in expected.items() if mid not in outcomes}
    assert not missing, missing
    assert sum(1 for k in outcomes if k.startswith("sha256:")) == without_id
    assert {o for o, _ in outcomes.values()} <= {"created", "threaded", "suppressed", "dead-lettered"}
    dead = {k: r for k, (o, r) in outcomes.items() if o == "dead-lettered"}
    assert not dead, dead  # none needs a person: each is a case, a message on one, or a suppressed notice
    assert sum(1 for o, _ in outcomes.values() if o == "created") >= len(CPYTHON + MAILS) // 2
    raw, _ = mail("after the corpus", "still working")
    assert (await p.send(raw))[0] == 250
    cases = await p.wait_for(lambda cs: any(c["Subject"] == "after the corpus" for c in cs))
    assert any(c["Subject"] == "after the corpus" for c in cases)


def test_base64_helper_matches_the_attachment_decoder() -> None:
    """The fast base64 path and CPython's get_payload(decode=True) agree on well-formed input."""
    data = os.urandom(10000)
    m = EmailMessage()
    m["From"] = "a@example.org"
    m.set_content("x")
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename="d.bin")
    assert parse_mail(bytes(m)).parts[0].data == data
