"""Large mails do not leave the daemon's memory up: after the hand-off's large parses the C heap's free
memory goes back to the system. Measured in a child process that reads a 34 MB mail from a file (as a
channel holds a received mail: one bytes object) and parses it three times as the hand-off does: glibc
kept +31 MB of it; with the release +6 MB."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bench.mime_parse import big_message

ROOT = Path(__file__).resolve().parents[2]

PARSES_LARGE_MAILS = textwrap.dedent("""
    import asyncio, gc, sys
    from pathlib import Path
    from casegate.ingest.mail.handoff import parse_in_turn
    from tests.bench.mime_parse import rss_mb

    async def main():
        raw = Path(sys.argv[1]).read_bytes()  # as a channel holds a mail it received: one bytes object
        await asyncio.to_thread(len, raw)  # the loop's worker thread exists before the baseline
        gc.collect()
        before = rss_mb()
        for _ in range(3):
            await parse_in_turn(raw)  # as the hand-off parses it; the result dropped
            await asyncio.sleep(0)  # the loop lets go of the handle that woke us, and of the result
        gc.collect()
        print(rss_mb() - before)

    asyncio.run(main())
""")


@pytest.mark.skipif(not ("CS_GNU_LIBC_VERSION" in getattr(os, "confstr_names", {})
                         and os.path.exists("/proc/self/status")), reason="measures glibc's heap through /proc")
def test_three_large_parses_leave_the_rss_within_20_mb_of_where_it_was(tmp_path: Path) -> None:
    (tmp_path / "big.eml").write_bytes(big_message(25))  # a 34 MB message
    run = subprocess.run([sys.executable, "-c", PARSES_LARGE_MAILS, str(tmp_path / "big.eml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    growth = float(run.stdout)
    assert growth < 20, f"RSS left {growth:.0f} MB above where it was after three 34 MB parses"
