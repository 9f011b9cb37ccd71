"""The shape of every casegate setting: one typed declaration each, with its default and meaning.

Every section maps to a TOML table of the same name; every key can be overridden by an environment
variable `CASEGATE_<SECTION>__<KEY>` (e.g. `CASEGATE_STORE__URL`). Unknown keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.channels import ChannelsSettings

OwnerRef = Annotated[str, Field(pattern=r"^(queue|user):\S.*$")]
"""An owner is `queue:<Queue name>` or `user:<user email>`."""
TEMPLATE_FIELDS = ("case_number", "subject", "name", "email", "thread_token")
"""What acknowledgement and notice templates may use."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    url: str = ""
    """SQLAlchemy async URL. Empty = SQLite file `<data_dir>/cases.db` (migrated automatically)."""
    pool_size: int = Field(default=5, ge=1, le=100)
    sqlite_busy_timeout: float = Field(default=30.0, gt=0)
    """Seconds a SQLite writer waits for the write lock before failing."""
    auto_migrate: bool | None = None
    """Run migrations at start. Default: yes for SQLite, never implicitly for PostgreSQL."""

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if v and not v.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite+aiosqlite://, postgresql+asyncpg:// or postgresql+psycopg://")
        return v


class LocalBusSettings(_Section):
    path: str = ""
    """The embedded bus log (SQLite). Empty = `<data_dir>/bus.db`."""
    fsync: bool = False
    """True: every group commit is flushed to disk (survives power loss). False: survives kill -9."""
    busy_timeout: float = Field(default=5.0, gt=0)
    max_batch: int = Field(default=512, ge=1)
    """How many publishes one group commit may carry."""
    poll_interval: float = Field(default=0.2, gt=0)
    """How often a consumer in another process looks for new records."""
    retention_hours: float = Field(default=168.0, ge=0)
    """Records every reading group has committed are deleted after this long (0 = keep forever)."""
    prune_interval: float = Field(default=600.0, gt=0)
    """Seconds between two prunings of the log."""


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "casegate"
    group_id: str = "casegate-worker"
    enable_idempotence: bool = False
    """Idempotent producer. Keep on for Apache Kafka; off for brokers that reject it (tansu)."""
    request_timeout_ms: int = Field(default=5000, ge=100)
    session_timeout_ms: int = Field(default=10000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3000, ge=100)
    max_request_size: int = Field(default=1048576, ge=1024)
    linger_ms: int = Field(default=0, ge=0)
    max_batch_size: int = Field(default=262144, ge=1024)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"


class BusSettings(_Section):
    driver: Literal["local", "kafka"] = "local"
    topic: str = "casegate.in"
    dead_letter_topic: str = "casegate.dead"
    local: LocalBusSettings = LocalBusSettings()
    kafka: KafkaSettings = KafkaSettings()


class BlobSettings(_Section):
    path: str = ""
    """Directory of the content-addressed blob store. Empty = `<data_dir>/blobs`."""
    fsync: bool = False
    pack_max_size: int = Field(default=262144, ge=0)
    """Blobs up to this many bytes are kept in one SQLite pack in the directory (group-committed);
    larger ones are files. 0 = files only (use that when the directory is a network share)."""
    busy_timeout: float = Field(default=5.0, gt=0)
    """Seconds a put waits for the pack's write lock before failing (SMTP then answers 451)."""


class SmtpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    hostname: str = "casegate.localhost"
    """Name the server greets with."""
    max_message_size: int = Field(default=36700160, ge=1024)
    """Bytes; larger messages are refused with 552."""
    tls_cert: str = ""
    tls_key: str = ""
    """PEM files; when both are set STARTTLS is offered."""
    max_recipients: int = Field(default=100, ge=1)
    reuse_port: bool = False
    """Let several `--role ingest` processes listen on the same port (Linux SO_REUSEPORT): the
    kernel spreads connections over them, so SMTP ingestion uses more than one core."""

    @model_validator(mode="after")
    def _tls_pair(self) -> SmtpSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        for p in (self.tls_cert, self.tls_key):
            if p and not Path(p).is_file():
                raise ValueError(f"TLS file not found: {p}")
        return self


class HttpSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    reuse_port: bool = False
    """As smtp.reuse_port, for the HTTP port."""
    public_base_url: str = ""
    """The URL providers call, e.g. https://support.example.com (behind a proxy: the proxy's). Twilio signs
    it, so it must be exact. Empty = http://<host>:<port>."""
    max_body_size: int = Field(default=1048576, ge=1024)
    """Bytes; larger webhook and form requests get 413."""


