"""The X Account Activity webhook over real HTTP on loopback, through the whole pipeline: the CRC
check, and deliveries signed exactly as X signs them (base64 HMAC-SHA256 of the raw body with the
consumer secret, in `x-twitter-webhooks-signature`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import Settings
from casegate.ingest.channels.x_activity import crc_response_token
from casegate.store.models import Contact, ContactHandle, ConversationEntry, ProcessedMessage

from tests.pipeline import Pipeline, settings_for, start_pipeline

SECRET = "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"
PATH = "/hooks/x"
US = "1533772000000000001"
LEE = {"id": "98765432", "name": "Lee Kim", "screen_name": "lee_k"}


def channels(**more: Any) -> dict[str, Any]:
    return {"x": {"enabled": True, "consumer_secret": SECRET, "own_user_id": US, **more}}


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def dm(event_id: str, text: str, sender: str = LEE["id"], **data: Any) -> dict[str, Any]:
    recipient = US if sender != US else LEE["id"]
    return {"type": "message_create", "id": event_id, "created_timestamp": "1780402400123",
            "message_create": {"target": {"recipient_id": recipient}, "sender_id": sender,
                               "message_data": {"text": text, "entities": {"hashtags": [], "symbols": [],
                                                                           "user_mentions": [], "urls": []},
                                                **data}}}


def tweet(id_str: str, text: str, user: dict[str, str] = LEE, mention: bool = True, **more: Any) -> dict[str, Any]:
    mentions = [{"id_str": US, "screen_name": "acme_help"}] if mention else []
    return {"id_str": id_str, "created_at": "Wed Jun 03 10:11:12 +0000 2026", "text": text,
            "user": {"id_str": user["id"], "name": user["name"], "screen_name": user["screen_name"]},
            "entities": {"user_mentions": mentions}, "in_reply_to_status_id_str": None, **more}


def delivery(*, dms: list[dict[str, Any]] | None = None, tweets: list[dict[str, Any]] | None = None,
             **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"for_user_id": US, **more}
    if dms:
        body["direct_message_events"] = list(dms)
        body["users"] = {LEE["id"]: LEE, US: {"id": US, "name": "Acme Help", "screen_name": "acme_help"}}
    if tweets:
        body["tweet_create_events"] = list(tweets)
    return body


async def post(p: Pipeline, body: dict[str, Any] | bytes, signature: str | None = "sign") -> tuple[int, Any]:
    """POST as X does: the raw JSON body and its signature over exactly those bytes."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["x-twitter-webhooks-signature"] = sign(raw) if signature == "sign" else signature
    async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{p.daemon.http_port}{PATH}", data=raw, headers=headers) as r:
        return r.status, await r.json()


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Pipeline]:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(closed_case_policy="new_case")))
    try:
        yield p
    finally:
        await p.daemon.stop()


def test_the_crc_and_signature_match_the_published_vectors() -> None:
    assert crc_response_token(SECRET, "9b4507b3-9040-4669-9ca3-6b94edb50553") == (
        "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=")
    assert sign(b'{"for_user_id":"2244994945","direct_message_events":[]}') == (
        "sha256=86bJAS/cEdBTs+FcCm8DsTQRVvlvYbXFT68WGLH+ooI=")


async def test_crc_get_answers_the_response_token(local: Pipeline) -> None:
    url = f"http://127.0.0.1:{local.daemon.http_port}{PATH}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"crc_token": "9b4507b3-9040-4669-9ca3-6b94edb50553"}) as r:
            assert (r.status, r.content_type) == (200, "application/json")
            assert await r.json() == {"response_token": "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8="}
        async with http.get(url) as r:
            assert (r.status, (await r.json())["field"]) == (400, "crc_token")


