"""Every role serves the REST API on its public port, each process through case store connections of its
own (the ingest role has no store otherwise): a case created through the ingest process's port is read,
changed and deleted through the worker process's, and the other way round — on SQLite and PostgreSQL.
`[api] enabled = false` leaves /services unserved."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from casegate.ingest.app.daemon import Daemon

from tests.ingest.test_api_http import ApiClient, V, error_of, make_users
from tests.pipeline import settings_for, start_pipeline


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_the_ingest_and_the_worker_role_both_serve_the_api(tmp_path: Path, request: pytest.FixtureRequest,
                                                                  store: str) -> None:
    stores = {"store": {"url": request.getfixturevalue("pg_db_url")}} if store == "postgres" else {}
    settings = settings_for("local-sqlite", tmp_path, **stores)
    worker = await start_pipeline(settings, role="worker")  # migrates the store
    ingest = Daemon(settings, "ingest")
    try:
        await ingest.start()
        assert ingest.db is None and worker.daemon.db is not None  # the API has a store of its own
        users = await make_users(worker.daemon.db)
        async with aiohttp.ClientSession() as http:
            front = ApiClient(http, f"http://127.0.0.1:{ingest.http_port}", users.supervisor)
            back = ApiClient(http, f"http://127.0.0.1:{worker.daemon.http_port}", users.supervisor)
            for maker, other in ((front, back), (back, front)):
                made = await maker.post(V + "/sobjects/Case/", {"Subject": f"made at {maker.base}"})
                assert made.status == 201, made.body
                read = await other.get(f"{V}/sobjects/Case/{made.body['id']}")
                assert read.body["Subject"] == f"made at {maker.base}"
                assert (await other.patch(f"{V}/sobjects/Case/{made.body['id']}", {"Priority": "Low"})).status == 204
                assert (await maker.get(f"{V}/sobjects/Case/{made.body['id']}")).body["Priority"] == "Low"
                assert (await other.delete(f"{V}/sobjects/Case/{made.body['id']}")).status == 204
                assert error_of(await maker.get(f"{V}/sobjects/Case/{made.body['id']}")) == (404, "NOT_FOUND")
    finally:
        await ingest.stop()
        await worker.daemon.stop()


async def test_the_api_can_be_turned_off(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, api={"enabled": False}))
    try:
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{p.daemon.http_port}/services/data") as r:
            assert r.status == 404 and r.content_type != "application/json"
    finally:
        await p.daemon.stop()
