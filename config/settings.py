"""The shape of every casegate setting: one typed declaration each, with its default and meaning.

Every section maps to a TOML table of the same name; every key can be overridden by an environment
variable `CASEGATE_<SECTION>__<KEY>` (e.g. `CASEGATE_STORE__URL`). Unknown keys are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from casegate.config.accounts import AccountSettings
from casegate.config.case_settings import CaseSettings, check_statuses
from casegate.config.case_values import OpenStatus, OptionalPicklist, Owner
from casegate.config.channels import ChannelsSettings
from casegate.config.mail import HostName, LoopSettings, MailSettings, OutboundSettings, RoutingAddress
from casegate.config.mailboxes import MailboxSettings
from casegate.config.sections import Section
from pydantic import Field, PositiveInt, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class StoreSettings(Section):
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


class LocalBusSettings(Section):
    path: str = ""
    """The embedded bus log (SQLite). Empty = `<data_dir>/bus.db`."""
    fsync: bool = True
    """True: every group commit is flushed to disk (SQLite synchronous=FULL) before the publishes it
    carries are confirmed, so mail answered 250 survives power loss and a kernel crash; one flush
    covers every hand-off waiting on it. False: survives kill -9 only; for throwaway rigs."""
    busy_timeout: float = Field(default=5.0, gt=0)
    max_batch: int = Field(default=512, ge=1)
    """How many publishes one group commit may carry."""
    poll_interval: float = Field(default=0.2, gt=0)
    """How often a consumer in another process looks for new records."""
    retention_hours: float = Field(default=168.0, ge=0)
    """Records every reading group has committed are deleted after this long (0 = keep forever)."""
    prune_interval: float = Field(default=600.0, gt=0)
    """Seconds between two prunings of the log."""


class KafkaSettings(Section):
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
    """Milliseconds the producer waits to fill a batch. 0 measured best here: concurrent hand-offs already
    share produce requests while one is in flight (1,350-1,472 vs 1,122-1,254 mails/s with 3)."""
    max_batch_size: int = Field(default=262144, ge=1024)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"


class BusSettings(Section):
    driver: Literal["local", "kafka"] = "local"
    topic: str = "casegate.in"
    dead_letter_topic: str = "casegate.dead"
    local: LocalBusSettings = LocalBusSettings()
    kafka: KafkaSettings = KafkaSettings()


class BlobSettings(Section):
    path: str = ""
    """Directory of the content-addressed blob store. Empty = `<data_dir>/blobs`."""
    fsync: bool = True
    """True: a blob is on disk before the message is acknowledged (the pack: synchronous=FULL, group
    committed; a file: fsynced, renamed, its directory fsynced). False: for throwaway rigs."""
    pack_max_size: int = Field(default=262144, ge=0)
    """Blobs up to this many bytes are kept in one SQLite pack in the directory (group-committed);
    larger ones are files. 0 = files only (use that when the directory is a network share)."""
    busy_timeout: float = Field(default=5.0, gt=0)
    """Seconds a put waits for the pack's write lock before failing (SMTP then answers 451)."""


class SmtpSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    hostname: HostName = "casegate.localhost"
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
    max_connections: PositiveInt | Literal["auto"] = "auto"
    """SMTP sessions open at once in this process; one more gets `421 4.7.0` and is closed. "auto" sizes
    it from the open-file limit (see ingest/listeners/descriptor_budget.py); a number must fit in that limit."""
    max_connections_per_ip: int = Field(default=50, ge=0)
    """SMTP sessions open at once from one client address (IPv6: one /64); one more gets `421 4.7.0`.
    0 = no per-address cap. Your MTA relaying to casegate is one address: keep this above its
    concurrency to this destination (Postfix: 20 by default)."""
    postmaster: str = ""
    """The routing address that mail to `postmaster` (RFC 5321 §4.5.1: bare, or at the domain of any
    routing address) is delivered to. Empty = the first [[routing]] address."""

    @model_validator(mode="after")
    def _tls_pair(self) -> SmtpSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        for p in (self.tls_cert, self.tls_key):
            if p and not Path(p).is_file():
                raise ValueError(f"TLS file not found: {p}")
        return self


class HttpSettings(Section):
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
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request's whole body may take to arrive; a client trickling it slower gets 408."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds a client has to send a request's complete headers, counted from connecting (or, on a
    kept-alive connection, from the first byte of the next request); then the connection is closed."""
    keepalive_timeout: float = Field(default=75.0, gt=0)
    """Seconds an idle kept-alive connection stays open between two requests (above a reverse proxy's
    upstream keep-alive, nginx: 60 s, so the proxy closes first)."""
    max_connections: PositiveInt | Literal["auto"] = "auto"
    """HTTP connections open at once in this process; one more gets 503 and is closed. "auto" sizes it
    from the open-file limit (see ingest/listeners/descriptor_budget.py); a number must fit in that limit."""
    max_connections_per_ip: int = Field(default=128, ge=0)
    """HTTP connections open at once from one client address (IPv6: one /64); one more gets 503.
    0 = no per-address cap. Behind a reverse proxy every connection comes from the proxy: raise it
    above the proxy's upstream concurrency, or set 0."""
    tls_cert: str = ""
    tls_key: str = ""
    """PEM files (the certificate chain, its private key); when both are set the public port speaks HTTPS
    only (TLS 1.2 or later). The handshake counts against header_timeout. Read once, at start."""

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        for p in (self.tls_cert, self.tls_key):
            if p and not Path(p).is_file():
                raise ValueError(f"TLS file not found: {p}")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        """Providers sign the URL they call: a value that is not one would make every signature fail."""
        if not v:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
                or any(c.isspace() for c in v):
            raise ValueError("must be an http:// or https:// URL with a host and no query, as providers call it "
                             "(e.g. https://support.example.com)")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("its port is not a number from 0 to 65535") from None
        return v


