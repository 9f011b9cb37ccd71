"""The exceptions of the reply senders. A provider's answer is never an exception (a SendResult says
sent, retry later or failed); these are for what is wrong before anything is sent."""

from __future__ import annotations


class ReplyError(Exception):
    """Root of the reply senders' exceptions."""


class ReplyRefused(ReplyError):
    """Permanent: this reply cannot be sent as it is (too long, empty, outside the provider's messaging
    window, a template where the provider has none). `code` names the reason, the message says what to do."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownRoute(ReplyError):
    """No sender is configured for this reply's channel and provider."""


class ProviderUnreachable(ReplyError):
    """Temporary: the provider did not answer (connection refused or reset, timed out, not HTTP); the
    sender turns it into "retry later"."""
