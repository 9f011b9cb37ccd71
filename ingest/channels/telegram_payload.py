"""The shapes of a Telegram Bot API `Update` that casegate reads, as pydantic models
(https://core.telegram.org/bots/api#update, #message).

Strict (ingest.channels.payload): Telegram's ids are integers, file ids and phone numbers strings; a
field that does not fit is a 400 naming it. A message kind or file kind that is present must be an
object (null too is refused).
"""

from __future__ import annotations

from typing import Annotated

from casegate.ingest.channels.payload import NOT_NULL, Id, Number, Shape
from pydantic import Field

FILE_KINDS = ("document", "audio", "voice", "video", "video_note", "animation", "sticker")
"""Message fields holding one file object (`photo` is a list of sizes and handled apart)."""


class User(Shape):
    id: int
    is_bot: bool = False
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @property
    def full_name(self) -> str | None:
        return " ".join(part for part in (self.first_name, self.last_name) if part) or None


class Chat(Shape):
    id: int
    type: str = ""


class File(Shape):
    """A document, audio, voice, video, video note, animation, sticker or photo size."""

    file_id: Id
    file_unique_id: str | None = None
    mime_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None
    duration: int | None = None
    emoji: str | None = None

    def details(self) -> dict[str, str]:
        """The file's fields that are given, as strings (file_id, sizes, names ...)."""
        return {name: str(value) for name, value in self.model_dump().items() if value is not None}


class Location(Shape):
    latitude: Number
    longitude: Number


class Venue(Shape):
    location: Location
    title: str | None = None
    address: str | None = None


class Contact(Shape):
    phone_number: Id
    first_name: str | None = None
    last_name: str | None = None


class Replied(Shape):
    """The message a message answers (`reply_to_message`): only its id is read."""

    message_id: int | None = None


class Message(Shape):
    """A `message` or `edited_message`. `from` is absent for messages sent on behalf of a chat."""

    sender: User | None = Field(None, alias="from")
    chat: Chat
    message_id: int
    text: str | None = None
    caption: str | None = None
    photo: Annotated[list[File], Field(min_length=1)] | None = None
    """Sizes of one photo, smallest first."""
    document: Annotated[File | None, NOT_NULL] = None
    audio: Annotated[File | None, NOT_NULL] = None
    voice: Annotated[File | None, NOT_NULL] = None
    video: Annotated[File | None, NOT_NULL] = None
    video_note: Annotated[File | None, NOT_NULL] = None
    animation: Annotated[File | None, NOT_NULL] = None
    sticker: Annotated[File | None, NOT_NULL] = None
    venue: Annotated[Venue | None, NOT_NULL] = None
    location: Annotated[Location | None, NOT_NULL] = None
    contact: Annotated[Contact | None, NOT_NULL] = None
    message_thread_id: int | None = None
    media_group_id: str | None = None
    reply_to_message: Replied | None = None
    edit_date: int | None = None

    @property
    def body(self) -> str | None:
        """The text, or the caption of a media message (a message has one or the other)."""
        return self.text if "text" in self.model_fields_set else self.caption

    def file(self) -> tuple[str, File] | None:
        """The kind and object of the one file the message carries (not a photo), if any."""
        for kind in FILE_KINDS:
            found: File | None = getattr(self, kind)
            if found is not None:
                return kind, found
        return None


class Update(Shape):
    update_id: int
    message: Annotated[Message | None, NOT_NULL] = None
    edited_message: Annotated[Message | None, NOT_NULL] = None
