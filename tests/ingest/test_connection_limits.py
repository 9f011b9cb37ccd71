"""Connection limits through the real listeners: a client trickling its request headers is disconnected
after http.header_timeout and an idle kept-alive one after http.keepalive_timeout; over a listener's cap
or its per-address cap a client gets `421 4.7.0` (SMTP) or 503 (HTTP) at once; accept() failing for want
of descriptors is logged once per interval; the soft open-file limit is raised to the hard one and caps
that cannot fit in it stop `casegate run`; and a `casegate run` at 1,024 descriptors keeps serving a
normal client while thousands of idle connections hold on."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import resource
import selectors
import smtplib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aiosmtplib
import pytest
from aiohttp import web
from casegate.ingest.listeners.connection_guard import ConnectionGuard, http_refusal
from casegate.ingest.listeners.http import HttpListener

from tests.ingest.test_daemon_process import CASEGATE, _free_port, wait_ready
from tests.ingest.test_metrics import delta
from tests.pipeline import mail, settings_for, start_pipeline


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from a raw connection: status, headers (lower-case names), body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 5)
    return int(lines[0].split()[1]), headers, body


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True once the server closed the connection (EOF or reset) within `seconds`; False if it is still
    open then. Fails if the server sends anything."""
    try:
        data = await asyncio.wait_for(reader.read(4096), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    assert data == b"", f"unexpected answer: {data!r}"
    return True


# -- HTTP timeouts -----------------------------------------------------------------------------------
async def test_a_client_trickling_its_headers_is_disconnected_after_the_header_timeout(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, http={"header_timeout": 1.0}))
    try:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", p.daemon.http_port)
        started = loop.time()
        request = b"GET /healthz HTTP/1.1\r\nHost: casegate\r\nX-Slow: " + b"a" * 40
        closed_after = None
        for byte in request:  # one header byte every 0.5 s, for as long as the server lets it
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_after = loop.time() - started
                break
            if await _closed_within(reader, 0.5):
                closed_after = loop.time() - started
                break
            if loop.time() - started > 8:
                break
        writer.close()
        assert closed_after is not None, "still connected after 8 s of trickled headers"
        assert 1.0 <= closed_after < 2.5, closed_after
        metrics = await p.metrics()
        assert metrics[("casegate_http_header_timeouts_total", (("listener", "http"),))] >= 1
    finally:
        await p.daemon.stop()


async def test_a_kept_alive_connection_may_idle_past_the_header_timeout_until_the_keepalive_timeout(
        tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path,
                                          http={"header_timeout": 1.0, "keepalive_timeout": 3.0}))
    try:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", p.daemon.http_port)
        get = b"GET /healthz HTTP/1.1\r\nHost: casegate\r\n\r\n"
        writer.write(get)
        assert (await _read_head(reader))[0] == 200
        assert not await _closed_within(reader, 1.5)  # idle longer than the header timeout: still open
        writer.write(get)
        assert (await _read_head(reader))[0] == 200
        answered = loop.time()
        assert await _closed_within(reader, 5)  # then closed by the keep-alive timeout, not before
        assert 2.5 <= loop.time() - answered < 4.5
        writer.close()
    finally:
        await p.daemon.stop()


