"""Hostile input on every webhook route, through the real listener: the X CRC used as a signing oracle,
JSON nested past the recursion limit, provider numbers that only look like numbers, type-confused ids,
and a bounded Hypothesis fuzz that signs type-confused payloads exactly as each provider signs them and
checks that the answer is only ever 2xx or 4xx, with nothing published for a 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from casegate.ingest.bus.dead_letters import list_dead_letters
from casegate.ingest.channels.x_activity import crc_response_token
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # no py.typed

from tests.ingest import test_chat, test_cti, test_meta, test_telegram, test_twilio, test_web_form, test_x
from tests.pipeline import Pipeline, settings_for, start_pipeline


@dataclass(frozen=True)
class Route:
    """One webhook route: a valid payload, and how its provider sends (and signs) a body."""

    name: str
    base: dict[str, Any]
    request: Callable[[bytes], tuple[str, dict[str, str], bytes]]
    form: bool = False
    """The payload goes as form fields (every value a string), not as JSON."""


def _twilio_json(body: bytes) -> tuple[str, dict[str, str], bytes]:
    path = f"{test_twilio.MESSAGING}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    return path, {"Content-Type": "application/json", "X-Twilio-Signature": "<signed later>"}, body


ROUTES = [
    Route("x", test_x.delivery(dms=[test_x.dm("1", "hi")], tweets=[test_x.tweet("2", "@acme hi")]),
          lambda b: (test_x.PATH, {"Content-Type": "application/json", "x-twitter-webhooks-signature": test_x.sign(b)},
                     b)),
    Route("meta", test_meta.whatsapp(test_meta.wa_text("wamid.1", "hi")),
          lambda b: (test_meta.PATH, {"Content-Type": "application/json",
                                      "X-Hub-Signature-256": test_meta.signature(b)}, b)),
    Route("telegram", test_telegram.update(1, "hi"),
          lambda b: (test_telegram.PATH, {"Content-Type": "application/json",
                                          "X-Telegram-Bot-Api-Secret-Token": test_telegram.SECRET}, b)),
    Route("chat", test_chat.message("m1"), lambda b: ("/hooks/chat", test_chat.signed(b), b)),
    Route("cti", test_cti.event("c1"), lambda b: ("/hooks/cti", test_cti.signed(b), b)),
    Route("twilio-json", test_twilio.sms("hi", NumMedia="1", MediaUrl0="https://api.twilio.com/m/1"), _twilio_json),
    Route("twilio-form", test_twilio.sms("hi"), lambda b: (test_twilio.MESSAGING, {}, b), form=True),
    Route("twilio-voice", test_twilio.call("completed", CallDuration="42"), lambda b: (test_twilio.VOICE, {}, b),
          form=True),
    Route("web-form", dict(test_web_form.FORM), lambda b: ("/web-to-case", {}, b), form=True),
]
BY_NAME = {r.name: r for r in ROUTES}


def all_channels() -> dict[str, Any]:
    return {**test_x.channels(), "meta": test_meta.channel(), **test_telegram.channels(), **test_cti.channels(),
            **test_chat.channels(), **test_twilio.twilio_section(fetch_media=False), **test_web_form.web_form()}


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Every webhook channel on one ingest process (local bus): what is published is counted on the bus."""
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=all_channels()), role="ingest")
    try:
        yield p
    finally:
        await p.daemon.stop()


def published(p: Pipeline) -> int:
    with sqlite3.connect(p.settings.bus_path) as conn:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


async def send(p: Pipeline, http: aiohttp.ClientSession, route: Route, payload: Any,
               raw: bytes | None = None) -> tuple[int, str]:
    """Send `payload` (or the bytes `raw`) on `route`, signed as its provider signs; (status, body)."""
    base = f"http://127.0.0.1:{p.daemon.http_port}"
    if route.form:
        fields = {str(k): str(v) for k, v in payload.items()}
        body = raw if raw is not None else urlencode(fields).encode()
        path, headers, _ = route.request(body)
        headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        if route.name.startswith("twilio"):
            headers["X-Twilio-Signature"] = RequestValidator(test_twilio.TOKEN).compute_signature(base + path, fields)
    else:
        body = raw if raw is not None else json.dumps(payload).encode()
        path, headers, body = route.request(body)
        if route.name == "twilio-json":
            headers["X-Twilio-Signature"] = RequestValidator(test_twilio.TOKEN).compute_signature(base + path, {})
    async with http.post(base + path, data=body, headers=headers) as r:
        return r.status, await r.text()


