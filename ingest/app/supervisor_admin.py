"""The supervisor's admin listener: the configured `[admin]` port, serving `/healthz`, `/readyz` and
`/metrics` for every process it runs, so operators probe and scrape one address however many CPUs
the host has (each process's own admin listener is on an ephemeral loopback port only the supervisor
uses).

- `/readyz` asks each process's `/readyz` at once: 200 `ready` when all answer ready; 200 `degraded`
  while the worker and at least one ingest process are ready but another is down, restarting or
  degraded (mail still flows); 503 otherwise, and while the supervisor is starting or stopping. The
  body has each process's answer under `processes`.
- `/metrics` is every process's exposition, each sample labelled `process="ingest-1"` (… `worker`,
  `supervisor`), plus the supervisor's own `casegate_supervisor_restarts_total{child}` and
  `casegate_supervisor_up{child}`. A restarted process starts its counters again from zero; Prometheus's
  rate() reads that as a counter reset."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

ASK_TIMEOUT = 2.0
"""Seconds a process has to answer the supervisor's /readyz or /metrics question."""


@dataclass(frozen=True)
class ProcessState:
    """What the admin listener knows of one supervised process."""

    name: str
    role: str
    pid: int | None
    admin_port: int | None
    """Its loopback admin port once it reported being up; None while down or starting."""
    restarts: int


class SupervisorMetrics:
    """The supervisor's own figures, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.restarts = Counter("casegate_supervisor_restarts", "Processes the supervisor restarted after "
                                "they died, by child (ingest-1 …, worker).", ["child"], registry=self.registry)
        self.up = Gauge("casegate_supervisor_up", "1 while the child process runs and has reported its "
                        "listeners up.", ["child"], registry=self.registry)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]):
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


def merge_expositions(texts: Mapping[str, str]) -> bytes:
    """The Prometheus text expositions of several processes as one, each sample labelled with
    `process` = its key."""
    families: dict[str, Metric] = {}
    for process, text in texts.items():
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type)
            merged.samples.extend(s._replace(labels={**s.labels, "process": process}) for s in family.samples)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return generate_latest(registry)


class SupervisorAdmin:
    """The aiohttp application; `processes()` and `phase()` read the supervisor's state at each request."""

    def __init__(self, processes: Callable[[], Sequence[ProcessState]], phase: Callable[[], str],
                 metrics: SupervisorMetrics):
        self.processes = processes
        self.phase = phase
        self.metrics = metrics
        self._http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _ask(self, p: ProcessState, path: str) -> tuple[int, str]:
        """(status, body) of GET `path` on the process's admin port; raises on no answer."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ASK_TIMEOUT))
        async with self._http.get(f"http://127.0.0.1:{p.admin_port}{path}") as r:
            return r.status, await r.text()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readiness(self, p: ProcessState) -> tuple[bool, dict[str, Any]]:
        if p.admin_port is None:
            return False, {"status": "down" if p.pid is None else "starting", "pid": p.pid, "restarts": p.restarts}
        try:
            status, text = await self._ask(p, "/readyz")
            body: dict[str, Any] = json.loads(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            return False, {"status": f"no answer: {type(e).__name__}: {e}"[:300], "pid": p.pid,
                           "restarts": p.restarts}
        return status == 200, {**body, "pid": p.pid, "restarts": p.restarts}

    async def _readyz(self, _request: web.Request) -> web.Response:
        phase = self.phase()
        if phase != "running":
            return web.json_response({"status": phase}, status=503)
        processes = self.processes()
        answers = await asyncio.gather(*(self._readiness(p) for p in processes))
        ok = {p.name: answer[0] for p, answer in zip(processes, answers, strict=True)}
        worker_ok = all(ok[p.name] for p in processes if p.role == "worker")
        ingest_ok = any(ok[p.name] for p in processes if p.role == "ingest")
        ready = worker_ok and ingest_ok
        whole = all(ok.values()) and all(a[1].get("status") == "ready" for a in answers)
        body = {"status": ("ready" if whole else "degraded") if ready else "not ready",
                "processes": {p.name: a[1] for p, a in zip(processes, answers, strict=True)}}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        processes = [p for p in self.processes() if p.admin_port is not None]
        answers = await asyncio.gather(*(self._ask(p, "/metrics") for p in processes), return_exceptions=True)
        texts = {p.name: a[1] for p, a in zip(processes, answers, strict=True)
                 if not isinstance(a, BaseException) and a[0] == 200}
        texts["supervisor"] = generate_latest(self.metrics.registry).decode()
        return web.Response(body=merge_expositions(texts), headers={"Content-Type": CONTENT_TYPE_LATEST})