async def test_a_slow_handler_or_a_body_after_the_headers_is_not_cut_by_the_header_timeout() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.2)  # the handler's own work, longer than the header timeout
        return web.json_response({"body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/slow", slow)
    listener = HttpListener(app, ConnectionGuard("test", 10, 0, http_refusal), host="127.0.0.1", port=0,
                            header_timeout=0.5, keepalive_timeout=5)
    port = await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: casegate\r\nContent-Length: 5\r\n\r\nhe")
        assert not await _closed_within(reader, 1.0)  # headers complete: the clock stopped
        writer.write(b"llo")
        status, _, body = await _read_head(reader)
        assert (status, json.loads(body)) == (200, {"body": "hello"})
        writer.close()
    finally:
        await listener.stop()


async def test_two_ingest_processes_can_share_the_http_port(tmp_path: Path) -> None:
    port = _free_port()
    daemons = []
    try:
        for i in range(2):  # the second would fail with "address in use" without reuse_port
            settings = settings_for("local-sqlite", tmp_path / str(i), http={"port": port, "reuse_port": True})
            daemons.append(await start_pipeline(settings, role="ingest"))
        assert {p.daemon.http_port for p in daemons} == {port}
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200
    finally:
        for p in daemons:
            await p.daemon.stop()


# -- caps --------------------------------------------------------------------------------------------
async def _smtp_greeting(port: int, source: str = "127.0.0.1") -> tuple[str, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    return (await asyncio.wait_for(reader.readline(), 5)).decode(), writer


async def test_an_smtp_client_over_the_per_address_or_the_listener_cap_gets_421(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path,
                                          smtp={"max_connections_per_ip": 2, "max_connections": 3}))
    held: list[asyncio.StreamWriter] = []
    try:
        before = await p.metrics()
        port = p.daemon.smtp_port
        for _ in range(2):
            line, w = await _smtp_greeting(port)
            held.append(w)
            assert line.startswith("220 "), line
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:  # a real SMTP client
            await aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5).connect()
        assert refused.value.code == 421 and "4.7.0" in refused.value.message
        assert "from your address" in refused.value.message
        line, w = await _smtp_greeting(port, "127.0.0.2")  # another address: the third place
        held.append(w)
        assert line.startswith("220 "), line
        line, w = await _smtp_greeting(port, "127.0.0.3")  # the listener is full
        w.close()
        assert line.startswith("421 4.7.0 ") and "from your address" not in line, line
        after = await p.metrics()
        assert delta(before, after, "casegate_connections_refused_total", listener="smtp", reason="per_ip") == 1
        assert delta(before, after, "casegate_connections_refused_total", listener="smtp", reason="listener") == 1
        assert after[("casegate_connections_open", (("listener", "smtp"),))] >= 3

        held.pop(0).close()  # a place is free again once the connection is gone
        end = time.monotonic() + 5
        while True:
            code, _ = await p.send(mail("after a place was freed")[0])
            if code == 250 or time.monotonic() > end:
                break
            await asyncio.sleep(0.05)
        assert code == 250
    finally:
        for w in held:
            w.close()
        await p.daemon.stop()


async def test_an_http_client_over_the_per_address_or_the_listener_cap_gets_503(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path,
                                          http={"max_connections_per_ip": 2, "max_connections": 3}))
    held: list[asyncio.StreamWriter] = []
    try:
        before = await p.metrics()
        url = f"http://127.0.0.1:{p.daemon.http_port}/healthz"
        for _ in range(2):  # two idle connections from 127.0.0.1 hold its places
            held.append((await asyncio.open_connection("127.0.0.1", p.daemon.http_port))[1])
        async with aiohttp.ClientSession() as http, http.get(url) as r:
            assert r.status == 503 and r.headers["Connection"] == "close"
            assert "too many connections from your address" in (await r.json())["error"]
        other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=other) as http:
            async with http.get(url) as r:  # another address: the third place (kept alive, still held)
                assert r.status == 200
            third = aiohttp.TCPConnector(local_addr=("127.0.0.3", 0))
            async with aiohttp.ClientSession(connector=third) as http3, http3.get(url) as r:
                assert r.status == 503  # the listener is full
                assert "from your address" not in (await r.json())["error"]
        after = await p.metrics()
        assert delta(before, after, "casegate_connections_refused_total", listener="http", reason="per_ip") == 1
        assert delta(before, after, "casegate_connections_refused_total", listener="http", reason="listener") == 1
        for w in held:
            w.close()
        end = time.monotonic() + 5
        status = 0
        while status != 200 and time.monotonic() < end:  # the places come back when the connections go
            async with aiohttp.ClientSession() as http, http.get(url) as r:
                status = r.status
        assert status == 200
    finally:
        for w in held:
            w.close()
        await p.daemon.stop()


