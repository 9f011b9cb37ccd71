"""The admin listener through real HTTP: `/readyz` and `/metrics` are served there and nowhere on the
public webhook port, which keeps only `/healthz` (for a load balancer in front of it); the admin
listener binds loopback by default, can be turned off, and has its own connection cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from casegate.config import Settings

from tests.pipeline import settings_for, start_pipeline


async def test_readyz_and_metrics_are_on_the_admin_port_only(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    try:
        admin = f"http://127.0.0.1:{p.daemon.admin_port}"
        public = f"http://127.0.0.1:{p.daemon.http_port}"
        assert p.daemon.admin_port not in (0, p.daemon.http_port)
        async with aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz", "/metrics"):
                async with http.get(admin + path) as r:
                    assert r.status == 200, path
            async with http.get(admin + "/metrics") as r:
                assert "casegate_connections_open" in await r.text()
            async with http.get(public + "/healthz") as r:
                assert r.status == 200 and await r.json() == {"status": "ok"}
            for path in ("/readyz", "/metrics"):
                async with http.get(public + path) as r:
                    assert r.status == 404, path
    finally:
        await p.daemon.stop()


def test_the_admin_listener_defaults_to_loopback() -> None:
    admin = Settings().admin
    assert (admin.enabled, admin.host, admin.port, admin.max_connections) == (True, "127.0.0.1", 9525, 32)


async def test_the_admin_listener_can_be_turned_off(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, admin={"enabled": False}))
    try:
        assert p.daemon.admin_port == 0 and p.daemon.caps.admin == 0
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{p.daemon.http_port}/healthz") as r:
            assert r.status == 200  # the public port is unaffected
    finally:
        await p.daemon.stop()


async def test_the_admin_listener_has_its_own_cap(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, admin={"max_connections": 1}))
    held = None
    try:
        _, held = await asyncio.open_connection("127.0.0.1", p.daemon.admin_port)  # holds the only place
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{p.daemon.admin_port}/readyz") as r:
                assert r.status == 503
            async with http.get(f"http://127.0.0.1:{p.daemon.http_port}/healthz") as r:
                assert r.status == 200  # a full admin listener takes nothing from the public one
    finally:
        if held is not None:
            held.close()
        await p.daemon.stop()