async def test_dms_and_a_mention_from_one_user_are_one_x_case_and_a_replay_is_one_message(
        deployment_settings: Callable[..., Settings]) -> None:
    p = await start_pipeline(deployment_settings(channels=channels()))
    try:
        first = delivery(dms=[dm("1799000000000000042", "Still no refund for order 5520")])
        assert await post(p, first) == (200, {"accepted": 1})
        assert (await post(p, first))[0] == 200  # X retries a delivery it thinks failed
        mention = tweet("1799000000000000050", "@acme_help any news on 5520?")
        assert (await post(p, delivery(tweets=[mention])))[0] == 200
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        [case] = await p.cases()
        assert (case["Origin"], case["Subject"], case["SuppliedName"]) == (
            "X", "Still no refund for order 5520", "Lee Kim")
        entries = (await p.case(case["CaseNumber"]))["ConversationEntries"]
        assert [(e["Channel"], e["EntryType"], e["ActorIdentifier"], e["ActorName"], e["MessageIdentifier"],
                 e["Message"], e["Recipient"]) for e in entries] == [
            ("x", "Text", "98765432", "Lee Kim", "1799000000000000042", "Still no refund for order 5520", US),
            ("x", "Text", "98765432", "Lee Kim", "1799000000000000050", "@acme_help any news on 5520?", None)]
        dm_details, mentioned = (json.loads(e["Details"]) for e in entries)
        assert (dm_details["kind"], dm_details["screen_name"]) == ("direct_message", "lee_k")
        assert (mentioned["kind"], mentioned["screen_name"], mentioned["url"]) == (
            "mention", "lee_k", "https://x.com/lee_k/status/1799000000000000050")
        contacts = await p.rows(Contact.Id, Contact.FirstName, Contact.LastName)
        assert [c[1:] for c in contacts] == [("Lee", "Kim")] and case["ContactId"] == contacts[0][0]
        assert await p.rows(ContactHandle.Channel, ContactHandle.Handle) == [("x", "98765432")]
        assert await p.count(ProcessedMessage) == 2
    finally:
        await p.daemon.stop()


async def test_tampered_wrong_or_missing_signatures_are_refused_and_nothing_is_published(local: Pipeline) -> None:
    raw = json.dumps(delivery(dms=[dm("1", "forged")])).encode()
    tampered = raw.replace(b"forged", b"Forged")
    status, answer = await post(local, tampered, signature=sign(raw))
    assert (status, answer["error"]) == (403, "signature does not match")
    assert (await post(local, raw, signature=sign(raw, "another-secret")))[0] == 403
    assert (await post(local, raw, signature=None)) == (401, {"error": "signature missing"})
    assert (await post(local, raw, signature=""))[0] == 401
    assert (await post(local, delivery(dms=[dm("2", "genuine")])))[0] == 200
    await local.wait_for(lambda cs: len(cs) == 1)
    await local.wait_idle()
    assert await local.count(ProcessedMessage) == 1
    [entry] = (await local.case("00001000"))["ConversationEntries"]
    assert entry["Message"] == "genuine"


async def test_own_dms_and_tweets_other_events_and_retweets_publish_nothing(local: Pipeline) -> None:
    us = {"id": US, "name": "Acme Help", "screen_name": "acme_help"}
    stranger = {"id": "555", "name": "Sam Other", "screen_name": "sam"}
    nothing = [
        delivery(dms=[dm("10", "Thanks, we are on it", sender=US)]),  # our echo
        delivery(dms=[{"type": "message_create", "id": "11", "message_create": {
            "sender_id": "2244994945", "message_data": {"text": "echo of the subscribed account"}}}],
            for_user_id="2244994945"),
        delivery(tweets=[tweet("12", "Our announcement", user=us, mention=False)]),
        delivery(tweets=[tweet("13", "Nice weather today", user=stranger, mention=False)]),
        delivery(tweets=[tweet("14", "RT @acme_help: promo", retweeted_status={"id_str": "9"})]),
        delivery(favorite_events=[{"id": "f1", "favorited_status": {"id_str": "9"}, "user": LEE}]),
        delivery(follow_events=[{"type": "follow", "source": LEE, "target": us}]),
        delivery(direct_message_indicate_typing_events=[{"created_timestamp": "1", "sender_id": LEE["id"]}]),
        delivery(dms=[{"type": "message_create_but_not", "id": "15"}]),
    ]
    for body in nothing:
        assert await post(local, body) == (200, {"accepted": 0})
    reply = tweet("16", "thanks", in_reply_to_status_id_str="12", in_reply_to_user_id_str=US, mention=False)
    assert await post(local, delivery(tweets=[reply])) == (200, {"accepted": 1})
    await local.wait_for(lambda cs: len(cs) == 1)
    await local.wait_idle()
    assert await local.count(ProcessedMessage) == 1
    [entry] = (await local.case("00001000"))["ConversationEntries"]
    assert json.loads(entry["Details"])["in_reply_to_status_id_str"] == "12"