# -- 1. the X CRC is no signing oracle --------------------------------------------------------------
async def test_a_body_signed_through_the_crc_endpoint_is_not_accepted_as_a_delivery(hooks: Pipeline) -> None:
    forged = json.dumps(test_x.delivery(dms=[test_x.dm("666", "forged through the CRC")]))
    url = f"http://127.0.0.1:{hooks.daemon.http_port}{test_x.PATH}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"crc_token": forged}) as r:  # ask the CRC to sign the forgery
            assert r.status == 400 and (await r.json())["field"] == "crc_token"
        for token in ("x" * 256, "a b", "abc\n", '"abc"'):  # too long, or not the shape of X's tokens
            async with http.get(url, params={"crc_token": token}) as r:
                assert r.status == 400, token
        # a body the CRC would sign (a token-shaped one) is never taken for a delivery, even signed
        token = "9b4507b3-9040-4669-9ca3-6b94edb50553"
        async with http.get(url, params={"crc_token": token}) as r:
            assert r.status == 200
            signature = (await r.json())["response_token"]
        assert signature == crc_response_token(test_x.SECRET, token)
        async with http.post(url, data=token.encode(), headers={"x-twitter-webhooks-signature": signature,
                                                                 "Content-Type": "application/json"}) as r:
            assert r.status == 400
        # the forged delivery, carrying any signature an outsider can get, is refused
        async with http.post(url, data=forged.encode(), headers={"x-twitter-webhooks-signature": signature,
                                                                  "Content-Type": "application/json"}) as r:
            assert r.status == 403
    assert published(hooks) == 0


# -- 3. nesting past the recursion limit ------------------------------------------------------------
@pytest.mark.parametrize("levels", [65, 980, 5000, 200_000])
async def test_deeply_nested_signed_json_is_refused_with_400_on_every_json_route(
        hooks: Pipeline, levels: int) -> None:
    deep = "[" * levels + "]" * levels
    async with aiohttp.ClientSession() as http:
        for route in ROUTES:
            if route.form:
                continue
            body = json.dumps(route.base)[:-1] + f', "deep": {deep}}}'
            status, text = await send(hooks, http, route, None, raw=body.encode())
            assert status == 400, (route.name, status, text)
            assert "deeper than" in json.loads(text)["error"], route.name
            # a valid payload still goes through afterwards: the listener is unharmed
    assert published(hooks) == 0


async def test_signed_json_within_the_depth_limit_is_accepted(hooks: Pipeline) -> None:
    payload = test_chat.message("m-deep", attributes=None)
    raw = json.dumps(payload)[:-1] + ', "extra": ' + "[" * 40 + "]" * 40 + "}"
    async with aiohttp.ClientSession() as http:
        assert (await send(hooks, http, BY_NAME["chat"], None, raw=raw.encode()))[0] == 200
    assert published(hooks) == 1


# -- 4. numbers that only look like numbers ----------------------------------------------------------
@pytest.mark.parametrize("value", ["²", "٣", "1" * 5000, "-1", "1.0", " 1"])
async def test_twilio_num_media_that_is_not_plain_digits_gets_400_naming_it(hooks: Pipeline, value: str) -> None:
    async with aiohttp.ClientSession() as http:
        for name in ("twilio-form", "twilio-json"):
            route = BY_NAME[name]
            status, text = await send(hooks, http, route, {**route.base, "NumMedia": value})
            assert (status, json.loads(text).get("field")) == (400, "NumMedia"), (name, value)
    assert published(hooks) == 0


# -- 5. type-confused X ids ------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "value", "field"), [
    ("in_reply_to_user_id_str", ["1533772000000000001"], "tweet_create_events[0].in_reply_to_user_id_str"),
    ("in_reply_to_user_id_str", {"id": 1}, "tweet_create_events[0].in_reply_to_user_id_str"),
    ("mention_id", ["1"], "tweet_create_events[0].entities.user_mentions[0].id_str"),
    ("mention_id", {"a": 1}, "tweet_create_events[0].entities.user_mentions[0].id_str"),
    ("mention_id", 1533772000000000001, "tweet_create_events[0].entities.user_mentions[0].id_str"),
])
async def test_x_tweets_with_a_list_or_object_for_an_id_get_400_naming_the_field(
        hooks: Pipeline, where: str, value: Any, field: str) -> None:
    tweet = test_x.tweet("2", "@acme_help hello")
    if where == "mention_id":
        tweet["entities"]["user_mentions"][0]["id_str"] = value
    else:
        tweet[where] = value
    async with aiohttp.ClientSession() as http:
        status, text = await send(hooks, http, BY_NAME["x"], test_x.delivery(tweets=[tweet]))
    assert (status, json.loads(text).get("field")) == (400, field)
    assert published(hooks) == 0


