"""Reading mail: the fields a case needs, threading headers, bodies, attachments — and tolerance of
broken input (a message that cannot be read still yields what can be read, never an exception)."""

from __future__ import annotations

from email.message import EmailMessage

from casegate.ingest.mail.mime import message_ids, parse_mail


def test_fields_threading_headers_bodies_and_attachments() -> None:
    m = EmailMessage()
    m["From"] = "=?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <Juergen@Example.ORG>"
    m["To"] = "Support <support@localhost>"
    m["Cc"] = "billing@localhost"
    m["Subject"] = "=?utf-8?b?w5xiZXJ3ZWlzdW5n?="
    m["Message-ID"] = "<m2@example.org>"
    m["In-Reply-To"] = "<m1@example.org>"
    m["References"] = "<m0@example.org> <m1@example.org>"
    m["Date"] = "Fri, 27 Nov 2026 10:00:00 +0100"
    m.set_content("plain body")
    m.add_alternative("<p>html body</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="../../etc/invoice.pdf")
    p = parse_mail(bytes(m))
    assert (p.from_name, p.from_email) == ("Jürgen Müller", "juergen@example.org")
    assert p.to == ["support@localhost"] and p.cc == ["billing@localhost"]
    assert p.subject == "Überweisung"
    assert p.message_id == "<m2@example.org>"
    assert p.in_reply_to == ["<m1@example.org>"] and p.references == ["<m0@example.org>", "<m1@example.org>"]
    assert p.date is not None and p.date.utcoffset() is not None
    assert p.text is not None and p.text.strip() == "plain body"
    assert p.html is not None and "<p>html body</p>" in p.html
    assert [(a.name, a.content_type, a.data) for a in p.parts] == [("invoice.pdf", "application/pdf", b"%PDF-1.4")]
    assert "Message-ID: <m2@example.org>" in p.headers_text


def test_broken_input_never_raises() -> None:
    raw = (b"From: broken <<<@@>\r\nSubject: =?x-unknown?q?abc?=\r\nDate: yesterday\r\n"
           b"Content-Type: text/plain; charset=does-not-exist\r\nMessage-ID: no angle brackets\r\n\r\n\xff\xfe body")
    p = parse_mail(raw)
    assert p.message_id is None
    assert p.date is None and "Date: unparseable" in p.defects
    assert p.text is not None and "body" in p.text


def test_message_ids_in_headers() -> None:
    assert message_ids("<a@x> junk <b@y>") == ["<a@x>", "<b@y>"]
    assert message_ids(None) == [] and message_ids("no ids") == []


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    raw = "From: Zoë <zoe@example.org>\r\nSubject: Grüße aus Köln\r\n\r\nDie Tür.\r\n".encode()
    p = parse_mail(raw)
    assert (p.subject, p.from_name, p.text) == ("Grüße aus Köln", "Zoë", "Die Tür.\r\n")
    latin1 = b"Subject: Gr\xfc\xdfe\r\n\r\nx"
    assert parse_mail(latin1).subject == "Gr\ufffd\ufffde"  # not UTF-8: replaced, never raised
