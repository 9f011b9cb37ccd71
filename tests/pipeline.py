"""Test plugin: the whole casegate pipeline in-process on the test's event loop, for each deployment
— (local bus, SQLite) and (Kafka via tansu, PostgreSQL) — with a real SMTP client to talk to it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from casegate.config import Settings
from casegate.ingest.app.daemon import Daemon
from casegate.store.case_queries import list_cases, show_case
from casegate.store.migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.bus_positions import record_count, wait_committed

DEPLOYMENTS = ["local-sqlite", "kafka-postgres"]


def mail(subject: str, body: str = "hello", *, msgid: str | None = None, in_reply_to: str | None = None,
         references: list[str] | None = None, sender: str = "Ada Customer <ada@example.org>",
         to: str = "support@localhost") -> tuple[bytes, str]:
    """A mail as a client would write it, and its Message-ID."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = msgid = msgid or make_msgid(domain="example.org")
    if in_reply_to:
        m["In-Reply-To"] = in_reply_to
        m["References"] = " ".join(references or [in_reply_to])
    m.set_content(body)
    return bytes(m), msgid


def settings_for(kind: str, tmp: Path, *, kafka: str | None = None, pg: str | None = None,
                 **sections: Any) -> Settings:
    """Settings of one deployment on free ports, with per-test topics so tests never share records."""
    values: dict[str, Any] = {"data_dir": str(tmp / "data"), "log_level": "warning",
                              "smtp": {"port": 0}, "http": {"port": 0}, "admin": {"port": 0},
                              "worker": {"poll_timeout": 0.05, "retry_initial": 0.05}}
    if kind == "kafka-postgres":
        assert kafka and pg
        tag = uuid.uuid4().hex[:8]
        values["store"] = {"url": pg}
        values["bus"] = {"driver": "kafka", "topic": f"in-{tag}", "dead_letter_topic": f"dead-{tag}",
                         "kafka": {"bootstrap_servers": kafka, "group_id": f"g-{tag}", "session_timeout_ms": 3000,
                                   "heartbeat_interval_ms": 500, "request_timeout_ms": 2000,
                                   "enable_idempotence": False}}
    for name, overrides in sections.items():
        if not isinstance(overrides, dict):
            values[name] = overrides
            continue
        merged = dict(values.get(name, {}))
        for k, v in overrides.items():
            merged[k] = {**merged.get(k, {}), **v} if isinstance(v, dict) else v
        values[name] = merged
    return Settings(**values)


@dataclass
class Pipeline:
    kind: str
    settings: Settings
    daemon: Daemon

    async def send(self, raw: bytes, rcpt: str = "support@localhost", sender: str = "ada@example.org",
                   client: aiosmtplib.SMTP | None = None) -> tuple[int, str]:
        """Send over SMTP; returns the final reply (code, text) of the transaction."""
        own = client is None
        smtp = client or aiosmtplib.SMTP(hostname="127.0.0.1", port=self.daemon.smtp_port, timeout=30)
        try:
            if own:
                await smtp.connect()
            _errors, reply = await smtp.sendmail(sender, [rcpt], raw)
            return 250, reply
        except aiosmtplib.SMTPRecipientsRefused as e:
            return e.recipients[0].code, e.recipients[0].message
        except aiosmtplib.SMTPResponseException as e:
            return e.code, e.message
        finally:
            if own and smtp.is_connected:
                await smtp.quit()

    async def cases(self) -> list[dict[str, Any]]:
        assert self.daemon.db is not None
        return await list_cases(self.daemon.db)

    async def case(self, number: str) -> dict[str, Any]:
        assert self.daemon.db is not None
        return await show_case(self.daemon.db, number)

    async def count(self, model: Any, *where: Any) -> int:
        """Rows of `model` in the case store (matching `where`)."""
        assert self.daemon.db is not None
        async with self.daemon.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(model).where(*where))).scalar_one())

    async def rows(self, *columns: Any) -> list[tuple[Any, ...]]:
        assert self.daemon.db is not None
        async with self.daemon.db.session() as s:
            return [tuple(r) for r in (await s.execute(select(*columns))).all()]

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """GET /metrics over HTTP from the admin listener: {(sample name, sorted labels): value}."""
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{self.daemon.admin_port}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain"), r.status
            text = await r.text()
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    async def wait_for(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while True:
            cases = await self.cases()
            if pred(cases) or time.monotonic() > end:
                return cases
            await asyncio.sleep(0.05)

    async def published(self) -> int:
        """How many records the input topic holds on the bus now (what the channels accepted)."""
        return await record_count(self.daemon.bus, self.settings.bus.topic)

    async def wait_idle(self, timeout: float = 30) -> None:
        """Wait until the worker has handled everything published so far: its group's committed
        position reaches the end of the input topic's log as it is now. Fails after `timeout`."""
        worker = self.daemon.worker
        assert worker is not None
        group = worker.consumer.group  # type: ignore[attr-defined]  # both drivers' consumers have it
        await wait_committed(self.daemon.bus, group, self.settings.bus.topic, timeout)


async def migrate(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


async def start_pipeline(settings: Settings, role: str = "all") -> Pipeline:
    if settings.store.url.startswith("postgresql"):
        await migrate(settings.store.url)
    daemon = Daemon(settings, role)
    await daemon.start()
    return Pipeline(settings.bus.driver, settings, daemon)


@pytest.fixture
def deployment_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """A factory of Settings for the deployment under test (`request.param`)."""
    kind = request.param
    kafka = pg = None
    if kind == "kafka-postgres":
        kafka = request.getfixturevalue("tansu").bootstrap
        pg = request.getfixturevalue("pg_db_url")

    def make(**sections: Any) -> Settings:
        return settings_for(kind, tmp_path, kafka=kafka, pg=pg, **sections)

    return make


@pytest.fixture
async def pipeline(deployment_settings: Callable[..., Settings]) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(deployment_settings())
    try:
        yield p
    finally:
        await p.daemon.stop()
