"""`casegate` under cProfile in every thread, and a summary of such a profile.

`python -m cProfile` sees only the main thread; casegate also works in threads (the bus's and the blob
pack's group-commit writers, SQLite connections, `asyncio.to_thread`). This runs the command with one
cProfile profiler per thread (started by a `threading.setprofile` hook when the thread starts) and writes
them, merged, to one pstats file. The benchmarks start their daemon processes this way with `--profile
DIR`, and mark their measured window with signals: SIGUSR1 at the first send clears every profiler,
SIGUSR2 once the store holds every case writes the file (start-up, idling and shutdown stay out of it).
Without SIGUSR2 the file is written when the command exits. The daemon's own files are not touched.

The clock is each thread's CPU time (`time.thread_time`), so waiting (epoll, a thread pool's idle
workers, fsync) costs nothing and the figures add up to CPU; `BENCH_PROFILE_CLOCK=wall` profiles wall
time instead. Either slows the daemon down (CPU clock: about 3x on call-heavy code): use it for where
the time goes, not for rates.

    python -m tests.bench.profiled OUT.prof run --config FILE --role ingest    # what --profile starts
    python -m tests.bench.profiled --summary OUT.prof [--top 20] [--n MAILS]   # top functions
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any


class _Snapshot:
    """Another thread's profiler as pstats reads it, without `Profile.create_stats`: that disables it and
    closes its unfinished calls with the *calling* thread's clock (a worker blocked in a queue's `get`
    would be charged the main thread's CPU time). The snapshot has the finished calls only."""

    def __init__(self, prof: cProfile.Profile) -> None:
        self.prof = prof
        self.stats: dict[Any, Any] = {}

    def create_stats(self) -> None:
        self.prof.snapshot_stats()  # type: ignore[attr-defined]  # cProfile.Profile's own, undocumented
        self.stats = self.prof.stats  # type: ignore[attr-defined]


def run(out: str, argv: list[str]) -> None:
    """Run `casegate ARGV` with every thread profiled; write the merged profile to `out`."""
    wall = os.environ.get("BENCH_PROFILE_CLOCK") == "wall"

    def profiler() -> cProfile.Profile:
        return cProfile.Profile() if wall else cProfile.Profile(time.thread_time)

    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    written = False

    def thread_started(frame: Any, event: str, arg: Any) -> None:  # the first event of a new thread
        sys.setprofile(None)
        prof = profiler()
        with lock:
            profiles.append(prof)
        prof.enable()

    def write() -> None:
        nonlocal written
        if written:
            return
        written = True
        main.disable()
        threading.setprofile(None)
        stats = pstats.Stats()
        with lock:
            every = [main, *(_Snapshot(prof) for prof in profiles)]
        for prof in every:
            with contextlib.suppress(TypeError):  # a thread that made no call in the window: no stats
                stats.add(prof)
        stats.dump_stats(out)

    def clear(signum: int, frame: Any) -> None:  # the measured window starts (the GIL keeps this safe)
        with lock:
            for prof in [main, *profiles]:
                prof.clear()

    signal.signal(signal.SIGUSR1, clear)
    signal.signal(signal.SIGUSR2, lambda signum, frame: write())
    threading.setprofile(thread_started)
    main = profiler()
    code: Any = 0
    sys.argv = ["casegate", *argv]
    main.enable()
    try:
        from casegate.ingest.app.cli import main as casegate

        casegate(argv)
    except SystemExit as e:
        code = e.code
    finally:
        write()
    sys.exit(code)


def summary(path: str, top: int = 20, per: int = 0, strip: Sequence[str] = ()) -> str:
    """The `top` functions by cumulative and by own (tottime) time, as markdown tables, in % of the
    profile's total; with `per` (the mails or requests the profile covers), also µs per item."""
    stats = pstats.Stats(path, stream=io.StringIO())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = sum(v[2] for v in raw.values()) or 1.0

    def name(func: tuple[str, int, str]) -> str:
        file, line, fn = func
        for prefix in strip:
            if file.startswith(prefix):
                file = file[len(prefix):]
                break
        if file == "~":
            return fn
        return f"{file}:{line}({fn})"

    each = f", {total * 1e6 / per:,.0f} µs per item over {per:,} items" if per else ""
    lines = [f"profiled time: {total:.2f} s in all threads{each}"]
    for title, key in (("cumulative", 3), ("self (tottime)", 2)):
        lines.append(f"\nby {title}:\n")
        per_head = " µs per item |" if per else ""
        lines.append(f"| calls | self % | cumulative % |{per_head} function |")
        lines.append("|---:|---:|---:|" + ("---:|" if per else "") + "---|")
        ranked = sorted(raw.items(), key=lambda kv: kv[1][key], reverse=True)
        for func, (_cc, nc, tt, ct, _callers) in ranked[:top]:
            per_item = f" {(ct if key == 3 else tt) * 1e6 / per:,.0f} |" if per else ""
            lines.append(f"| {nc:,} | {tt / total:.1%} | {ct / total:.1%} |{per_item} `{name(func)}` |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--summary"]:
        p = argparse.ArgumentParser(prog="profiled --summary")
        p.add_argument("--summary", required=True, metavar="FILE")
        p.add_argument("--top", type=int, default=20)
        p.add_argument("--n", type=int, default=0, help="items (mails, requests) the profile covers: adds µs/item")
        args = p.parse_args(argv)
        site = next((s for s in sys.path if s.endswith("site-packages")), None)
        strip = [f"{site}/"] if site else []
        strip += [f"{sys.prefix}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/",
                  f"{sys.base_prefix}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/"]
        strip.append(os.getcwd() + "/")
        print(summary(args.summary, args.top, args.n, strip))
        return
    if len(argv) < 2:
        sys.exit("usage: python -m tests.bench.profiled OUT.prof CASEGATE-ARGS… | --summary FILE")
    run(argv[0], argv[1:])


if __name__ == "__main__":
    main()
