"""The shapes of an X Account Activity delivery that casegate reads, as pydantic models
(https://developer.x.com/en/docs/x-api/enterprise/account-activity-api/guides/account-activity-data-objects).

Strict (ingest.channels.payload): an id string is a string, never a number, list or object, so a
type-confused field is a 400 naming it (ingest.channels.webhook.validated) instead of an error deep in
the handler. Fields casegate does not read are ignored; every field it reads is declared here.
"""

from __future__ import annotations

from typing import Any

from casegate.ingest.channels.payload import Id, Shape
from pydantic import Field


class Delivery(Shape):
    """The top level: who it is for, the lookup map of users, and the event arrays casegate reads."""

    for_user_id: Id
    users: dict[str, Any] = Field(default_factory=dict)
    direct_message_events: list[dict[str, Any]] = Field(default_factory=list)
    tweet_create_events: list[dict[str, Any]] = Field(default_factory=list)


class User(Shape):
    id_str: str | None = None
    name: str | None = None
    screen_name: str | None = None


class Media(Shape):
    id_str: str | None = None
    type: str | None = None
    media_url_https: str | None = None
    media_url: str | None = None
    url: str | None = None
    """The t.co link X appends to the text for this media."""


class Attachment(Shape):
    media: Media | None = None


class MessageData(Shape):
    text: str = ""
    attachment: Attachment | None = None


class Target(Shape):
    recipient_id: str | None = None


class MessageCreate(Shape):
    sender_id: Id
    target: Target | None = None
    message_data: MessageData


class DirectMessage(Shape):
    """A `direct_message_events[]` item of type `message_create`."""

    id: Id
    created_timestamp: str | None = None
    message_create: MessageCreate


class Mention(Shape):
    id_str: str | None = None


class Entities(Shape):
    user_mentions: list[Mention] = Field(default_factory=list)


class MediaEntities(Shape):
    media: list[Media] = Field(default_factory=list)


class Author(Shape):
    id_str: Id
    name: str | None = None
    screen_name: str | None = None


class ExtendedTweet(Shape):
    full_text: str | None = None
    entities: Entities | None = None
    extended_entities: MediaEntities | None = None


class Tweet(Shape):
    """A `tweet_create_events[]` item: a full Tweet object (v1.1 shape)."""

    id_str: Id
    user: Author
    text: str | None = None
    full_text: str | None = None
    extended_tweet: ExtendedTweet | None = None
    entities: Entities | None = None
    extended_entities: MediaEntities | None = None
    in_reply_to_user_id_str: str | None = None
    in_reply_to_status_id_str: str | None = None
    created_at: str | None = None
    user_has_blocked: bool | None = None
    retweeted_status: dict[str, Any] | None = None

    @property
    def is_retweet(self) -> bool:
        return "retweeted_status" in self.model_fields_set
