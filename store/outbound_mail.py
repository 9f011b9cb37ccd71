"""Composing the mail casegate sends itself (acknowledgements of new cases, closed-case notices):
from the routing address, with the case number and the signed thread token, our own Message-ID,
In-Reply-To/References to the customer's mail, and the headers that stop other robots answering
(Auto-Submitted: auto-replied, RFC 3834; X-Auto-Response-Suppress for Exchange)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from string import Template

from casegate.config import RoutingAddress

_POLICY = SMTP.clone(max_line_length=998)
"""CRLF lines; headers folded only past RFC 5322's hard limit, so the subject with its token stays one
line (folding it before a long token leaves mail clients showing a leading space)."""


@dataclass(frozen=True, slots=True)
class OutboundMail:
    message_id: str
    subject: str
    text: str
    raw: bytes


def _one_line(value: str) -> str:
    return " ".join(value.split())


def compose(route: RoutingAddress, kind: str, *, case_number: str, thread_token: str, to_email: str,
            to_name: str | None, subject: str | None, in_reply_to: str | None, references: Sequence[str],
            hostname: str, now: datetime) -> OutboundMail:
    """The acknowledgement (`kind="acknowledgement"`) or closed-case notice (`kind="notice"`)."""
    fields = {"case_number": case_number, "subject": _one_line(subject or "(no subject)"),
              "name": _one_line(to_name or to_email), "email": to_email, "thread_token": thread_token}
    title = _one_line(Template(route.acknowledgement_subject).safe_substitute(fields))
    if thread_token not in title:
        title = f"{title} {thread_token}"
    body_template = route.acknowledgement_body if kind == "acknowledgement" else route.reject_notice_body
    text = Template(body_template).safe_substitute(fields)
    if thread_token not in text:
        text = f"{text.rstrip()}\n\n{thread_token}\n"
    message_id = make_msgid(idstring=f"case{case_number}", domain=hostname)
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = route.address
    msg["To"] = formataddr((_one_line(to_name or ""), to_email))
    msg["Subject"] = title
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    chain = [*references, *([in_reply_to] if in_reply_to and in_reply_to not in references else [])]
    if chain:
        msg["References"] = " ".join(chain[-20:])
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Casegate-Case"] = case_number
    msg.set_content(text)
    return OutboundMail(message_id, title, text, msg.as_bytes())
