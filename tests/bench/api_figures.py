"""The figures of tests/bench/api_load.py: one measured load (rate, latency, CPU ms per call of each
process) and the report, in which every casegate figure stands beside its same-run reference and the
ratio, printed as it is measured and again as one markdown table at the end."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.bench.api_client import LoadResult
from tests.bench.smtp_to_case import fmt, proc_cpu_seconds

TARGET_P99_MS = 20.0


def say(line: str) -> None:
    """Progress, on stderr (the figures go to stdout)."""
    print(line, file=sys.stderr, flush=True)


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_now(members: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system, psutil) of each process by name."""
    return {name: proc_cpu_seconds(pid) for name, pid in members.items()}


def cpu_since(before: dict[str, float], members: dict[str, int]) -> dict[str, float]:
    return {name: proc_cpu_seconds(pid) - before[name] for name, pid in members.items()}


@dataclass
class Figures:
    """One measured load: rate, latency and CPU ms per call of each process."""

    rate: float = math.nan
    p50: float = math.nan
    p99: float = math.nan
    calls: int = 0
    max_ms: float = math.nan
    cpu_ms: dict[str, float] = field(default_factory=dict)
    p99_sched: float = math.nan
    """Paced loads: p99 from each call's due time (includes waiting for a busy connection)."""

    @classmethod
    def of(cls, res: LoadResult, kind: str | None, cpu_s: dict[str, float]) -> Figures:
        """The figures of `res` (of its calls of `kind`, or all). CPU is shared by every call of the load."""
        n = res.count if kind is None else len(res.latency_ms.get(kind, []))
        every = res.count or 1
        sched = sorted(res.sched_ms)
        return cls(res.rate(kind), res.p(50, kind), res.p(99, kind), n, res.p(100, kind),
                   {name: s * 1000 / every for name, s in cpu_s.items()},
                   sched[max(0, math.ceil(0.99 * len(sched)) - 1)] if sched else math.nan)

    def latency(self) -> str:
        sched = "" if math.isnan(self.p99_sched) else f" (p99 from schedule {self.p99_sched:.2f} ms)"
        return f"p50 {fmt(self.p50, '.2f')} ms, p99 {fmt(self.p99, '.2f')} ms, max {fmt(self.max_ms, '.1f')} ms{sched}"

    def cpu_total(self) -> float:
        return sum(self.cpu_ms.values()) if self.cpu_ms else math.nan

    def cpu(self) -> str:
        if not self.cpu_ms:
            return "-"
        if len(self.cpu_ms) == 1:
            return f"{self.cpu_total():.2f}"
        return f"{self.cpu_total():.2f} (" + " + ".join(f"{k} {v:.2f}" for k, v in self.cpu_ms.items()) + ")"


def mean(runs: Sequence[Figures]) -> Figures:
    """The reference figure from its runs before and after the casegate passes: their mean (max: the
    larger)."""
    ok = [r for r in runs if not math.isnan(r.rate)]
    if not ok:
        return Figures()

    def avg(values: Sequence[float]) -> float:
        return sum(values) / len(values)

    return Figures(avg([r.rate for r in ok]), avg([r.p50 for r in ok]), avg([r.p99 for r in ok]), ok[0].calls,
                   max(r.max_ms for r in ok), {k: avg([r.cpu_ms.get(k, 0.0) for r in ok]) for k in ok[0].cpu_ms},
                   avg([r.p99_sched for r in ok]))


@dataclass
class Report:
    """The rows of one configuration: measure, casegate's figure, the reference's, the ratio."""

    config: str
    rows: list[tuple[str, ...]] = field(default_factory=list)

    def add(self, what: str, value: str, reference: str = "-", ratio: str = "-") -> None:
        self.rows.append((self.config, what, value, reference, ratio))
        print(f"[{self.config}] {what}: {value} | reference {reference} | ratio {ratio}", flush=True)

    def compare(self, what: str, got: Figures, ref: Figures, *, rate: bool = True) -> None:
        """A load's rate, latency and CPU with the reference's and the ratios (rates: casegate / reference;
        latency and CPU: how many times the reference's)."""
        if rate:
            self.add(f"{what} /s", fmt(got.rate, ",.0f"), fmt(ref.rate, ",.0f"), fmt(got.rate / ref.rate, ".3f"))
        self.add(f"{what} p50 / p99 ms", f"{fmt(got.p50, '.2f')} / {fmt(got.p99, '.2f')}",
                 f"{fmt(ref.p50, '.2f')} / {fmt(ref.p99, '.2f')}",
                 f"{fmt(got.p50 / ref.p50, '.1f')}x / {fmt(got.p99 / ref.p99, '.1f')}x")
        self.add(f"{what}: CPU ms per call", got.cpu(), ref.cpu(), fmt(got.cpu_total() / ref.cpu_total(), ".1f") + "x")

    def target(self, what: str, got: Figures) -> None:
        self.add(f"{what}: target p99 < {TARGET_P99_MS:g} ms", "met" if got.p99 < TARGET_P99_MS else "MISSED")


def table(reports: Sequence[Report]) -> str:
    head = ("config", "measure", "casegate", "reference (no-op aiohttp, same client)", "ratio")
    rows = [head, *(r for rep in reports for r in rep.rows)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
