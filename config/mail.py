"""Settings of Email-to-Case beyond the SMTP listener: the routing addresses (case defaults,
acknowledgement, closed-case policy), loop protection, what is kept of one mail, and the relay casegate
sends its own mail through."""

from __future__ import annotations

import re
from string import Template
from typing import Annotated, Literal

from casegate.config.case_values import OptionalPicklist, Owner, Picklist
from casegate.config.sections import EmailAddress, Section
from pydantic import AfterValidator, Field, field_validator

TEMPLATE_FIELDS = ("case_number", "subject", "name", "email", "thread_token")
"""What acknowledgement and notice templates may use."""


def _host_name(v: str) -> str:
    if not re.fullmatch(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?", v) or ".." in v:
        raise ValueError("must be a host name (letters, digits, '-', '_' and dots), e.g. support.example.com")
    return v


HostName = Annotated[str, AfterValidator(_host_name)]
"""A host name as mail writes it after `@` in a Message-ID and in the SMTP greeting: a value with spaces
or brackets would make every Message-ID casegate writes unreadable to the mail it threads by."""


class RoutingAddress(Section):
    address: EmailAddress
    origin: Picklist = "Email"
    priority: Picklist = "Medium"
    type: OptionalPicklist = ""
    owner: Owner | None = None
    """Owner for new cases from this address (before assignment rules). Empty = assignment rules."""
    closed_case_policy: Literal["reopen", "reopen_within_days", "new_case", "reject"] = "reopen_within_days"
    """What a customer's mail to a closed case does: reopen it; reopen it only if it closed less than
    `reopen_within_days` ago, else open a new case whose ParentId is the closed one; always open such a
    new case; or reject it (the mail is kept on the closed case and the sender gets a notice)."""
    reopen_within_days: int = Field(default=14, ge=0)
    auto_acknowledge: bool = True
    """Send an acknowledgement mail (with the case number) for each new case from a person."""
    acknowledgement_subject: str = "[Case $case_number] $subject"
    acknowledgement_body: str = (
        "Hello $name,\n\nthank you for your message. We opened case $case_number for it and will get back "
        "to you soon.\nTo add to this case, reply to this mail and keep the subject line.\n\n$thread_token\n"
    )
    """Templates: $case_number, $subject, $name, $email, $thread_token (string.Template syntax)."""
    reject_notice_body: str = (
        "Hello $name,\n\ncase $case_number is closed, so your message was not added to it. Please write "
        "a new mail (not a reply)\nif you need more help.\n\n$thread_token\n"
    )
    automatic_opens_case: bool = False
    """Let auto-replies and mailing-list mail open a case (they never reopen one or get an acknowledgement)."""

    @field_validator("acknowledgement_subject", "acknowledgement_body", "reject_notice_body")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            names = {m.group("named") or m.group("braced") for m in Template.pattern.finditer(v)
                     if not m.group("escaped")}
        except ValueError as e:
            raise ValueError(f"invalid template: {e}") from None
        if None in names:
            raise ValueError("invalid template: a lone '$' (write $$ for a dollar sign)")
        unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
        if unknown:
            raise ValueError(f"unknown template field ${unknown[0]} (known: "
                             f"{', '.join('$' + f for f in TEMPLATE_FIELDS)})")
        return v


class LoopSettings(Section):
    """Mail-loop and flood protection."""

    max_per_sender_subject: int = Field(default=15, ge=1)
    """More mails than this from one sender with the same subject within `window_seconds` stop
    opening cases; the rest are kept as suppressed (visible in `casegate messages export`)."""
    window_seconds: float = Field(default=60.0, gt=0)
    acknowledgements_per_address: int = Field(default=3, ge=0)
    """At most this many acknowledgement mails to one address per `acknowledgement_window_minutes`."""
    acknowledgement_window_minutes: float = Field(default=60.0, gt=0)


class MailSettings(Section):
    """What casegate keeps of one mail, whichever way it came (SMTP or IMAP). The raw original is always
    kept whole in the blob store."""

    max_attachments: int = Field(default=100, ge=0)
    """Parts of one mail stored as attachments (a blob and an Attachment row each). Parts beyond this are
    not stored: the cut is recorded (`truncated` = attachments, and a defect saying how many), and the raw
    original still holds them."""


class OutboundSettings(Section):
    """The relay casegate sends its own mail (acknowledgements, notices) through."""

    enabled: bool = False
    """Off until a relay is configured: without one, acknowledgements would only pile up unsent."""
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout: float = Field(default=30.0, gt=0)
    hostname: HostName = "casegate.localhost"
    """Domain of the Message-IDs casegate makes."""
    poll_interval: float = Field(default=1.0, gt=0)
    retry_initial: float = Field(default=30.0, gt=0)
    retry_max: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    """After this many failed attempts a mail is marked failed (still listed, never silently dropped)."""
