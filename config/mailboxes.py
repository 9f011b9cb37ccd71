"""Settings of the IMAP mailboxes casegate fetches mail from (TOML `[[mailboxes]]`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from casegate.config.sections import EmailAddress, Section
from pydantic import Field, model_validator


class MailboxSettings(Section):
    """One monitored IMAP mailbox (TOML `[[mailboxes]]`): its new mail becomes cases for `routing_address`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
    """Short unique name: in logs, `/readyz`, `casegate mailboxes status` and the state file."""
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    tls: bool = True
    """Implicit TLS (IMAPS, usually port 993). False = plain text (only for a server on the same host)."""
    tls_verify: bool = True
    ca_file: str = ""
    """PEM file of the CA(s) to trust instead of the system's."""
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    password: str = ""
    password_file: str = ""
    """File holding the password (read at each login); instead of `password`."""
    token_command: str = ""
    """XOAUTH2: a command printing a current access token (run at each login, no shell)."""
    token_file: str = ""
    """XOAUTH2: a file holding the current access token, refreshed by the operator (read at each login)."""
    folder: str = "INBOX"
    routing_address: EmailAddress
    """The support address this mailbox's mail is for: one of the `[[routing]]` addresses."""
    after_fetch: Literal["seen", "move"] = "seen"
    """What happens to a message once the bus has it: flag it \\Seen, or move it to `move_to`."""
    move_to: str = ""
    idle: bool = True
    """Wait for new mail with IDLE when the server offers it (else poll every `poll_interval`)."""
    idle_renew: float = Field(default=1500.0, ge=1, le=1740)
    """Seconds after which IDLE is ended and re-issued, with a full scan (servers drop it after 30 minutes)."""
    poll_interval: float = Field(default=60.0, gt=0)
    """Seconds between two scans when the server has no IDLE (or `idle = false`)."""
    fetch_batch: int = Field(default=20, ge=1, le=1000)
    """Messages fetched by one UID FETCH and handed off together."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds any one IMAP command (and the connection) may take."""
    login_timeout: float = Field(default=20.0, gt=0)
    """Seconds the login (including running `token_command`) may take; a rejected token never hangs."""
    retry_initial: float = Field(default=1.0, gt=0)
    retry_max: float = Field(default=300.0, gt=0)
    """Back-off after a lost connection, a refused login or the bus failing: doubling up to this."""

    @model_validator(mode="after")
    def _credentials(self) -> MailboxSettings:
        if self.auth == "password" and bool(self.password) == bool(self.password_file):
            raise ValueError("auth = \"password\" needs exactly one of password or password_file")
        if self.auth == "xoauth2" and bool(self.token_command) == bool(self.token_file):
            raise ValueError("auth = \"xoauth2\" needs exactly one of token_command or token_file")
        if self.after_fetch == "move" and not self.move_to:
            raise ValueError("after_fetch = \"move\" needs move_to (the folder to move fetched mail to)")
        if self.ca_file and not Path(self.ca_file).is_file():
            raise ValueError(f"ca_file not found: {self.ca_file}")
        return self
