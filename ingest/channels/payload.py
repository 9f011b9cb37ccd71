"""The building blocks of every provider's payload models (`<provider>_payload.py`): the strict base
model and the field types more than one provider needs.

A payload model declares only the fields casegate reads, with the type the provider documents: an id
string is a str (never a number, list or object), a number is a number (never a bool), a timestamp
is validated as the channel needs it. `ingest.channels.webhook.validated` turns the first field that
does not fit into a 400 naming it (`entry[0].changes[0].value.messages[2].id`), so a type-confused
payload is refused at the door instead of failing deep in a handler. Validators here raise
PydanticCustomError: its message is what the 400 says after the field's name.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ModelWrapValidatorHandler,
    PlainValidator,
    PrivateAttr,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

T = TypeVar("T")

Id = Annotated[str, StringConstraints(min_length=1)]
"""A provider's id: a string, not empty."""


class Shape(BaseModel):
    """Strict (no coercion: "7" is no int, 1 no str, true no number), fields casegate does not read are
    ignored, and a validated payload is never changed."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Recorded(Shape):
    """A part of a payload that is also recorded as it came (in the entry's details): its declared
    fields are validated and typed, and `as_sent()` is the object exactly as the provider sent it,
    every field and their order included."""

    model_config = ConfigDict(extra="allow")
    _sent: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_as_sent(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, dict):
            model._sent = data
        return model

    def as_sent(self) -> dict[str, Any]:
        return self._sent


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("not_null", "must not be null")
    return value


NOT_NULL = BeforeValidator(_not_null)
"""For an optional field that, when given, must be a value: `Annotated[Message | None, NOT_NULL] = None`
(absent is None; an explicit null is a 400)."""


def _null_is_empty(value: Any) -> Any:
    return [] if value is None else value


Items = Annotated[list[T], BeforeValidator(_null_is_empty)]
"""A list that may be absent or null (both read as empty); anything but a list is a 400."""


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number", "must be a number")
    return value


Number = Annotated[float, PlainValidator(_number)]
"""A JSON number, kept as sent (an integer stays an int, so `38` is written `38`, not `38.0`); never a bool."""


def _rfc3339(value: Any) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("rfc3339", "must be an RFC 3339 timestamp (a string)")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("rfc3339", "is not an RFC 3339 timestamp") from None
    if at.tzinfo is None:
        raise PydanticCustomError("rfc3339", "has no UTC offset")
    return at


Instant = Annotated[datetime, PlainValidator(_rfc3339)]
"""An RFC 3339 timestamp with its UTC offset (`2026-06-02T14:03:11Z`), read as an aware datetime."""


def as_detail(value: Any) -> str:
    """A payload value as an entry's details record it: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
