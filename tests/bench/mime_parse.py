"""How fast `parse_mail` reads real messages, and how much memory a 25 MB one costs.

    .venv/bin/python -m tests.bench.mime_parse [--seconds 2] [--size-mb 25] [--together 4] [--retained 3]

Prints the parse rate (messages/s and ms/message) over: CPython's email test messages, the collected set in
tests/data/mail/, a small plain-text mail (the hot path), and a small HTML-only mail (nh3 and text
extraction). Then parses one message with a base64 attachment of `--size-mb` MB in a child process (so the
RSS is its own) and prints the child's peak RSS before and after parsing, against the message size.
`--together N` parses of it at once, straight in threads and then in turn, give the peak RSS of each.
`--retained N` parses of it one after the other, each result dropped, give the RSS left behind: straight in
a thread (as before heap release), through the hand-off's parse_in_turn (which releases the C heap's free
memory in its thread), and after one more release_free_memory (what the hand-off does shortly after).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from email.message import EmailMessage
from pathlib import Path

from casegate.ingest.mail.handoff import LARGE_PARSES_AT_ONCE, parse_in_turn
from casegate.ingest.mail.heap_release import release_free_memory
from casegate.ingest.mail.mime import parse_mail

CPYTHON_DATA = Path("/usr/lib/python3.11/test/test_email/data")
COLLECTED = Path(__file__).resolve().parent.parent / "data" / "mail"


def corpus(folder: Path) -> list[bytes]:
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and (p.name.startswith("msg_") or p.suffix == ".eml")]


def small_plain() -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Ada Customer <ada@example.org>", "support@localhost", "Printer on fire"
    m["Message-ID"], m["Date"] = "<1@example.org>", "Fri, 27 Nov 2026 10:00:00 +0100"
    m.set_content("Hello,\n\nthe printer on floor 3 is on fire again.\n\nAda\n")
    return bytes(m)


def small_html() -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Ada Customer <ada@example.org>", "support@localhost", "Printer on fire"
    m.set_content("<html><head><style>p{margin:0}</style></head><body>"
                  + "<p>Hello,</p><p>the <b>printer</b> on floor 3 is on fire again.</p>" * 20
                  + "<div>Ada</div></body></html>", subtype="html")
    return bytes(m)


def big_message(size_mb: int) -> bytes:
    head = (b"From: Ada <ada@example.org>\r\nTo: support@localhost\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
            b"see attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n")
    data = base64.encodebytes(os.urandom(size_mb * 1024 * 1024)).replace(b"\n", b"\r\n")
    return head + data + b"--b--\r\n"


def rate(name: str, messages: Sequence[bytes], seconds: float) -> None:
    if not messages:
        print(f"{name:<28} (none found)")
        return
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for raw in messages:
            parse_mail(raw)
        count += len(messages)
    elapsed = time.perf_counter() - start
    print(f"{name:<28} {len(messages):>4} msgs  {count / elapsed:>9,.0f} msg/s  {1000 * elapsed / count:7.3f} ms/msg")


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux hands a child its parent's peak at fork, so the child resets it
    first (writing 5 to /proc/self/clear_refs) and reads VmHWM; elsewhere ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's RSS now (VmRSS), 0 where /proc is missing."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration, ValueError):
        return 0.0


def peak_rss_child(path: str) -> None:
    """In the child: read the message, then parse it; print peak RSS (MB) at start and after each."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    start_rss = peak_rss_mb()
    raw = Path(path).read_bytes()
    before = peak_rss_mb()
    start = time.perf_counter()
    parsed = parse_mail(raw)
    elapsed = time.perf_counter() - start
    after = peak_rss_mb()
    data = sum(len(p.data) for p in parsed.parts)
    print(f"{start_rss:.1f} {len(raw) / 2**20:.1f} {before:.1f} {after:.1f} {elapsed:.3f} {data}")


