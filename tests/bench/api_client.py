"""The REST API load client of tests/bench/api_load.py: Salesforce-shaped calls (creates, SOQL queries,
reads by Id) sent over K keep-alive aiohttp connections, each call's latency from request start to the
response read. The same client drives casegate and the no-op aiohttp reference (tests/bench/reference.py).

`send_calls` sends a list of calls once (call i on connection i % K, back to back, or at `rate` calls/s
in total: call i due at t0 + i/rate, so a server that falls behind shows in the latency from the
schedule), or, given `until`, cycles through its share until that event is set (the API load that runs
beside the SMTP load). Latencies are kept per kind of call."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp

from tests.bench.smtp_to_case import percentile

API = "/services/data/v62.0"
HTTP_TIMEOUT = 60.0
ORIGINS = ("Web", "Phone")


@dataclass(frozen=True, slots=True)
class ApiCall:
    kind: str
    """What the figures are grouped by: create, soql, get, or a lookup's name."""
    method: str
    path: str
    body: bytes | None = None
    status: int = 200
    """The answer expected; any other is counted as an error."""


def create_call(run_id: str, i: int) -> ApiCall:
    """A case create with a real JSON body: Subject, Description, Origin, SuppliedEmail."""
    body = {"Subject": f"api {run_id} case {i}: the printer on floor {i % 7} is jammed",
            "Description": f"Created by the API benchmark, run {run_id}, case {i}.\nThe printer shows error E42 "
                           "and will not print; we restarted it twice. Please send someone.",
            "Origin": ORIGINS[i % len(ORIGINS)],
            "SuppliedEmail": f"api-customer{i % 500:03d}@example.test"}
    return ApiCall("create", "POST", f"{API}/sobjects/Case/", json.dumps(body).encode(), 201)


def soql_call(soql: str, kind: str = "soql") -> ApiCall:
    return ApiCall(kind, "GET", f"{API}/query?q={quote(soql, safe='')}")


def case_number_call(case_number: str) -> ApiCall:
    """The one-row query: a case by its CaseNumber."""
    return soql_call(f"SELECT Id, CaseNumber, Status FROM Case WHERE CaseNumber = '{case_number}'")


def get_call(case_id: str) -> ApiCall:
    return ApiCall("get", "GET", f"{API}/sobjects/Case/{case_id}")


@dataclass
class LoadResult:
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sched_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)
    """Ids from the 201 answers of creates (when asked to keep them)."""
    started: float = 0.0
    finished: float = 0.0

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.latency_ms.values())

    def seconds(self) -> float:
        return self.finished - self.started

    def rate(self, kind: str | None = None) -> float:
        n = self.count if kind is None else len(self.latency_ms.get(kind, []))
        return n / self.seconds() if self.seconds() > 0 else math.nan

    def p(self, q: float, kind: str | None = None) -> float:
        values = [x for v in self.latency_ms.values() for x in v] if kind is None else self.latency_ms.get(kind, [])
        return percentile(sorted(values), q)

    def error_text(self) -> str:
        return ", ".join(f"{k} x{n}" for k, n in self.errors.most_common(6))


async def send_calls(port: int, token: str, calls: Sequence[ApiCall], k: int, *, rate: float | None = None,
                     deadline: float | None = None, until: asyncio.Event | None = None,
                     seconds: float | None = None, keep_ids: bool = False, any_2xx: bool = False) -> LoadResult:
    """Send `calls` over `k` connections to 127.0.0.1:`port` (see the module docstring). `deadline`
    (perf_counter): calls not sent by then are errors; `seconds`: stop quietly after that long (the calls
    not sent are not counted); `any_2xx`: every 2xx answer is right (the no-op reference answers 200)."""
    if until is not None and rate is not None:
        raise ValueError("a paced load is sent once: rate and until do not go together")
    res = LoadResult()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"}
    connector = aiohttp.TCPConnector(limit=k)
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as http:
        async def warm() -> None:
            async with http.get(f"{base}/healthz") as r:
                await r.read()

        await asyncio.gather(*(warm() for _ in range(k)))  # K keep-alive connections open before the clock
        res.started = time.perf_counter()
        stop_at = res.started + seconds if seconds is not None else math.inf

        async def one(call: ApiCall, due: float | None) -> None:
            t = time.perf_counter()
            try:
                async with http.request(call.method, base + call.path, data=call.body) as r:
                    answer = await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as e:
                res.errors[type(e).__name__] += 1
                return
            done = time.perf_counter()
            if not (200 <= status < 300 if any_2xx else status == call.status):
                res.errors[f"{call.kind} HTTP {status}: {answer[:120].decode(errors='replace')}"] += 1
                return
            res.latency_ms[call.kind].append((done - t) * 1000)
            if due is not None:
                res.sched_ms.append((done - due) * 1000)
            if keep_ids and call.kind == "create":
                res.created.append(json.loads(answer)["id"])

        async def connection(idx: int) -> None:
            mine = range(idx, len(calls), k)
            while True:
                for i in mine:
                    due = res.started + i / rate if rate else None
                    if due is not None and (delay := due - time.perf_counter()) > 0:
                        await asyncio.sleep(delay)
                    if deadline is not None and time.perf_counter() > deadline:
                        res.errors["deadline passed"] += 1
                        return
                    if (until is not None and until.is_set()) or time.perf_counter() > stop_at:
                        return
                    await one(calls[i], due)
                if until is None or until.is_set() or not mine:
                    return

        await asyncio.gather(*(connection(i) for i in range(k)))
        res.finished = time.perf_counter()
    return res