# -- descriptors -------------------------------------------------------------------------------------
async def test_accept_failures_for_want_of_descriptors_are_logged_once_per_interval(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    throttle = p.daemon.accept_errors.throttle
    clients = [socket.socket() for _ in range(3)]  # their descriptors exist before the limit drops
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        for c in clients:
            c.setblocking(False)
        lowest_free = os.open(os.devnull, os.O_RDONLY)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor for anyone
        try:
            for c in clients:
                assert c.connect_ex(("127.0.0.1", p.daemon.smtp_port)) in (0, errno.EINPROGRESS)
            end = time.monotonic() + 5
            while throttle.occurrences < 2 and time.monotonic() < end:  # noqa: ASYNC110 - a loop callback counts
                await asyncio.sleep(0.01)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert throttle.occurrences >= 2  # asyncio reports each try, many per loop turn
        assert throttle.lines == 1
        greeting = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(clients[0], 1024), 10)
        assert greeting.startswith(b"220 ")  # asyncio retries accept() and the client is served
        metrics = await p.metrics()
        assert metrics[("casegate_accept_failures_total", (("listener", "smtp"),))] >= throttle.occurrences
    finally:
        for c in clients:
            c.close()
        await p.daemon.stop()
    assert throttle.lines == 2  # the rest of the interval as one line with the count suppressed


