"""The daemon's health endpoints. The admin application ([admin], loopback by default) serves
`/healthz` (the process is up), `/readyz` (every dependency of this process's roles answers: bus, case
store, blob store) and `/metrics` (Prometheus text, see ingest/metrics.py). The public webhook
application serves `/healthz` only: a load balancer in front of the webhook port checks the port it
sends traffic to, and the answer says nothing about the process. Readiness details (dependency error
messages) and the metrics stay off the public port.

`reports` are parts whose failure degrades the service without making it unready (an IMAP mailbox
that cannot log in: SMTP and the rest still work): `/readyz` shows their detail and says
"degraded" with 200, so an orchestrator does not take the whole daemon out of service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from casegate.ingest.metrics import exposition

Check = Callable[[], Awaitable[None]]
Report = Callable[[], tuple[bool, Any]]
"""(healthy, detail for the JSON body)."""


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def public_app() -> web.Application:
    """The public application with its liveness route; channels mount their webhooks on it."""
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    return app


def admin_app(checks: Mapping[str, Check], timeout: float = 2.0,
              reports: Mapping[str, Report] | None = None) -> web.Application:
    async def readyz(_request: web.Request) -> web.Response:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as e:
                results[name] = f"failing: {type(e).__name__}: {e}"[:300]
        ready = all(v == "ok" for v in results.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": results}
        for name, report in (reports or {}).items():
            healthy, body[name] = report()
            if ready and not healthy:
                body["status"] = "degraded"
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        body, content_type = exposition()
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
