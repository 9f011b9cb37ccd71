"""The hand-off every mail channel (SMTP, IMAP) makes for one received message: store the raw original,
parse it, store its parts, build the envelope and publish it. Returns only once the bus has it durably;
raises BlobStoreError or BusError otherwise (the channel then leaves the mail with its sender: 451).

Once the raw original is durable, any other error — a bug, or a bus that refuses the envelope for good
(larger than Kafka's `max_request_size`) — no longer reaches the channel: the hand-off publishes a
failed hand-off instead (what is known of the mail, its raw blob's sha256 and the error under
`HANDOFF_ERROR`), the channel accepts the mail, and the worker puts that record on the dead-letter
topic with the error (and in the message trace). `casegate dlq replay` runs the hand-off again from
the raw original (`hand_off_again`) with the settings of the day, so a fix plus a replay makes the case.

After a large message the C heap's free memory is given back to the system (ingest/mail/heap_release.py):
once in the parser's thread as the parse ends, and once more shortly after the hand-off, when the
channel has dropped the message too. Without that glibc kept tens of MB per large mail."""

from __future__ import annotations

import asyncio
import contextlib
import weakref

import structlog
from casegate.ingest.bus import BusUnavailable
from casegate.ingest.bus.blobs import BlobStoreError
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.envelope import AttachmentRef, Envelope, Sender, decode
from casegate.ingest.mail.heap_release import release_free_memory, release_soon
from casegate.ingest.mail.mime import MAX_ATTACHMENTS, ParsedMail, parse_mail
from casegate.ingest.mail.noise import Noise, classify

log = structlog.get_logger("casegate.mail")

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


HANDOFF_ERROR = "handoff_error"
"""Envelope meta key of a failed hand-off: the error. Its envelope carries the raw original's sha256, the
SMTP envelope sender (meta `mail_from`, absent for IMAP), the recipients and the channel's meta."""


async def hand_off_mail(publisher: Publisher, raw: bytes, mail_from: str | None, recipients: tuple[str, ...],
                        meta: dict[str, str] | None = None, *,
                        max_attachments: int = MAX_ATTACHMENTS) -> Envelope:
    """Store the raw original, then parse (at most `max_attachments` parts), classify, store the parts,
    publish; the published envelope (a failed hand-off's, see the module docstring, when an unexpected
    error came after the raw original was stored). `mail_from` is the SMTP envelope sender ("" for the
    null sender `<>`), None when the channel has none (IMAP). Raises BlobStoreError / BusError."""
    raw_sha, _ = await publisher.claim(raw)
    parsed: ParsedMail | None = None
    try:
        if len(raw) <= PARSE_IN_THREAD:
            parsed = parse_mail(raw, max_attachments=max_attachments)
        else:
            parsed = await parse_in_turn(raw, max_attachments=max_attachments)
        return await _hand_off(publisher, raw, raw_sha, parsed, mail_from, recipients, meta)
    except (BusUnavailable, BlobStoreError):  # temporary: the sender retries
        raise
    except Exception as e:  # the raw original is durable: the mail is accepted and dead-lettered
        error = f"{type(e).__name__}: {e}"[:2000]
        log.exception("mail.handoff_failed", channel="email", raw_sha256=raw_sha, error=error)
        return await _publish_failed(publisher, raw_sha, parsed, mail_from, recipients, meta, error)
    finally:
        if len(raw) > PARSE_IN_THREAD:
            release_soon()  # by then the parts, the envelope and (from the channel) the message are freed


async def _hand_off(publisher: Publisher, raw: bytes, raw_sha: str, parsed: ParsedMail, mail_from: str | None,
                    recipients: tuple[str, ...], meta: dict[str, str] | None) -> Envelope:
    noise = classify(parsed, raw, mail_from)
    attachments = await publisher.claim_parts(parsed.parts)
    envelope = mail_to_envelope(raw_sha, mail_from or "", recipients, attachments, parsed,
                                {**(meta or {}), **_noise_meta(noise)})
    if noise is not None:
        envelope = envelope.model_copy(update={"auto": noise.kind})
    await publisher.publish(envelope)
    return envelope