def together_child(path: str, n: int, in_turn: bool) -> None:
    """In the child: read the message once, then hand it to N parses at once, either through the hand-off's
    parse_in_turn (LARGE_PARSES_AT_ONCE at a time) or each straight in a thread; print peak RSS before/after."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    raw = Path(path).read_bytes()
    before = peak_rss_mb()

    async def one() -> None:  # the result is dropped, as the hand-off drops it once the blobs are stored
        await (parse_in_turn(raw) if in_turn else asyncio.to_thread(parse_mail, raw))

    async def run() -> None:
        await asyncio.gather(*(one() for _ in range(n)))

    start = time.perf_counter()
    asyncio.run(run())
    print(f"{before:.1f} {peak_rss_mb():.1f} {time.perf_counter() - start:.3f}")


def peak_rss_together(path: str, size: float, n: int) -> None:
    for in_turn, label in [(False, "all at once"), (True, f"in turn ({LARGE_PARSES_AT_ONCE} at a time)")]:
        out = subprocess.run([sys.executable, "-m", "tests.bench.mime_parse", "--child", path, "--together",
                              str(n), *(["--in-turn"] if in_turn else [])],
                             check=True, capture_output=True, text=True).stdout.split()
        before, after, elapsed = (float(v) for v in out[:3])
        print(f"{n} parses of it together, {label}: peak RSS +{after - before:.0f} MB over the message "
              f"({(after - before) / size:.1f}x its size); {elapsed:.2f} s")


def retained_child(path: str, n: int, in_turn: bool) -> None:
    """In the child: read the message, parse it N times one after the other (each result dropped) while the
    event loop and its threads live on, as in the daemon; print RSS before, after, and after one release."""
    raw = Path(path).read_bytes()

    async def run() -> None:
        await asyncio.to_thread(len, raw)  # the executor's thread exists before the baseline
        gc.collect()
        before = rss_mb()
        for _ in range(n):
            await (parse_in_turn(raw) if in_turn else asyncio.to_thread(parse_mail, raw))  # result dropped
            await asyncio.sleep(0)  # the loop drops the handle that woke us, and with it the result
        gc.collect()
        after = rss_mb()
        release_free_memory()
        print(f"{before:.1f} {after:.1f} {rss_mb():.1f}")

    asyncio.run(run())


def rss_retained(path: str, n: int) -> None:
    for in_turn, label in [(False, "straight in a thread"), (True, "through parse_in_turn")]:
        out = subprocess.run([sys.executable, "-m", "tests.bench.mime_parse", "--child", path, "--retained",
                              str(n), *(["--in-turn"] if in_turn else [])],
                             check=True, capture_output=True, text=True).stdout.split()
        before, after, released = (float(v) for v in out[:3])
        print(f"{n} parses of it in a row, {label}: RSS left behind +{after - before:.0f} MB; after "
              f"release_free_memory +{released - before:.0f} MB")


def peak_rss(size_mb: int, together: int, retained: int) -> None:
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(big_message(size_mb))
        f.flush()
        out = subprocess.run([sys.executable, "-m", "tests.bench.mime_parse", "--child", f.name],
                             check=True, capture_output=True, text=True).stdout.split()
        start, size, before, after, elapsed = (float(v) for v in out[:5])
        data = int(out[5])
        print(f"{size_mb} MB attachment: message {size:.1f} MB; peak RSS {start:.0f} MB at start, {before:.0f} MB "
              f"after reading it, {after:.0f} MB after parsing (+{after - before:.0f} MB = "
              f"{(after - before) / size:.1f}x the message); parse {elapsed:.2f} s; attachment bytes "
              f"{data / 2**20:.1f} MB")
        if together > 1:
            peak_rss_together(f.name, size, together)
        if retained > 0:
            rss_retained(f.name, retained)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="time per rate measurement")
    ap.add_argument("--size-mb", type=int, default=25, help="attachment size of the big message")
    ap.add_argument("--together", type=int, default=4, help="big messages parsed at once (default 4)")
    ap.add_argument("--retained", type=int, default=3,
                    help="big messages parsed in a row before measuring the RSS left behind (default 3; 0: skip)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--in-turn", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child and "--retained" in sys.argv:
        retained_child(args.child, args.retained, args.in_turn)
        return
    if args.child and "--together" in sys.argv:
        together_child(args.child, args.together, args.in_turn)
        return
    if args.child:
        peak_rss_child(args.child)
        return
    rate("cpython test_email data", corpus(CPYTHON_DATA), args.seconds)
    rate("collected tests/data/mail", corpus(COLLECTED), args.seconds)
    rate("small plain-text mail", [small_plain()], args.seconds)
    rate("small HTML-only mail", [small_html()], args.seconds)
    peak_rss(args.size_mb, args.together, args.retained)


if __name__ == "__main__":
    main()