class AdminSettings(Section):
    enabled: bool = True
    """The admin listener: `/healthz`, `/readyz` and `/metrics`, kept off the public webhook port."""
    host: str = "127.0.0.1"
    """Loopback by default: expose it only to your monitoring (Prometheus, the orchestrator's probes)."""
    port: int = Field(default=9525, ge=0, le=65535)
    """Each process needs its own (two roles on one host: set CASEGATE_ADMIN__PORT per unit)."""
    max_connections: PositiveInt = 32
    """Admin connections open at once; one more gets 503."""


class ApiSettings(Section):
    """The Salesforce-compatible REST API (`/services/data`, `/services/oauth2/token`) on the public HTTP
    port, served by every role with its own connections to the case store (ingest/api/)."""

    enabled: bool = True
    versions: list[str] = ["58.0", "59.0", "60.0", "61.0", "62.0"]
    """API versions answered (`/services/data/vNN.N/…`); any other is 404."""
    token_cache_seconds: float = Field(default=10.0, ge=0, le=300)
    """How long a token found good is believed without asking the store again: a revoked or expired
    token (or a deactivated user) is refused at most this many seconds later. 0 = ask every time."""
    access_token_seconds: int = Field(default=7200, ge=60)
    """Lifetime of an OAuth access token from `/services/oauth2/token`."""
    refresh_token_days: float = Field(default=90.0, gt=0)
    """Lifetime of an OAuth refresh token."""
    max_body_size: int = Field(default=4194304, ge=1024)
    """Bytes; a larger request body gets 413 (a collection of 200 records with long descriptions fits)."""
    daily_requests: int = Field(default=100000, ge=1)
    """The DailyApiRequests maximum that `/limits` and `Sforce-Limit-Info` report. Counted per process
    per UTC day, and not enforced."""

    @field_validator("versions")
    @classmethod
    def _versions(cls, v: list[str]) -> list[str]:
        bad = [x for x in v if not re.fullmatch(r"[1-9]\d{0,2}\.0", x)]
        if bad or not v:
            raise ValueError(f"versions are like 60.0, at least one: {', '.join(bad) or 'none given'}")
        return sorted(set(v), key=float)


class AssignmentEntry(Section):
    name: str
    owner: Owner
    origin: OptionalPicklist | None = None
    recipient: str | None = None
    subject_contains: list[str] = []
    description_contains: list[str] = []
    subject_regex: str | None = None
    description_regex: str | None = None
    priority: OptionalPicklist | None = None
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


class RulesSettings(Section):
    default_owner: Owner = "queue:Support"
    assignment: list[AssignmentEntry] = []
    reopen_status: OpenStatus = "Working"
    """Status a closed case takes when the customer writes again: an open one (New, Working, On Hold,
    Escalated)."""


class WorkerSettings(Section):
    batch_size: int = Field(default=500, ge=1, le=5000)
    """Records processed in one database transaction."""
    poll_timeout: float = Field(default=0.2, gt=0)
    linger: float = Field(default=0.05, ge=0)
    """Seconds to wait for more records when a poll returned a partial batch (0 = never wait)."""
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=30.0, gt=0)
    drain_timeout: float = Field(default=20.0, gt=0)
    """Seconds to finish in-flight work on SIGTERM."""


class RunSettings(Section):
    processes: PositiveInt | Literal["auto"] = "auto"
    """How many ingest processes `casegate run` (no --role) starts under its supervisor, besides one
    worker process; they share the SMTP and HTTP ports (SO_REUSEPORT). "auto" = the number of CPUs this
    process may run on. `--role all` runs everything in one process instead."""

    @field_validator("processes", mode="before")
    @classmethod
    def _count_or_auto(cls, v: object) -> object:
        if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            return v
        if isinstance(v, str) and v.strip().isdigit() and int(v) >= 1:
            return int(v)
        raise ValueError('must be "auto" or a number of processes (1 or more)')


class ThreadingSettings(Section):
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
    admin: AdminSettings = AdminSettings()
    api: ApiSettings = ApiSettings()
    routing: list[RoutingAddress] = [RoutingAddress(address="support@localhost")]
    rules: RulesSettings = RulesSettings()
    case: CaseSettings = CaseSettings()
    worker: WorkerSettings = WorkerSettings()
    run: RunSettings = RunSettings()
    threading: ThreadingSettings = ThreadingSettings()
    loops: LoopSettings = LoopSettings()
    mail: MailSettings = MailSettings()
    channels: ChannelsSettings = ChannelsSettings()
    outbound: OutboundSettings = OutboundSettings()
    accounts: AccountSettings = AccountSettings()
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

    @model_validator(mode="after")
    def _postmaster_routes(self) -> Settings:
        postmaster = self.smtp.postmaster
        if postmaster and postmaster.lower() not in (known := [r.address for r in self.routing]):
            raise ValueError(f"smtp.postmaster {postmaster!r} is not a [[routing]] address; add it there or use "
                             f"one of: {', '.join(known)}")
        return self

    @model_validator(mode="after")
    def _statuses_known(self) -> Settings:
        check_statuses(self.case, {("rules", "reopen_status"): self.rules.reopen_status})
        return self

    @property
    def postmaster_address(self) -> str | None:
        """Where mail to `postmaster` goes: smtp.postmaster, else the first routing address (None: no routing)."""
        if self.smtp.postmaster:
            return self.smtp.postmaster.lower()
        return self.routing[0].address if self.routing else None

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