def failed_hand_off(raw_sha: str, parsed: ParsedMail | None, mail_from: str | None, recipients: tuple[str, ...],
                    meta: dict[str, str] | None, error: str) -> Envelope:
    """The envelope of a failed hand-off: the raw original's sha256, the error, what a replay needs to hand
    the mail off again, and (from `parsed`, when the parse got that far) what the message trace shows:
    Message-ID, sender, subject. Nothing of the bodies or the parts."""
    known = parsed or ParsedMail()
    sender_email = known.from_email or (mail_from.lower() if mail_from and "@" in mail_from else None)
    return Envelope(
        channel="email", external_id=known.message_id or f"sha256:{raw_sha}",
        conversation_key=sender_email or f"sha256:{raw_sha}", sender=Sender(name=known.from_name, email=sender_email),
        recipients=recipients, subject=known.subject,
        headers={"Message-ID": known.message_id_header} if known.message_id_header is not None else {},
        raw_sha256=raw_sha,
        meta={**(meta or {}), **({"mail_from": mail_from} if mail_from is not None else {}), HANDOFF_ERROR: error},
    )


async def _publish_failed(publisher: Publisher, raw_sha: str, parsed: ParsedMail | None, mail_from: str | None,
                          recipients: tuple[str, ...], meta: dict[str, str] | None, error: str) -> Envelope:
    """Publish the failed hand-off; if what was parsed cannot make an envelope the bus takes, one without
    it. Raises BusError when the bus cannot take even that (the channel then answers 451)."""
    try:
        envelope = failed_hand_off(raw_sha, parsed, mail_from, recipients, meta, error)
        await publisher.publish(envelope)
    except BusUnavailable:
        raise
    except Exception:
        envelope = failed_hand_off(raw_sha, None, mail_from, recipients, meta, error)
        await publisher.publish(envelope)
    return envelope


def failed_hand_off_in(value: bytes) -> Envelope | None:
    """The failed hand-off a bus record carries, or None (another envelope, or no envelope at all)."""
    envelope = None
    with contextlib.suppress(Exception):
        envelope = decode(value)
    if envelope is None or envelope.channel != "email" or HANDOFF_ERROR not in envelope.meta \
            or not envelope.raw_sha256:
        return None
    return envelope


async def hand_off_again(publisher: Publisher, failed: Envelope, raw: bytes, *,
                         max_attachments: int = MAX_ATTACHMENTS) -> Envelope:
    """Hand a failed hand-off's mail off again from its raw original (`casegate dlq replay`), as its
    channel did: same envelope sender, recipients and channel meta. Fails again the same way."""
    meta = {k: v for k, v in failed.meta.items() if k not in (HANDOFF_ERROR, "mail_from")}
    return await hand_off_mail(publisher, raw, failed.meta.get("mail_from"), failed.recipients, meta,
                               max_attachments=max_attachments)


async def parse_in_turn(raw: bytes, *, max_attachments: int = MAX_ATTACHMENTS) -> ParsedMail:
    """parse_mail in a worker thread, at most LARGE_PARSES_AT_ONCE at a time on this event loop; the
    thread then gives the parser's working memory (about twice the message) back to the system."""
    loop = asyncio.get_running_loop()
    slots = _large_parse_slots.get(loop)
    if slots is None:
        slots = _large_parse_slots[loop] = asyncio.Semaphore(LARGE_PARSES_AT_ONCE)
    async with slots:
        return await asyncio.to_thread(_parse_then_release, raw, max_attachments)


def _parse_then_release(raw: bytes, max_attachments: int) -> ParsedMail:
    parsed = parse_mail(raw, max_attachments=max_attachments)
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