async def test_media_and_extended_text_and_several_events_in_one_delivery(local: Pipeline) -> None:
    photo = {"id_str": "77", "media_url_https": "https://pbs.twimg.com/dm_img/77.jpg", "type": "photo",
             "url": "https://t.co/abc"}
    long_tweet = tweet("31", "@acme_help my order arrived broken, see the photo and also…",
                       truncated=True, extended_tweet={
                           "full_text": "@acme_help my order arrived broken, see the photo and also the box "
                                        "https://t.co/xyz",
                           "extended_entities": {"media": [{"media_url_https": "https://pbs.twimg.com/m/1.jpg",
                                                            "url": "https://t.co/xyz", "type": "photo"}]}})
    body = delivery(dms=[dm("30", "Here is the damage https://t.co/abc",
                            attachment={"type": "media", "media": photo})], tweets=[long_tweet])
    assert await post(local, body) == (200, {"accepted": 2})
    await local.wait_for(lambda cs: len(cs) == 1)
    await local.wait_idle()
    entries = (await local.case("00001000"))["ConversationEntries"]
    assert [(e["EntryType"], e["MessageIdentifier"], e["Message"], json.loads(e["MediaUrls"])) for e in entries] == [
        ("Media", "30", "Here is the damage", ["https://pbs.twimg.com/dm_img/77.jpg"]),
        ("Media", "31", "@acme_help my order arrived broken, see the photo and also the box",
         ["https://pbs.twimg.com/m/1.jpg"])]
    assert json.loads(entries[0]["Details"])["media_id"] == "77"


@pytest.mark.parametrize(("body", "field"), [
    (b'{"for_user_id": "1", "direct_message_events": [', None),
    (b'"text"', None),
    (b'{"direct_message_events": []}', "for_user_id"),
    (b'{"for_user_id": "1", "direct_message_events": {}}', "direct_message_events"),
    (b'{"for_user_id": "1", "direct_message_events": [7]}', "direct_message_events[0]"),
    (b'{"for_user_id": "1", "direct_message_events": [{"type": "message_create", "id": "5", "message_create": '
     b'{"message_data": {"text": "hi"}}}]}', "direct_message_events[0].message_create.sender_id"),
    (b'{"for_user_id": "1", "tweet_create_events": [{"id_str": "5", "text": "hi"}]}', "tweet_create_events[0].user"),
    (b'{"for_user_id": "1", "tweet_create_events": [{"id": 5, "text": "hi", "user": {"id_str": "2"}}]}',
     "tweet_create_events[0].id_str"),
])
async def test_malformed_deliveries_are_refused_with_400_naming_the_field(
        local: Pipeline, body: bytes, field: str | None) -> None:
    status, answer = await post(local, body)
    assert status == 400 and answer.get("field") == field
    assert answer["error"]


async def test_bus_failing_answers_503_for_the_whole_delivery_then_the_retry_makes_one_case(tmp_path: Path) -> None:
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, channels=channels(),
                                          bus={"local": {"busy_timeout": 0.3}}))
    try:
        body = delivery(dms=[dm("40", "during the outage"), dm("41", "and another")],
                        tweets=[tweet("42", "@acme_help hello?")])
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        status, _ = await post(p, body)
        assert status == 503
        holder.execute("ROLLBACK")
        holder.close()
        assert await p.published() == 0  # nothing reached the bus ...
        await p.wait_idle()
        assert await p.count(ProcessedMessage) == 0 and await p.cases() == []  # ... nor the store
        assert await post(p, body) == (200, {"accepted": 3})  # X retries the delivery
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert len(await p.cases()) == 1
        assert await p.count(ConversationEntry) == 3 and await p.count(ProcessedMessage) == 3
    finally:
        await p.daemon.stop()


async def test_after_the_case_is_closed_the_channel_policy_opens_a_new_case_with_its_parent(local: Pipeline) -> None:
    assert (await post(local, delivery(dms=[dm("50", "Broken again")])))[0] == 200
    [first] = await local.wait_for(lambda cs: len(cs) == 1)
    assert local.daemon.worker is not None
    await local.daemon.worker.service.change_status(first["CaseNumber"], "Closed")
    assert (await post(local, delivery(dms=[dm("51", "Still broken")])))[0] == 200
    cases = await local.wait_for(lambda cs: len(cs) == 2)
    assert [c["CaseNumber"] for c in cases] == ["00001000", "00001001"]
    assert (cases[1]["ParentId"], cases[1]["ContactId"], cases[1]["Status"]) == (first["Id"], first["ContactId"], "New")
    assert cases[0]["Status"] == "Closed"
    assert await local.count(Contact) == 1
