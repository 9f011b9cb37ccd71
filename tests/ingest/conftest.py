"""Fixtures the ingest tests share: a `casegate run` subprocess in an empty folder."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ingest.test_daemon_process import Proc


@pytest.fixture
def proc(tmp_path: Path) -> Iterator[Proc]:
    p = Proc(tmp_path)
    p.start()
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.stop(signal.SIGKILL)