async def test_the_soft_open_file_limit_is_raised_to_the_hard_one(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 2048:
        pytest.skip(f"needs a finite hard open-file limit of 2048 or more, have {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        p = await start_pipeline(settings_for("local-sqlite", tmp_path))
        try:
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard == p.daemon.caps.limit
            assert p.daemon.caps.smtp == p.daemon.caps.http == min(4096, (hard - 128 - 3 * 96 - 32) // 2)
        finally:
            await p.daemon.stop()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _at_1024_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def test_caps_that_do_not_fit_the_open_file_limit_stop_casegate_run_naming_the_keys(tmp_path: Path) -> None:
    r = subprocess.run([CASEGATE, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                       preexec_fn=_at_1024_descriptors,
                       env={**os.environ, "CASEGATE_SMTP__PORT": "0", "CASEGATE_HTTP__PORT": "0",
                            "CASEGATE_ADMIN__PORT": "0", "CASEGATE_SMTP__MAX_CONNECTIONS": "600",
                            "CASEGATE_HTTP__MAX_CONNECTIONS": "600"})
    assert r.returncode == 2, r.stderr
    assert "smtp.max_connections (600) + http.max_connections (600)" in r.stderr
    assert "open-file limit 1024" in r.stderr and "Traceback" not in r.stderr


# -- the slow-client test ----------------------------------------------------------------------------
def _connect_many(port: int, source: str, n: int, deadline: float) -> list[socket.socket]:
    """`n` TCP connections from `source` to 127.0.0.1:`port`, opened without waiting on each other."""
    socks: list[socket.socket] = []
    with selectors.DefaultSelector() as sel:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.setblocking(False)
            s.bind((source, 0))
            assert s.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS)
            sel.register(s, selectors.EVENT_WRITE)
        pending = n
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                sel.unregister(key.fileobj)
                pending -= 1
                assert key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0  # type: ignore[union-attr]
    assert pending == 0, f"{pending} of {n} connections from {source} not established"
    return socks


def _first_bytes(socks: list[socket.socket], want: int, deadline: float) -> dict[str, int]:
    """What the server sent on each of `socks` (the first 3 bytes; "" for a close without a word), until
    `want` of them have been heard from or the deadline passes."""
    heard: dict[str, int] = {}
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        left = want
        while left > 0 and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                sel.unregister(key.fileobj)
                try:
                    data = key.fileobj.recv(64)  # type: ignore[union-attr]
                except ConnectionError:
                    data = b""
                word = data[:3].decode(errors="replace") if not data.startswith(b"HTTP/") else data[9:12].decode()
                heard[word] = heard.get(word, 0) + 1
                left -= 1
    return heard


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4000:
        pytest.skip(f"the test opens about 3,000 sockets; the hard open-file limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slow_clients_cannot_starve_a_daemon_at_1024_descriptors(tmp_path: Path, many_descriptors: None) -> None:
    smtp_port, http_port, admin_port = _free_port(), _free_port(), _free_port()
    log = tmp_path / "daemon.log"
    env = {**os.environ, "CASEGATE_SMTP__PORT": str(smtp_port), "CASEGATE_HTTP__PORT": str(http_port),
           "CASEGATE_ADMIN__PORT": str(admin_port),
           "CASEGATE_HTTP__HEADER_TIMEOUT": "120"}  # the idle connections stay: the caps are under test
    with log.open("wb") as out:
        # one process: its caps are the figures under test (under the supervisor each ingest process has its own)
        proc = subprocess.Popen([CASEGATE, "run", "--role", "all"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_at_1024_descriptors)
    socks: list[socket.socket] = []
    try:
        wait_ready(admin_port, proc, log)
        started = json.loads(next(line for line in log.read_text().splitlines() if '"daemon.started"' in line))
        assert started["open_file_limit"] == 1024
        # (1024 - 128 reserved - 3 listeners x 96 accepting or refusing - 32 admin) / 2
        assert started["max_connections"] == {"smtp": 288, "http": 288, "admin": 32}
        deadline = time.monotonic() + 40

        # 1,000 idle connections to each port from one address: all but its per-address cap are refused
        flood_smtp = _connect_many(smtp_port, "127.0.0.2", 1000, deadline)
        flood_http = _connect_many(http_port, "127.0.0.2", 1000, deadline)
        socks += flood_smtp + flood_http
        assert _first_bytes(flood_smtp, 1000, deadline) == {"220": 50, "421": 950}
        assert _first_bytes(flood_http, 1000 - 128, deadline) == {"503": 1000 - 128}
        _normal_client_is_served(smtp_port, http_port, admin_port)

        # many addresses filling the SMTP listener up to its cap: HTTP still answers, and then the other way
        for i in range(1, 8):
            socks += _connect_many(smtp_port, f"127.0.2.{i}", 50, deadline)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as r:
            assert r.status == 200
        for i in range(1, 4):
            socks += _connect_many(http_port, f"127.0.1.{i}", 128, deadline)
        with pytest.raises(urllib.error.HTTPError) as full:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5)
        full.value.close()  # the error holds the response and its socket: closed here, not by the collector
        assert full.value.code == 503
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=5) as r:
            assert r.status == 200
        assert len(os.listdir(f"/proc/{proc.pid}/fd")) < 1024
        assert time.monotonic() < deadline
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
        proc.wait(30)
    lines = log.read_text(errors="replace").splitlines()
    accept_errors = [line for line in lines if "accept" in line.lower()]
    assert len(accept_errors) <= 3, accept_errors[:5]
    refusals: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        if "listener.connections_refused" in line:
            event = json.loads(line)
            refusals.setdefault((event["listener"], event["reason"]), []).append(event["suppressed"])
    # thousands refused, two lines for each listener and reason: the first, and how many more were suppressed
    assert all(len(counts) <= 2 for counts in refusals.values()), refusals
    assert sum(n or 1 for n in refusals[("smtp", "per_ip")]) == 950
    assert sum(n or 1 for n in refusals[("http", "per_ip")]) == 1000 - 128


def _normal_client_is_served(smtp_port: int, http_port: int, admin_port: int) -> None:
    """A client from 127.0.0.1 gets its mail accepted and its HTTP requests answered."""
    client = smtplib.SMTP("127.0.0.1", smtp_port, timeout=10)
    try:
        refused = client.sendmail("ada@example.org", ["support@localhost"], mail("while flooded")[0])
        assert refused == {}
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=5) as r:
        assert r.status == 200
