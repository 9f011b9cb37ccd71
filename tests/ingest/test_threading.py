"""Threading real-looking mail through the whole pipeline (SMTP → bus → worker → store) on each
deployment: an Outlook reply that carries only Thread-Index/Thread-Topic, a forward that quotes our
signed token, a forward without any thread header, and a stranger typing someone else's case number."""

from __future__ import annotations

import base64

from casegate.ingest.app.daemon import thread_secret
from casegate.store.thread_token import find_case_id, make_token

from tests.pipeline import Pipeline, mail

CONVERSATION = base64.b64decode("AdnHG4mOxRfZk2A6TqyVjC2+lw4XwA==")


def outlook(subject: str, body: str, msgid: str, thread_index: bytes, sender: str = "ada@example.org") -> bytes:
    """A mail as Outlook writes it: Thread-Index and Thread-Topic, CRLF, quoted-printable HTML part."""
    return (
        f"From: Ada Customer <{sender}>\r\nTo: support@localhost\r\nSubject: {subject}\r\n"
        "Thread-Topic: Quarterly numbers\r\n"
        f"Thread-Index: {base64.b64encode(thread_index).decode()}\r\n"
        f"Message-ID: {msgid}\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="_000_outlook_"\r\n\r\n'
        "--_000_outlook_\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n"
        f"{body}\r\n\r\n"
        "--_000_outlook_\r\nContent-Type: text/html; charset=\"us-ascii\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"<html><body><p class=3D\"MsoNormal\">{body}</p></body></html>\r\n"
        "--_000_outlook_--\r\n"
    ).encode()


async def threading_rules(p: Pipeline, number: str) -> list[str]:
    case = await p.case(number)
    return [f["Body"] for f in case["Feed"] if f["Type"] == "ThreadingRule"]


async def test_outlook_reply_without_reference_headers_threads_by_thread_index(pipeline: Pipeline) -> None:
    first = outlook("Quarterly numbers", "The totals look wrong.", "<first@outlook.example>", CONVERSATION)
    reply = outlook("RE: Quarterly numbers", "Any news?", "<second@outlook.example>",
                    CONVERSATION + b"\x00\x01\x02\x03\x04")
    other = outlook("RE: Quarterly numbers", "Me too!", "<third@outlook.example>",
                    CONVERSATION + b"\x00\x05\x06\x07\x08", sender="eve@example.net")
    for raw in (first, reply, other):
        assert (await pipeline.send(raw))[0] == 250
    await pipeline.wait_for(lambda cs: len(cs) == 2)
    await pipeline.wait_idle()
    cases = await pipeline.cases()
    assert [(c["CaseNumber"], c["ContactEmail"]) for c in cases] == [
        ("00001000", "ada@example.org"), ("00001001", "eve@example.net")]
    assert await threading_rules(pipeline, "00001000") == ["email message threaded by thread-index"]
    shown = await pipeline.case("00001000")
    assert [m["ClientThreadIdentifier"][:30] for m in shown["EmailMessages"]] == [
        base64.b64encode(CONVERSATION).decode()[:30]] * 2


async def test_forward_quoting_our_token_threads_and_a_bare_forward_opens_a_case(pipeline: Pipeline) -> None:
    raw, _ = mail("Printer on fire", "It is on fire.")
    assert (await pipeline.send(raw))[0] == 250
    [case] = await pipeline.wait_for(lambda cs: len(cs) == 1)
    # an agent's acknowledgement carried the signed token; a colleague forwards that mail to support
    secret = thread_secret(pipeline.settings)
    token = make_token(secret, case["Id"])
    assert find_case_id(secret, token) == case["Id"]
    forward, _ = mail("Fwd: [Case 00001000] Printer on fire",
                      f"FYI, see below.\n\n---------- Forwarded message ---------\n{token}\nIt is on fire.",
                      sender="Colleague <bob@example.org>")
    assert (await pipeline.send(forward, sender="bob@example.org"))[0] == 250
    bare, _ = mail("Fwd: Printer on fire", "---------- Forwarded message ---------\nIt is on fire.",
                   sender="Colleague <bob@example.org>")
    assert (await pipeline.send(bare, sender="bob@example.org"))[0] == 250
    await pipeline.wait_for(lambda cs: len(cs) == 2)
    await pipeline.wait_idle()
    assert await threading_rules(pipeline, "00001000") == ["email message threaded by token"]
    assert [c["Subject"] for c in await pipeline.cases()] == ["Printer on fire", "Fwd: Printer on fire"]


async def test_a_stranger_typing_a_case_number_gets_a_case_of_their_own(pipeline: Pipeline) -> None:
    raw, _ = mail("Printer on fire", "It is on fire.")
    assert (await pipeline.send(raw))[0] == 250
    await pipeline.wait_for(lambda cs: len(cs) == 1)
    for subject, body in [("Re: [Case 00001000] Printer on fire", "I have the same problem, case 00001000."),
                          ("Case #00001000", "thread::500AAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAA:: please add me")]:
        stranger, _ = mail(subject, body, sender="Eve <eve@example.net>")
        assert (await pipeline.send(stranger, sender="eve@example.net"))[0] == 250
    cases = await pipeline.wait_for(lambda cs: len(cs) == 3)
    await pipeline.wait_idle()
    assert [c["ContactEmail"] for c in cases] == ["ada@example.org", "eve@example.net", "eve@example.net"]
    assert await threading_rules(pipeline, "00001000") == []