# -- the fuzz ----------------------------------------------------------------------------------------
FORM_TRICKY = st.sampled_from(["", "²", "٣", "\x00", "1e999", "-0", "NaN", "9" * 4400, "🙂" * 50, "+15551230000",
                               "whatsapp:²", "2026-13-45T99:99:99Z", "\u202e", "a" * 5000, "%ED%A0%80", "\r\n"])
TRICKY = FORM_TRICKY | st.sampled_from(["\ud800", "\udfff"])  # JSON can carry lone surrogates (as \\ud800)
LEAVES = (st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**40)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20) | TRICKY)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=6)
DELETE = object()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value where another value can go."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def mutate(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with `new` at `path` (or the key removed, for DELETE)."""
    if not path:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    head, rest = path[0], path[1:]
    if rest:
        copy[head] = mutate(copy[head], rest, new)
    elif new is DELETE and isinstance(copy, dict):
        del copy[head]
    else:
        copy[head] = None if new is DELETE else new
    return copy


@st.composite
def hostile(draw: st.DrawFn, route: Route) -> Any:
    payload: Any = route.base
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = paths(payload)
        if not where:
            break
        path = draw(st.sampled_from(where))
        new = draw(st.text(max_size=30) | FORM_TRICKY if route.form  # st.text() has no lone surrogates
                   else VALUES | st.just(DELETE))
        payload = mutate(payload, path, new)
    return payload


@pytest.mark.parametrize("name", [r.name for r in ROUTES])
@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
async def test_signed_type_confused_payloads_get_only_2xx_or_4xx_and_a_4xx_publishes_nothing(
        hooks: Pipeline, name: str, data: st.DataObject) -> None:
    route = BY_NAME[name]
    payload = data.draw(hostile(route))
    before = published(hooks)
    async with aiohttp.ClientSession() as http:
        status, text = await send(hooks, http, route, payload)
    event(f"HTTP {status}")
    assert status < 500 and status != 0, (status, text, payload)
    if 400 <= status < 500:
        assert published(hooks) == before, (status, text)
        if status == 400:
            assert json.loads(text)["error"], text


@pytest.fixture
async def whole(tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Every webhook channel, with the worker: what is accepted must become a case."""
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=all_channels()))
    try:
        yield p
    finally:
        await p.daemon.stop()


@pytest.mark.parametrize("name", [r.name for r in ROUTES])
async def test_what_the_fuzz_gets_accepted_becomes_cases_not_dead_letters(whole: Pipeline, name: str) -> None:
    route = BY_NAME[name]
    accepted = 0

    @settings(max_examples=40, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def collect(data: st.DataObject) -> None:
        payloads.append(data.draw(hostile(route)))

    payloads: list[Any] = []
    collect()
    async with aiohttp.ClientSession() as http:
        for payload in payloads:
            status, text = await send(whole, http, route, payload)
            assert status < 500, (status, text, payload)
            accepted += status < 300
    assert accepted, "the fuzz should also produce payloads that are accepted"
    await whole.wait_idle()
    assert await list_dead_letters(whole.settings) == []


async def test_a_body_trickling_in_slower_than_the_body_timeout_gets_408_and_nothing_is_published(
        tmp_path: Path) -> None:
    settings = settings_for("local-sqlite", tmp_path, channels=all_channels(), http={"body_timeout": 1.0})
    p = await start_pipeline(settings, role="ingest")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", p.daemon.http_port)
        writer.write(b"POST /hooks/chat HTTP/1.1\r\nHost: casegate\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        await writer.drain()
        trickle = asyncio.create_task(_trickle(writer))  # a byte every 0.3 s: never done within 1 s
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            trickle.cancel()
            writer.close()
        assert head.startswith(b"HTTP/1.1 408"), head
        assert published(p) == 0
    finally:
        await p.daemon.stop()


async def _trickle(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            await asyncio.sleep(0.3)
            writer.write(b" ")
            await writer.drain()
