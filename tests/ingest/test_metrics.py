"""GET /metrics over real HTTP (the admin listener): what a daemon did shows up in its Prometheus figures.
The registry lives for the whole test process, so every assertion is on the change between two scrapes."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp import web
from casegate.ingest.listeners.connection_guard import ConnectionGuard, http_refusal
from casegate.ingest.listeners.http import HttpListener, count_responses

from tests.ingest.test_chat import channels, message, signed
from tests.pipeline import mail, settings_for, start_pipeline

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


async def test_accepted_refused_and_worker_outcomes_are_counted(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        before = await p.metrics()
        raw, msgid = mail("metrics please")
        assert (await p.send(raw))[0] == 250
        assert (await p.send(mail("reply", in_reply_to=msgid)[0]))[0] == 250
        assert (await p.send(mail("nobody")[0], rcpt="stranger@elsewhere.example"))[0] == 550
        body = json.dumps(message("metrics-1")).encode()
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{p.daemon.http_port}/hooks/chat"
            async with http.post(url, data=body, headers=signed(body)) as r:
                assert r.status == 200
            async with http.post(url, data=body, headers=signed(body, secret="wrong")) as r:
                assert r.status == 403
        await p.wait_for(lambda cs: len(cs) == 2)
        await p.wait_idle()
        after = await p.metrics()

        assert delta(before, after, "casegate_ingest_accepted_total", channel="email") == 2
        assert delta(before, after, "casegate_ingest_accepted_total", channel="chat") == 1
        assert delta(before, after, "casegate_smtp_refused_total", code="550") == 1
        assert delta(before, after, "casegate_webhook_rejected_total", channel="chat", status="403") == 1
        assert delta(before, after, "casegate_ingest_publish_seconds_count") == 3
        assert delta(before, after, "casegate_worker_messages_total", channel="email", outcome="created") == 1
        assert delta(before, after, "casegate_worker_messages_total", channel="email", outcome="threaded") == 1
        assert delta(before, after, "casegate_worker_messages_total", channel="chat", outcome="created") == 1
        assert delta(before, after, "casegate_worker_batch_seconds_count") >= 1
        assert after[("process_resident_memory_bytes", ())] > 0
    finally:
        await p.daemon.stop()


async def test_every_http_response_is_counted_by_route_template_and_status(tmp_path: Path) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug in a handler")

    app = web.Application()  # an application with a failing route, on the daemon's own kind of listener
    app.router.add_get("/broken/{id}", broken)
    count_responses(app)
    listener = HttpListener(app, ConnectionGuard("test", 10, 0, http_refusal), host="127.0.0.1", port=0,
                            header_timeout=5, keepalive_timeout=5)
    broken_port = await listener.start()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels()))
    try:
        before = await p.metrics()
        public = f"http://127.0.0.1:{p.daemon.http_port}"
        body = json.dumps(message("responses-1")).encode()
        async with aiohttp.ClientSession() as http:
            async with http.get(public + "/healthz") as r:
                assert r.status == 200
            for path in ("/no/such/page", "/wp-login.php?x=1", "/hooks/chat/../../etc/passwd"):
                async with http.get(public + path) as r:
                    assert r.status == 404
            async with http.post(public + "/hooks/chat", data=body, headers=signed(body, secret="wrong")) as r:
                assert r.status == 403
            async with http.post(public + "/hooks/chat", data=body, headers=signed(body)) as r:
                assert r.status == 200
            for i in range(2):
                async with http.get(f"http://127.0.0.1:{broken_port}/broken/{i}") as r:
                    assert r.status == 500
        after = await p.metrics()
    finally:
        await p.daemon.stop()
        await listener.stop()

    assert delta(before, after, "casegate_http_responses_total", route="/healthz", status="200") == 1
    assert delta(before, after, "casegate_http_responses_total", route="unmatched", status="404") == 3
    assert delta(before, after, "casegate_http_responses_total", route="/hooks/chat", status="403") == 1
    assert delta(before, after, "casegate_http_responses_total", route="/hooks/chat", status="200") == 1
    assert delta(before, after, "casegate_http_responses_total", route="/broken/{id}", status="500") == 2
    routes = {dict(labels)["route"] for name, labels in after if name == "casegate_http_responses_total"}
    assert not any("wp-login" in r or "passwd" in r or "/broken/1" in r for r in routes), routes
    # the admin listener's own responses (these scrapes) are not counted: the label set is the public routes
    assert "/metrics" not in routes
