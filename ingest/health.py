"""The daemon's HTTP application: `/healthz` (the process is up) and `/readyz` (every dependency of
this process's roles answers: bus, case store, blob store). Channels with webhooks mount their routes
on the same application."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

Check = Callable[[], Awaitable[None]]


def health_app(checks: Mapping[str, Check], timeout: float = 2.0) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout)
                results[name] = "ok"
            except Exception as e:
                results[name] = f"failing: {type(e).__name__}: {e}"[:300]
        ready = all(v == "ok" for v in results.values())
        return web.json_response({"status": "ready" if ready else "not ready", "checks": results},
                                 status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
