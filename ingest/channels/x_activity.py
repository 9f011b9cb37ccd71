"""X (Twitter) Account Activity API webhook (reference/channels.md §6).

- `GET ?crc_token=...`: the challenge-response check, answered with
  `{"response_token": "sha256=" + base64(HMAC-SHA256(consumer secret, crc_token))}`.
- `POST`: a delivery signed in `x-twitter-webhooks-signature` (the same HMAC over the raw body),
  carrying one array of events. On channel `x`:
  - `direct_message_events[]` of type `message_create` sent to us: the event `id` is the idempotency
    key, the sender's user id the handle, name and screen name from the `users` map, media from the
    attachment;
  - `tweet_create_events[]` that mention us or reply to us: `id_str` is the key, the author's
    `id_str` the handle; retweets are not messages.
  Our own DMs and tweets (sent by `own_user_id` or the delivery's `for_user_id`) come back as echoes
  and are ignored, as are every other kind of event (favorites, follows, typing, reads ...): 200,
  nothing published. A delivery's messages are all published, or it is answered 503.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from config.channels import XChannel
from config.sections import read_secret
from ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_hmac_sha256,
    message_envelope,
    parse_json,
    publish_all,
    require,
    webhook,
)
from ingest.envelope import Envelope, Sender

SIGNATURE_HEADER = "x-twitter-webhooks-signature"


def crc_response_token(consumer_secret: str, crc_token: str) -> str:
    mac = hmac.new(consumer_secret.encode(), crc_token.encode(), hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def _list(payload: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = payload.get(name, [])
    if not isinstance(items, list):
        raise Rejected(400, f"invalid field {name}: not a list", name)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise Rejected(400, f"invalid field {name}[{i}]: not an object", f"{name}[{i}]")
    return items


def _without_link(text: str, link: Any) -> str:
    """X appends the t.co link of attached media to the text; the media is kept apart."""
    if isinstance(link, str) and link and text.rstrip().endswith(link):
        return text.rstrip()[: -len(link)].rstrip()
    return text


def dm_envelope(event: Mapping[str, Any], where: str, users: Mapping[str, Any], own: set[str]) -> Envelope | None:
    """The envelope of a `message_create` event sent to us, else None."""
    if event.get("type") != "message_create":
        return None
    event_id = require(event, "id", str, where)
    create = require(event, "message_create", Mapping, where)
    sender_id = require(create, "sender_id", str, f"{where}message_create.")
    if sender_id in own:
        return None  # the echo of a DM our account sent
    data = require(create, "message_data", Mapping, f"{where}message_create.")
    text = data.get("text", "")
    if not isinstance(text, str):
        raise Rejected(400, f"invalid field {where}message_create.message_data.text",
                       f"{where}message_create.message_data.text")
    media: list[str] = []
    details = {"kind": "direct_message"}
    attachment = data.get("attachment")
    if isinstance(attachment, Mapping) and isinstance(attachment.get("media"), Mapping):
        item = attachment["media"]
        url = item.get("media_url_https") or item.get("media_url")
        if isinstance(url, str):
            media.append(url)
            text = _without_link(text, item.get("url"))
        for key, label in (("id_str", "media_id"), ("type", "media_type")):
            if isinstance(item.get(key), str):
                details[label] = item[key]
    found = users.get(sender_id)
    user: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if isinstance(user.get("screen_name"), str):
        details["screen_name"] = user["screen_name"]
    if isinstance(event.get("created_timestamp"), str):
        details["created_timestamp"] = event["created_timestamp"]
    target = create.get("target")
    recipient = target.get("recipient_id") if isinstance(target, Mapping) else None
    name = user.get("name") if isinstance(user.get("name"), str) else None
    return message_envelope("x", "x", event_id, sender=Sender(name=name, handle=sender_id), text=text or None,
                            recipients=[recipient] if isinstance(recipient, str) else [],
                            subject=None if text.strip() else "X direct message",
                            entry_type="Media" if media else "Text", media=media, details=details)


def _mentions(tweet: Mapping[str, Any], own: set[str]) -> bool:
    if tweet.get("in_reply_to_user_id_str") in own:
        return True
    for holder in (tweet, tweet.get("extended_tweet")):
        entities = holder.get("entities") if isinstance(holder, Mapping) else None
        mentions = entities.get("user_mentions") if isinstance(entities, Mapping) else None
        if isinstance(mentions, list) and any(isinstance(m, Mapping) and m.get("id_str") in own for m in mentions):
            return True
    return False


def tweet_envelope(tweet: Mapping[str, Any], where: str, own: set[str]) -> Envelope | None:
    """The envelope of a tweet that mentions or answers us, else None (our own tweets, retweets, others)."""
    tweet_id = require(tweet, "id_str", str, where)
    user = require(tweet, "user", Mapping, where)
    user_id = require(user, "id_str", str, f"{where}user.")
    if user_id in own or "retweeted_status" in tweet or not _mentions(tweet, own):
        return None
    extended = tweet.get("extended_tweet")
    full = extended.get("full_text") if isinstance(extended, Mapping) else None
    text = full if isinstance(full, str) else tweet.get("full_text", tweet.get("text", ""))
    if not isinstance(text, str):
        raise Rejected(400, f"invalid field {where}text", f"{where}text")
    media: list[str] = []
    for holder in (extended, tweet):
        found = holder.get("extended_entities") if isinstance(holder, Mapping) else None
        items = found.get("media") if isinstance(found, Mapping) else None
        if isinstance(items, list) and not media:
            for item in items:
                if isinstance(item, Mapping) and isinstance(item.get("media_url_https"), str):
                    media.append(item["media_url_https"])
                    text = _without_link(text, item.get("url"))
    details = {"kind": "mention"}
    screen_name = user.get("screen_name")
    if isinstance(screen_name, str):
        details["screen_name"] = screen_name
        details["url"] = f"https://x.com/{screen_name}/status/{tweet_id}"
    for key in ("in_reply_to_status_id_str", "created_at"):
        if isinstance(tweet.get(key), str):
            details[key] = tweet[key]
    if tweet.get("user_has_blocked") is True:
        details["user_has_blocked"] = "true"
    name = user.get("name") if isinstance(user.get("name"), str) else None
    return message_envelope("x", "x", tweet_id, sender=Sender(name=name, handle=user_id), text=text or None,
                            subject=None if text.strip() else "X mention",
                            entry_type="Media" if media else "Text", media=media, details=details)


def parse_activity(body: bytes, own_user_id: str) -> list[Envelope]:
    """The messages of one delivery (possibly none); Rejected 400 naming the field when malformed."""
    payload = parse_json(body)
    if not isinstance(payload, Mapping):
        raise Rejected(400, "body is not a JSON object (an Account Activity delivery)")
    own = {require(payload, "for_user_id", str)} | ({own_user_id} if own_user_id else set())
    users = payload.get("users", {})
    if not isinstance(users, Mapping):
        raise Rejected(400, "invalid field users: not an object", "users")
    envelopes: list[Envelope | None] = []
    for i, event in enumerate(_list(payload, "direct_message_events")):
        envelopes.append(dm_envelope(event, f"direct_message_events[{i}].", users, own))
    for i, tweet in enumerate(_list(payload, "tweet_create_events")):
        envelopes.append(tweet_envelope(tweet, f"tweet_create_events[{i}].", own))
    return [e for e in envelopes if e is not None]


def mount(app: web.Application, ctx: ChannelContext) -> None:
    section: XChannel = ctx.settings.channels.x

    def secret() -> str:
        return read_secret(section.consumer_secret, section.consumer_secret_file)

    async def crc(request: web.Request, body: bytes) -> web.StreamResponse:
        token = request.query.get("crc_token")
        if not token:
            raise Rejected(400, "missing crc_token", "crc_token")
        return web.json_response({"response_token": crc_response_token(secret(), token)})

    async def activity(request: web.Request, body: bytes) -> web.StreamResponse:
        check_hmac_sha256(secret(), body, request.headers.get(SIGNATURE_HEADER), prefix="sha256=",
                          encoding="base64")
        return await publish_all(ctx, "x", parse_activity(body, section.own_user_id))

    app.router.add_get(section.path, webhook("x", ctx, crc))
    app.router.add_post(section.path, webhook("x", ctx, activity))
