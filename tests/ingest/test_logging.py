"""The daemon's log as an operator reads it: a malformed HTTP request is the client's error and logged
at info; an exception a library logs (aiohttp, asyncio) carries its real stack, once, as a string."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from tests.ingest.test_daemon_process import Proc


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        return s.recv(4096)


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]  # every line is a JSON object


def test_a_malformed_http_request_is_logged_at_info_as_the_clients_error(proc: Proc) -> None:
    for request in (b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n", b"GET / HTTP/x.y\r\n\r\n"):
        assert _raw_http(proc.http, request).startswith(b"HTTP/1.0 400 ")
    end = time.monotonic() + 20
    while len(bad := [e for e in _events(proc.folder / "daemon.log") if e["event"] == "http.bad_request"]) < 2:
        assert time.monotonic() < end, proc.tail()
        time.sleep(0.05)
    assert proc.stop() == 0
    assert all(e["level"] == "info" and e["status"] == 400 and e["remote"] == "127.0.0.1" for e in bad), bad
    assert "Invalid header token" in bad[0]["error"] and "Bad status line" in bad[1]["error"]
    assert not [e for e in _events(proc.folder / "daemon.log") if e["level"] in ("error", "critical")]


LOGS_EXCEPTIONS = textwrap.dedent("""
    import asyncio, logging
    from casegate.ingest.app.log_setup import configure_logging

    configure_logging("info")

    def handler_that_raises():
        raise ValueError("broken handler")

    try:
        handler_that_raises()
    except ValueError:  # as aiohttp logs an exception a request handler raised
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")

    def callback_that_raises():
        raise KeyError("broken callback")

    async def main():
        try:
            callback_that_raises()
        except KeyError as e:  # asyncio's own default exception handler, as for a failed callback
            asyncio.get_running_loop().call_exception_handler({"message": "callback failed", "exception": e})

    asyncio.run(main())
""")


def test_library_exceptions_are_logged_with_their_stack_once_as_a_string(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", LOGS_EXCEPTIONS], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=True)
    assert "<traceback object" not in run.stderr
    events = [json.loads(line) for line in run.stderr.splitlines()]
    assert [(e["logger"], e["level"]) for e in events] == [("aiohttp.server", "error"), ("asyncio", "error")]
    for event, raiser, error in ((events[0], "handler_that_raises", "ValueError: broken handler"),
                                 (events[1], "callback_that_raises", "KeyError: 'broken callback'")):
        assert isinstance(event["exception"], str) and "exc_info" not in event
        assert event["exception"].startswith("Traceback (most recent call last):")
        assert f"in {raiser}" in event["exception"] and event["exception"].rstrip().endswith(error)
        assert run.stderr.count(f"in {raiser}") == 1  # the stack once, not again beside the JSON
