"""The bus contract, run against both drivers (local SQLite log, Kafka on tansu), plus what only
one driver can show: the local log surviving kill -9, lock contention and group commit; Kafka
failing fast when the broker is gone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from casegate.config.settings import LocalBusSettings
from casegate.ingest.bus.base import BusError, BusUnavailable, Consumer, Record
from casegate.ingest.bus.kafka import KafkaBus
from casegate.ingest.bus.local import LocalBus

from tests.services import Tansu, kafka_settings, start_tansu

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Env:
    bus: LocalBus | KafkaBus
    topic: str
    dead_topic: str
    group: str


@pytest.fixture(params=["local", pytest.param("kafka", marks=pytest.mark.kafka)])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    suffix = uuid.uuid4().hex[:10]
    bus: LocalBus | KafkaBus
    if request.param == "local":
        bus = LocalBus(tmp_path / "data" / "bus.db", LocalBusSettings(poll_interval=0.05))
    else:
        broker: Tansu = request.getfixturevalue("tansu")
        bus = KafkaBus(kafka_settings(broker.bootstrap))
    await bus.start()
    try:
        yield Env(bus, f"in-{suffix}", f"dead-{suffix}", f"grp-{suffix}")
    finally:
        await bus.stop()


@asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[Consumer]:
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def drain(consumer: Consumer, n: int, within: float = 15.0) -> list[Record]:
    """Poll until `n` records came (or `within` seconds passed), then check nothing more comes."""
    out: list[Record] = []
    deadline = time.monotonic() + within
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.poll(500, 0.2)
    assert len(out) == n, f"expected {n} records, got {len(out)}"
    assert await consumer.poll(500, 0.3) == []
    return out


async def publish_all(bus: LocalBus | KafkaBus, topic: str, values: Sequence[bytes],
                      key: bytes | None = None) -> None:
    await asyncio.gather(*(bus.publish(topic, key if key is not None else v, v) for v in values))


# -- the contract, both drivers -------------------------------------------------------------------
async def test_publish_then_consume_in_order(env: Env) -> None:
    values = [b"m%03d" % i for i in range(25)]
    for v in values:  # one key = one partition: order is kept
        await env.bus.publish(env.topic, b"cust-1", v)
    async with running(env.bus.consumer(env.group, env.topic)) as c:
        got = await drain(c, len(values))
    assert [r.value for r in got] == values
    assert {(r.topic, r.key) for r in got} == {(env.topic, b"cust-1")}
    assert [r.offset for r in got] == sorted(r.offset for r in got)
    assert all(r.timestamp_ms > 1_600_000_000_000 for r in got)


async def test_consumer_started_before_first_publish(env: Env) -> None:
    async with running(env.bus.consumer(env.group, env.topic)) as c:
        assert await c.poll(10, 0.1) == []
        await env.bus.publish(env.topic, b"k", b"late")
        got = await drain(c, 1)
    assert got[0].value == b"late"


async def test_uncommitted_records_are_redelivered(env: Env) -> None:
    values = [b"r%d" % i for i in range(10)]
    for v in values:
        await env.bus.publish(env.topic, b"same-key", v)
    async with running(env.bus.consumer(env.group, env.topic)) as c1:
        first = await drain(c1, 10)
        await c1.commit(first[:4])  # done with 4; the consumer "crashes" with 6 in flight
    async with running(env.bus.consumer(env.group, env.topic)) as c2:
        second = await drain(c2, 6)
        assert [r.value for r in second] == values[4:]
        assert [r.offset for r in second] == [r.offset for r in first[4:]]
        await c2.commit(second)
    async with running(env.bus.consumer(env.group, env.topic)) as c3:
        assert await c3.poll(100, 0.5) == []


async def test_headers_round_trip(env: Env) -> None:
    headers = [("channel", b"smtp"), ("message-id", b"<a@b.example>"), ("dup", b"1"), ("dup", b"2"),
               ("empty", b""), ("utf8-\u00e9", b"\xc3\xbc\x00\xff")]
    await env.bus.publish(env.topic, b"k", b"v", headers)
    await env.bus.publish(env.topic, b"k", b"no headers")
    async with running(env.bus.consumer(env.group, env.topic)) as c:
        got = await drain(c, 2)
    assert got[0].headers == tuple(headers)
    assert got[1].headers == ()


async def test_topics_are_independent(env: Env) -> None:
    for i in range(5):
        await env.bus.publish(env.topic, b"k", b"main-%d" % i)
        if i % 2 == 0:
            await env.bus.publish(env.dead_topic, b"k", b"dead-%d" % i)
    main = env.bus.consumer(env.group, env.topic)
    dead = env.bus.consumer(env.group + "-dlq", env.dead_topic)
    await asyncio.gather(main.start(), dead.start())
    try:
        got_main, got_dead = await asyncio.gather(drain(main, 5), drain(dead, 3))
        await main.commit(got_main)  # committing one topic does not move the other
    finally:
        await asyncio.gather(main.stop(), dead.stop())
    assert [r.value for r in got_main] == [b"main-%d" % i for i in range(5)]
    assert [r.value for r in got_dead] == [b"dead-0", b"dead-2", b"dead-4"]
    assert {r.topic for r in got_dead} == {env.dead_topic}


async def test_concurrent_publishes_arrive_exactly_once(env: Env) -> None:
    values = [b"c%05d" % i for i in range(2000)]
    await publish_all(env.bus, env.topic, values)
    async with running(env.bus.consumer(env.group, env.topic)) as c:
        got = await drain(c, len(values))
    assert sorted(r.value for r in got) == values
    assert len({(r.partition, r.offset) for r in got}) == len(values)


async def test_read_without_a_group(env: Env) -> None:
    values = [b"d%d" % i for i in range(6)]
    for v in values:
        await env.bus.publish(env.dead_topic, b"one-key", v)
    got = await env.bus.read(env.dead_topic)
    assert [r.value for r in got] == values
    later = await env.bus.read(env.dead_topic, from_offset=got[2].offset, limit=2)
    assert [r.value for r in later] == values[2:4]
    assert await env.bus.read(f"absent-{uuid.uuid4().hex[:8]}") == []
    many = [b"m%03d" % i for i in range(60)]  # concurrent: batched, and spread over partitions
    await publish_all(env.bus, env.topic, many)
    assert sorted(r.value for r in await env.bus.read(env.topic)) == many


# -- local only -------------------------------------------------------------------------------------
CHILD = """
import asyncio, sys
from pathlib import Path
from casegate.config.settings import LocalBusSettings
from casegate.ingest.bus.local import LocalBus

