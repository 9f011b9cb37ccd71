"""One process under the supervisor (ingest/app/supervisor.py): `python -m casegate.ingest.app.supervised --role ingest
--name ingest-1 --parent PID --report-fd FD [--config FILE]`.

It runs one role of the daemon as `casegate run --role …` would, with these differences:
- it dies with the supervisor (Linux: the parent-death signal is SIGKILL), so killing the supervisor
  with -9 is killing the whole daemon with -9, and no orphan keeps the ports;
- once every listener is up it writes one JSON line `{"admin_port": N}` to the report descriptor (the
  supervisor reads readiness and metrics from that loopback port); a start that fails writes
  `{"error": "…"}` instead and exits 2, and the supervisor stops with that message;
- a worker drains the bus on SIGTERM (the supervisor stops it only after every ingest process has);
- its log lines carry `"process": "<name>"`.
Settings come as for any `casegate run`: the same config file and `CASEGATE_*` environment, plus the
supervisor's per-process overrides in that environment."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Sequence

import structlog
from casegate.config import ConfigError, Settings, load_settings
from casegate.ingest.app.daemon import ROLES, Daemon, StartupError
from casegate.ingest.app.heap import settle_heap
from casegate.ingest.app.log_setup import configure_logging

EXIT_USAGE = 2
_PR_SET_PDEATHSIG = 1


class _Report:
    """The supervisor's end of the conversation: one JSON line per event."""

    def __init__(self, fd: int):
        self.fd = fd

    def send(self, **fields: object) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: the parent-death signal follows
            os.write(self.fd, (json.dumps(fields) + "\n").encode())


class _SupervisedDaemon(Daemon):
    def __init__(self, settings: Settings, role: str, report: _Report):
        super().__init__(settings, role)
        self.report = report
        self.drain_bus = True

    async def start(self) -> None:
        await super().start()
        settle_heap()
        self.report.send(admin_port=self.admin_port, pid=os.getpid())


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(1)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="casegate-supervised")
    p.add_argument("--role", choices=[r for r in ROLES if r != "all"], required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("--report-fd", type=int, required=True)
    p.add_argument("--config")
    args = p.parse_args(argv)
    die_with_parent(args.parent)
    report = _Report(args.report_fd)
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        report.send(error=str(e))
        sys.exit(EXIT_USAGE)
    configure_logging(settings.log_level, json=True)
    structlog.contextvars.bind_contextvars(process=args.name)
    try:
        asyncio.run(_SupervisedDaemon(settings, args.role, report).serve())
    except StartupError as e:
        report.send(error=str(e))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