class RoutingAddress(_Section):
    address: str
    origin: str = "Email"
    priority: str = "Medium"
    type: str = ""
    owner: OwnerRef | None = None
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

    @field_validator("address")
    @classmethod
    def _email(cls, v: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", v):
            raise ValueError(f"not an email address: {v!r}")
        return v.lower()


class AssignmentEntry(_Section):
    name: str
    owner: OwnerRef
    origin: str | None = None
    recipient: str | None = None
    subject_contains: list[str] = []
    description_contains: list[str] = []
    subject_regex: str | None = None
    description_regex: str | None = None
    priority: str | None = None
    account: str | None = None
    """Name of the contact's account."""

    @field_validator("subject_regex", "description_regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"invalid regular expression: {e}") from None
        return v


class RulesSettings(_Section):
    default_owner: OwnerRef = "queue:Support"
    assignment: list[AssignmentEntry] = []
    reopen_status: str = "Working"
    """Status a closed case takes when the customer writes again."""


class WorkerSettings(_Section):
    batch_size: int = Field(default=500, ge=1, le=5000)
    """Records processed in one database transaction."""
    poll_timeout: float = Field(default=0.2, gt=0)
    linger: float = Field(default=0.05, ge=0)
    """Seconds to wait for more records when a poll returned a partial batch (0 = never wait)."""
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=30.0, gt=0)
    drain_timeout: float = Field(default=20.0, gt=0)
    """Seconds to finish in-flight work on SIGTERM."""


class LoopSettings(_Section):
    """Mail-loop and flood protection."""

    max_per_sender_subject: int = Field(default=15, ge=1)
    """More mails than this from one sender with the same subject within `window_seconds` stop
    opening cases; the rest are kept as suppressed (visible in `casegate messages export`)."""
    window_seconds: float = Field(default=60.0, gt=0)
    acknowledgements_per_address: int = Field(default=3, ge=0)
    """At most this many acknowledgement mails to one address per `acknowledgement_window_minutes`."""
    acknowledgement_window_minutes: float = Field(default=60.0, gt=0)


class OutboundSettings(_Section):
    """The relay casegate sends its own mail (acknowledgements, notices) through."""

    enabled: bool = False
    """Off until a relay is configured: without one, acknowledgements would only pile up unsent."""
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout: float = Field(default=30.0, gt=0)
    hostname: str = "casegate.localhost"
    """Domain of the Message-IDs casegate makes."""
    poll_interval: float = Field(default=1.0, gt=0)
    retry_initial: float = Field(default=30.0, gt=0)
    retry_max: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    """After this many failed attempts a mail is marked failed (still listed, never silently dropped)."""


class MailboxSettings(_Section):
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
    routing_address: str
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

    @field_validator("routing_address")
    @classmethod
    def _email(cls, v: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", v):
            raise ValueError(f"not an email address: {v!r}")
        return v.lower()

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


class ThreadingSettings(_Section):
    secret: str = ""
    """HMAC key for thread tokens. Empty = generated once into `<data_dir>/thread.key`."""


class Settings(BaseSettings):
    """All of casegate's settings. Built by `config.load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="CASEGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    data_dir: str = "casegate-data"
    """Where the embedded default keeps its files (relative to the working directory)."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    store: StoreSettings = StoreSettings()
    bus: BusSettings = BusSettings()
    blobs: BlobSettings = BlobSettings()
    smtp: SmtpSettings = SmtpSettings()
    http: HttpSettings = HttpSettings()
    routing: list[RoutingAddress] = [RoutingAddress(address="support@localhost")]
    rules: RulesSettings = RulesSettings()
    worker: WorkerSettings = WorkerSettings()
    threading: ThreadingSettings = ThreadingSettings()
    loops: LoopSettings = LoopSettings()
    channels: ChannelsSettings = ChannelsSettings()
    outbound: OutboundSettings = OutboundSettings()
    mailboxes: list[MailboxSettings] = []
    """IMAP mailboxes to fetch mail from (TOML `[[mailboxes]]`); none by default."""

    @field_validator("mailboxes")
    @classmethod
    def _mailboxes_route(cls, v: list[MailboxSettings], info: ValidationInfo) -> list[MailboxSettings]:
        names = [m.name for m in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox name listed twice: {', '.join(dupes)}")
        routing = info.data.get("routing")
        if routing is None:  # routing itself is invalid: that error is reported already
            return v
        known = [r.address for r in routing]
        for i, m in enumerate(v):
            if m.routing_address not in known:
                raise ValueError(f"mailboxes[{i}].routing_address {m.routing_address!r} (mailbox {m.name!r}) "
                                 f"is not a [[routing]] address; add it there or use one of: {', '.join(known)}")
        return v

    @field_validator("routing")
    @classmethod
    def _unique_addresses(cls, v: list[RoutingAddress]) -> list[RoutingAddress]:
        seen = [r.address for r in v]
        dupes = sorted({a for a in seen if seen.count(a) > 1})
        if dupes:
            raise ValueError(f"routing address listed twice: {', '.join(dupes)}")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    # Resolved paths of the embedded default -------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite+aiosqlite:///{(self.data_path / 'cases.db').resolve()}"

    @property
    def bus_path(self) -> Path:
        return Path(self.bus.local.path) if self.bus.local.path else self.data_path / "bus.db"

    @property
    def blob_path(self) -> Path:
        return Path(self.blobs.path) if self.blobs.path else self.data_path / "blobs"

    @property
    def auto_migrate(self) -> bool:
        if self.store.auto_migrate is not None:
            return self.store.auto_migrate
        return self.store_url.startswith("sqlite")
