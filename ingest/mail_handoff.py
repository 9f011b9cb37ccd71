"""The hand-off every mail channel (SMTP, IMAP) makes for one received message: parse it, store the raw
original and its parts, build the envelope and publish it. Returns only once the bus has it durably;
raises BusError or BlobStoreError otherwise (the channel then leaves the mail with its sender).

After a large message the C heap's free memory is given back to the system (ingest/heap_release.py):
once in the parser's thread as the parse ends, and once more shortly after the hand-off, when the
channel has dropped the message too. Without that glibc kept tens of MB per large mail."""

from __future__ import annotations

import asyncio
import weakref

from ingest.envelope import AttachmentRef, Envelope, Sender
from ingest.heap_release import release_free_memory, release_soon
from ingest.mail_noise import Noise, classify
from ingest.mime import ParsedMail, parse_mail
from ingest.publisher import Publisher

PARSE_IN_THREAD = 1024 * 1024
"""Messages larger than this are parsed in a worker thread so the event loop keeps serving."""
LARGE_PARSES_AT_ONCE = 1
"""Parsing takes about twice a message's size on top of it (measured: +96 MB for a 34 MB message) and
holds the GIL, so parsing two at once is no faster than one after the other. Large messages are parsed
one at a time per process; the others wait their turn (an MTA waits minutes for the reply to DATA).
That bounds the parser's memory however many large messages arrive together (tests/bench/mime_parse.py
measures it)."""
_large_parse_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())
MAX_BODY_CHARS = 131072  # EmailMessage.TextBody / HtmlBody in Salesforce


def _bounded(body: str | None) -> str | None:
    """Bodies travel on the bus up to the EmailMessage limit; the raw original keeps the rest."""
    return body[:MAX_BODY_CHARS] if body is not None else None


def mail_to_envelope(raw_sha: str, mail_from: str, recipients: tuple[str, ...],
                     attachments: tuple[AttachmentRef, ...], parsed: ParsedMail,
                     meta: dict[str, str] | None = None) -> Envelope:
    """The envelope of one mail; `meta` adds channel facts (e.g. the IMAP mailbox and UID)."""
    sender_email = parsed.from_email or (mail_from.lower() if "@" in mail_from else None)
    return Envelope(
        channel="email",
        external_id=parsed.message_id or f"sha256:{raw_sha}",
        conversation_key=sender_email or f"sha256:{raw_sha}",
        sender=Sender(name=parsed.from_name, email=sender_email),
        recipients=recipients, subject=parsed.subject, text=_bounded(parsed.text), html=_bounded(parsed.html),
        headers={**parsed.headers, "To": ", ".join(parsed.to), "Cc": ", ".join(parsed.cc),
                 **({"Date": parsed.date.isoformat()} if parsed.date else {})},
        attachments=attachments, raw_sha256=raw_sha,
        meta={"mail_from": mail_from[:320], "raw_headers": parsed.headers_text,
              **({"truncated": ",".join(parsed.truncated)} if parsed.truncated else {}),
              **({"defects": "; ".join(parsed.defects)[:500]} if parsed.defects else {}),
              **(meta or {})},
    )


async def hand_off_mail(publisher: Publisher, raw: bytes, mail_from: str | None, recipients: tuple[str, ...],
                        meta: dict[str, str] | None = None) -> Envelope:
    """Parse, classify, claim the blobs, publish; the published envelope. `mail_from` is the SMTP
    envelope sender ("" for the null sender `<>`), None when the channel has none (IMAP).
    Raises BusError / BlobStoreError."""
    if len(raw) <= PARSE_IN_THREAD:
        return await _hand_off(publisher, raw, parse_mail(raw), mail_from, recipients, meta)
    try:
        return await _hand_off(publisher, raw, await parse_in_turn(raw), mail_from, recipients, meta)
    finally:
        release_soon()  # by then the parts, the envelope and (from the channel) the message are freed


async def _hand_off(publisher: Publisher, raw: bytes, parsed: ParsedMail, mail_from: str | None,
                    recipients: tuple[str, ...], meta: dict[str, str] | None) -> Envelope:
    noise = classify(parsed, raw, mail_from)
    raw_sha, attachments = await publisher.claim(raw, parsed.parts)
    envelope = mail_to_envelope(raw_sha, mail_from or "", recipients, attachments, parsed,
                                {**(meta or {}), **_noise_meta(noise)})
    if noise is not None:
        envelope = envelope.model_copy(update={"auto": noise.kind})
    await publisher.publish(envelope)
    return envelope


async def parse_in_turn(raw: bytes) -> ParsedMail:
    """parse_mail in a worker thread, at most LARGE_PARSES_AT_ONCE at a time on this event loop; the
    thread then gives the parser's working memory (about twice the message) back to the system."""
    loop = asyncio.get_running_loop()
    slots = _large_parse_slots.get(loop)
    if slots is None:
        slots = _large_parse_slots[loop] = asyncio.Semaphore(LARGE_PARSES_AT_ONCE)
    async with slots:
        return await asyncio.to_thread(_parse_then_release, raw)


def _parse_then_release(raw: bytes) -> ParsedMail:
    parsed = parse_mail(raw)
    release_free_memory()
    return parsed


def _noise_meta(noise: Noise | None) -> dict[str, str]:
    if noise is None:
        return {}
    return {"auto_reason": noise.reason[:500],
            **({"bounced_message_ids": " ".join(noise.bounced_message_ids)[:2000]}
               if noise.bounced_message_ids else {}),
            **({"bounced_recipients": ", ".join(noise.bounced_recipients)[:2000]}
               if noise.bounced_recipients else {})}