async def main():
    bus = LocalBus(Path(sys.argv[1]), LocalBusSettings())
    await bus.start()
    n = int(sys.argv[2])
    for start in range(0, n, 100):
        await asyncio.gather(*(bus.publish("t", b"k", b"v%d" % i) for i in range(start, min(n, start + 100))))
    print("ok", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

LOCKER = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("COMMIT")
c.close()
print("released", flush=True)
"""


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


async def expect_line(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    got = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert got.strip() == line


def finish(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        if f is not None:
            f.close()


async def test_local_log_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    child = spawn(CHILD, str(path), "700")
    try:
        await expect_line(child, "ok")
    finally:
        finish(child)  # SIGKILL: no stop(), no checkpoint, WAL left behind
    assert child.returncode == -9
    bus = LocalBus(path, LocalBusSettings())
    await bus.start()
    try:
        got = await bus.read("t", limit=10_000)
        async with running(bus.consumer("g", "t")) as c:
            consumed = await drain(c, 700)
    finally:
        await bus.stop()
    assert sorted(r.value for r in got) == sorted(b"v%d" % i for i in range(700))
    assert [r.offset for r in consumed] == [r.offset for r in got]


async def test_local_publish_fails_while_file_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "bus.db"
    bus = LocalBus(path, LocalBusSettings(busy_timeout=0.3))
    await bus.start()
    locker = spawn(LOCKER, str(path))
    try:
        await expect_line(locker, "locked")
        t0 = time.monotonic()
        results = await asyncio.gather(*(bus.publish("t", b"k", b"x%d" % i) for i in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, BusUnavailable) for r in results), results
        assert "locked" in str(results[0])
        assert 0.25 <= time.monotonic() - t0 < 5
        assert locker.stdin is not None
        locker.stdin.write("\n")
        locker.stdin.flush()
        await expect_line(locker, "released")
        await bus.publish("t", b"k", b"after")
        assert [r.value for r in await bus.read("t")] == [b"after"]
    finally:
        finish(locker)
        await bus.stop()


async def test_local_group_commit_batches(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings(max_batch=100))
    await bus.start()
    try:
        await publish_all(bus, "t", [b"%d" % i for i in range(1000)])
        assert 10 <= bus.commits <= 20  # batches of at most max_batch, far fewer than 1000
        assert len(await bus.read("t", limit=5000)) == 1000
    finally:
        await bus.stop()


async def test_local_stop_flushes_pending_publishes(tmp_path: Path) -> None:
    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings())
    await bus.start()
    pending = [asyncio.create_task(bus.publish("t", b"k", b"%d" % i)) for i in range(300)]
    await asyncio.sleep(0)  # the publishes are queued, not yet committed
    await bus.stop()
    await asyncio.gather(*pending)
    with pytest.raises(BusUnavailable):
        await bus.publish("t", b"k", b"too late")
    reopened = LocalBus(tmp_path / "bus.db", LocalBusSettings())
    await reopened.start()
    try:
        assert len(await reopened.read("t")) == 300
        await reopened.ping()
    finally:
        await reopened.stop()
    with pytest.raises(BusUnavailable):
        await reopened.ping()


async def test_local_processes_group_committing_into_one_log_at_once_lose_nothing(tmp_path: Path) -> None:
    """What the supervisor's ingest processes do: three processes publish into one new log at once, each
    group-committing with synchronous=FULL; each waits for the others' write lock, none fails."""
    path = tmp_path / "bus.db"
    children = [spawn(CHILD, str(path), "1500") for _ in range(3)]
    try:
        for child in children:
            await expect_line(child, "ok")  # a publish that failed would have ended the child first
    finally:
        for child in children:
            finish(child)
    bus = LocalBus(path, LocalBusSettings())
    await bus.start()
    try:
        assert len(await bus.read("t", limit=10_000)) == 4500
    finally:
        await bus.stop()


async def test_local_consumer_sees_publishes_from_another_connection(tmp_path: Path) -> None:
    settings = LocalBusSettings(poll_interval=0.05)
    reader, writer = LocalBus(tmp_path / "bus.db", settings), LocalBus(tmp_path / "bus.db", settings)
    await reader.start()
    await writer.start()
    try:
        async with running(reader.consumer("g", "t")) as c:
            await writer.publish("t", b"k", b"from elsewhere")
            t0 = time.monotonic()
            got = await c.poll(10, 5.0)
            assert [r.value for r in got] == [b"from elsewhere"]
            assert time.monotonic() - t0 < 1.0
    finally:
        await writer.stop()
        await reader.stop()


# -- kafka only -------------------------------------------------------------------------------------
@pytest.mark.kafka
async def test_kafka_broker_down_raises_bus_unavailable() -> None:
    broker = start_tansu()
    settings = kafka_settings(broker.bootstrap, request_timeout_ms=1500)
    bus = KafkaBus(settings)
    try:
        await bus.start()
        await bus.publish("down", b"k", b"before")
        await bus.ping()
        with pytest.raises(BusError) as too_large:  # permanent, not "retry later"
            await bus.publish("down", b"k", b"x" * (settings.max_request_size + 1))
        assert not isinstance(too_large.value, BusUnavailable)
        consumer = bus.consumer("g-down", "down")
        await consumer.start()
        got = await drain(consumer, 1)
        broker.kill()

        t0 = time.monotonic()
        with pytest.raises(BusUnavailable):
            await bus.publish("down", b"k", b"during")
        assert time.monotonic() - t0 < 1.5 * 2 + 1.5
        with pytest.raises(BusUnavailable):
            await bus.ping()
        t0 = time.monotonic()
        with pytest.raises(BusUnavailable):
            await consumer.commit(got)  # aiokafka alone would hang here forever
        assert time.monotonic() - t0 < 3
        await consumer.stop()  # aiokafka raises CancelledError here during an outage

        with pytest.raises(BusUnavailable):
            await KafkaBus(settings).start()
    finally:
        await bus.stop()
        broker.stop()


async def test_local_prune_deletes_only_what_every_group_committed(tmp_path: Path) -> None:
    from casegate.config.settings import LocalBusSettings
    from casegate.ingest.bus.local import LocalBus

    bus = LocalBus(tmp_path / "bus.db", LocalBusSettings(retention_hours=0))
    await bus.start()
    try:
        for i in range(10):
            await bus.publish("in", b"k", str(i).encode())
            await bus.publish("dead", b"k", str(i).encode())
        fast, slow = bus.consumer("fast", "in"), bus.consumer("slow", "in")
        for c in (fast, slow):
            await c.start()
        await fast.commit(await fast.poll(10, 1.0))
        await slow.commit((await slow.poll(4, 1.0))[:4])
        future = int(time.time() * 1000) + 1000
        assert await bus.prune(future) == 4  # only what the slower group is past
        assert len(await bus.read("in")) == 6
        assert len(await bus.read("dead")) == 10  # nobody reads it: kept
        assert await bus.prune(0) == 0  # nothing is old enough
        await slow.commit(await slow.poll(10, 1.0))
        assert await bus.prune(future) == 6
        restarted = bus.consumer("slow", "in")
        await restarted.start()
        assert await restarted.poll(10, 0.1) == []
    finally:
        await bus.stop()
