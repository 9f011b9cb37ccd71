"""X (Twitter) Account Activity API webhook
(https://developer.x.com/en/docs/x-api/enterprise/account-activity-api/guides/securing-webhooks).

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

**The CRC is not a signing oracle.** X signs the CRC answer and the POST body with the same key and
the same construction, so a CRC endpoint that answers any token signs any body an outsider chooses,
which they could then POST as a delivery. Two rules keep the two apart: the CRC answers only a token
shaped as X's are (1 to 255 characters of letters, digits and `-_=+/.:`, never JSON), and a POST
is verified only when its body is a JSON object, which starts with `{` and so can never be a CRC token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from casegate.config.channels import XChannel
from casegate.config.sections import read_secret
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    check_hmac_sha256,
    message_envelope,
    parse_json,
    publish_all,
    validated,
    webhook,
)
from casegate.ingest.channels.x_payload import Delivery, DirectMessage, Tweet, User
from casegate.ingest.envelope import Envelope, Sender

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
CRC_TOKEN = re.compile(r"[A-Za-z0-9\-_=+/.:]{1,255}")
"""What a crc_token may be: X's are short base64 / uuid-like strings. Never `{`, so never a delivery."""


def crc_response_token(consumer_secret: str, crc_token: str) -> str:
    mac = hmac.new(consumer_secret.encode(), crc_token.encode(), hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(mac).decode()


def _without_link(text: str, link: str | None) -> str:
    """X appends the t.co link of attached media to the text; the media is kept apart."""
    if link and text.rstrip().endswith(link):
        return text.rstrip()[: -len(link)].rstrip()
    return text


def dm_envelope(event: Mapping[str, Any], where: str, users: Mapping[str, Any], own: set[str]) -> Envelope | None:
    """The envelope of a `message_create` event sent to us, else None."""
    if event.get("type") != "message_create":
        return None
    dm = validated(DirectMessage, event, where)
    create = dm.message_create
    if create.sender_id in own:
        return None  # the echo of a DM our account sent
    text = create.message_data.text
    media: list[str] = []
    details = {"kind": "direct_message"}
    attachment = create.message_data.attachment
    if attachment is not None and attachment.media is not None:
        item = attachment.media
        if url := item.media_url_https or item.media_url:
            media.append(url)
            text = _without_link(text, item.url)
        details.update({label: value for label, value in (("media_id", item.id_str), ("media_type", item.type))
                        if value is not None})
    found = users.get(create.sender_id)
    user = validated(User, found, f"users.{create.sender_id}") if found is not None else User()
    if user.screen_name is not None:
        details["screen_name"] = user.screen_name
    if dm.created_timestamp is not None:
        details["created_timestamp"] = dm.created_timestamp
    recipient = create.target.recipient_id if create.target is not None else None
    return message_envelope("x", "x", dm.id, sender=Sender(name=user.name, handle=create.sender_id),
                            text=text or None, recipients=[recipient] if recipient is not None else [],
                            subject=None if text.strip() else "X direct message",
                            entry_type="Media" if media else "Text", media=media, details=details)


def _mentions(tweet: Tweet, own: set[str]) -> bool:
    if tweet.in_reply_to_user_id_str in own:
        return True
    extended = tweet.extended_tweet
    for entities in (tweet.entities, extended.entities if extended is not None else None):
        if entities is not None and any(m.id_str in own for m in entities.user_mentions):
            return True
    return False


def tweet_envelope(raw: Mapping[str, Any], where: str, own: set[str]) -> Envelope | None:
    """The envelope of a tweet that mentions or answers us, else None (our own tweets, retweets, others)."""
    tweet = validated(Tweet, raw, where)
    user = tweet.user
    if user.id_str in own or tweet.is_retweet or not _mentions(tweet, own):
        return None
    extended = tweet.extended_tweet
    full = extended.full_text if extended is not None else None
    text = full if full is not None else (tweet.full_text if tweet.full_text is not None else tweet.text or "")
    media: list[str] = []
    for holder in (extended, tweet):
        found = holder.extended_entities if holder is not None else None
        if found is not None and not media:
            for item in found.media:
                if item.media_url_https is not None:
                    media.append(item.media_url_https)
                    text = _without_link(text, item.url)
    details = {"kind": "mention"}
    if user.screen_name is not None:
        details["screen_name"] = user.screen_name
        details["url"] = f"https://x.com/{user.screen_name}/status/{tweet.id_str}"
    details.update({key: value for key, value in (("in_reply_to_status_id_str", tweet.in_reply_to_status_id_str),
                                                  ("created_at", tweet.created_at)) if value is not None})
    if tweet.user_has_blocked is True:
        details["user_has_blocked"] = "true"
    return message_envelope("x", "x", tweet.id_str, sender=Sender(name=user.name, handle=user.id_str),
                            text=text or None, subject=None if text.strip() else "X mention",
                            entry_type="Media" if media else "Text", media=media, details=details)


def parse_activity(body: bytes, own_user_id: str) -> list[Envelope]:
    """The messages of one delivery (possibly none); Rejected 400 naming the field when malformed."""
    payload = parse_json(body)
    if not isinstance(payload, Mapping):
        raise Rejected(400, "body is not a JSON object (an Account Activity delivery)")
    delivery = validated(Delivery, payload)
    own = {delivery.for_user_id} | ({own_user_id} if own_user_id else set())
    envelopes: list[Envelope | None] = []
    for i, event in enumerate(delivery.direct_message_events):
        envelopes.append(dm_envelope(event, f"direct_message_events[{i}].", delivery.users, own))
    for i, tweet in enumerate(delivery.tweet_create_events):
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
        if not CRC_TOKEN.fullmatch(token):
            raise Rejected(400, "crc_token is not shaped as X's are (1-255 letters, digits or -_=+/.:)",
                           "crc_token")
        return web.json_response({"response_token": crc_response_token(secret(), token)})

    async def activity(request: web.Request, body: bytes) -> web.StreamResponse:
        if not body.lstrip(b" \t\r\n").startswith(b"{"):  # a CRC answer never signs such a body
            raise Rejected(400, "body is not a JSON object (an Account Activity delivery)")
        check_hmac_sha256(secret(), body, request.headers.get(SIGNATURE_HEADER), prefix="sha256=",
                          encoding="base64")
        return await publish_all(ctx, "x", parse_activity(body, section.own_user_id))

    app.router.add_get(section.path, webhook("x", ctx, crc))
    app.router.add_post(section.path, webhook("x", ctx, activity))
