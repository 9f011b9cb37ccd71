"""No-op reference servers for the benchmarks: what the same client reaches when the server does nothing.

- `NoopServer("smtp")`: an aiosmtpd server (the library casegate's SMTP channel is built on) whose DATA
  handler only answers `250 OK`; one process, one event loop.
- `NoopServer("http")`: an aiohttp server that reads the body of every request and answers 200 (any
  method, any path; `/healthz` too, which the webhook client uses to open its connections).
- `DiscardPostfix`: a private Postfix instance (tests/mta.py's config, without its per-peer debug
  logging) whose every recipient goes to the `discard:` transport. Its smtpd still writes each mail to
  its queue and fsyncs it (cleanup) before the final 250, as a production Postfix does: an MTA
  accepting into a durable queue. Its flow control is off (`in_flow_delay = 0`: no pausing when the
  queue manager lags), so it is the stricter reference. Needs root and Debian's `postfix`.

The no-op servers run in their own process (`python -m tests.bench.reference smtp|http --port P`) so they
do not share the load generator's GIL, like the casegate processes. `cpu_seconds()` is their user +
system CPU (psutil); for Postfix, that of its master and every process under it, including the ones
that exited (the master reaps them: its children's times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from tests.bench.smtp_to_case import BenchError, free_port, open_log, proc_cpu_seconds, tail

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process, the children it reaped, and every live process under it."""
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    except psutil.Error:
        return math.nan
    return float(total)


@contextlib.contextmanager
def separate_cores(server_pid: int, pin: bool = True) -> Iterator[str]:
    """While inside: this process's main thread (the client) on one CPU, the server on another.

    Unpinned, Linux's scheduler often keeps a client and the server it wakes on the same core (wake
    affinity), and the pair then shares that core: on the 2-core host a no-op aiosmtpd server took ~2,900
    mails/s that way and ~5,000 mails/s on a core of its own, the same CPU per mail (0.2 ms) either way,
    fixed for the life of the server process. Pinned, the reference is the limit of the client and the
    machine. Yields a note saying what was done."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        yield "not pinned"
        return
    mine = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(server_pid, {cpus[1]})
    except OSError as e:  # the server is gone: its run will say so
        yield f"not pinned ({e})"
        return
    os.sched_setaffinity(0, {cpus[0]})
    try:
        yield f"client on CPU {cpus[0]}, server on CPU {cpus[1]}"
    finally:
        os.sched_setaffinity(0, mine)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class NoopServer:
    """A no-op SMTP or HTTP server in its own process on a free 127.0.0.1 port."""

    def __init__(self, kind: str, workdir: Path) -> None:
        if kind not in ("smtp", "http"):
            raise ValueError(kind)
        self.kind = kind
        self.name = f"no-op {'aiosmtpd' if kind == 'smtp' else 'aiohttp'}"
        self.port = free_port()
        self.log_path = workdir / f"noop-{kind}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        log = open_log(self.log_path)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bench.reference", self.kind, "--port", str(self.port),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while not await asyncio.to_thread(_port_open, self.port):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise BenchError(f"{self.name} on port {self.port} not up (rc={self.proc.returncode}):\n"
                                 f"{tail(self.log_path)}")
            await asyncio.sleep(0.05)

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class DiscardPostfix:
    """A private Postfix (config, queue and log in a temp dir) that accepts every mail and discards it."""

    name = "Postfix (discard)"

    def __init__(self, data_root: str | None = None) -> None:
        self.data_root = data_root
        self.relay: Any = None  # tests.mta.PostfixRelay
        self.port = 0

    def start(self) -> None:
        import pytest  # tests.mta is a pytest plugin: a missing Postfix is a skip there

        from tests import mta

        try:
            postfix, postqueue = mta._postfix_tools()
        except (pytest.skip.Exception, pytest.fail.Exception) as e:
            raise BenchError(f"no private Postfix: {e.msg}") from None
        root = Path(tempfile.mkdtemp(prefix="casegate-bench-postfix-", dir=self.data_root)).resolve()
        root.chmod(0o755)  # Postfix's unprivileged daemons must reach the queue below it
        for sub in ("etc", "queue", "data"):
            (root / sub).mkdir()
        shutil.chown(root / "data", user="postfix")
        self.port = free_port()
        main_cf = "\n".join(line for line in mta.MAIN_CF.format(root=root).splitlines()
                            if not line.startswith("debug_peer_"))  # no per-command logging of 127.0.0.1
        main_cf += "\ndefault_transport = discard\nrelay_transport = discard\n"
        # no flow control: with the default in_flow_delay (1 s) an smtpd waits up to 1 s for a token from
        # the queue manager before it accepts a mail, and on a loaded 2-core host runs after the first hit
        # 1 s stalls at p99 (346-510 mails/s instead of 805-1,041); the queue stays fsync'd either way
        main_cf += "in_flow_delay = 0\n"
        (root / "etc" / "main.cf").write_text(main_cf)
        (root / "etc" / "master.cf").write_text(mta.MASTER_CF.format(port=self.port))
        (root / "etc" / "transport").write_text("*\tdiscard:\n")
        past = time.time() - 60  # Postfix waits until a just-written main.cf looks settled
        for conf in (root / "etc").iterdir():
            os.utime(conf, (past, past))
        self.relay = mta.PostfixRelay(postfix, postqueue, root, self.port)
        done = subprocess.run([postfix, "-c", str(root / "etc"), "start"], capture_output=True, text=True,
                              timeout=30, check=False)
        if done.returncode != 0:
            self.stop()
            raise BenchError(f"postfix start failed ({done.returncode}): {done.stdout}{done.stderr}")
        deadline = time.monotonic() + READY_TIMEOUT
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                log = self.relay.log_text()
                self.stop()
                raise BenchError(f"Postfix smtpd on port {self.port} did not come up:\n{log}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        pid = self.relay._master_pid() if self.relay is not None else None
        if pid is None:
            raise BenchError("Postfix master pid unknown")
        return int(pid)

    def cpu_seconds(self) -> float:
        """Postfix's master and every process under it (smtpd, cleanup, qmgr, trivial-rewrite, discard …)."""
        return tree_cpu_seconds(self.pid)

    def discarded(self) -> int:
        """How many mails the discard transport has finished with (from Postfix's log)."""
        return self.relay.log_text().count("status=sent") if self.relay is not None else 0

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None


# -- the servers, in their own process ------------------------------------------------------------
class _NoopSmtpHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


async def _serve_smtp(port: int, stop: asyncio.Event) -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(_NoopSmtpHandler(), hostname="noop.bench.test", ident="no-op ESMTP"),
        "127.0.0.1", port, reuse_address=True, backlog=1024)
    await stop.wait()
    server.close()
    await server.wait_closed()


async def _serve_http(port: int, stop: asyncio.Event) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024, reuse_address=True).start()
    await stop.wait()
    await runner.cleanup()


async def _serve(kind: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await (_serve_smtp if kind == "smtp" else _serve_http)(port, stop)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="reference", description="a no-op SMTP or HTTP server (benchmark reference)")
    p.add_argument("kind", choices=["smtp", "http"])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    asyncio.run(_serve(args.kind, args.port))


if __name__ == "__main__":
    main()
