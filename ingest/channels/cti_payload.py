"""The `cti.call.v1` event (reference/channels.md §8.4) as pydantic models: what ingest.channels.cti_events
reads of a call event.

Strict (ingest.channels.payload): ids and numbers as strings, durations non-negative numbers, times
RFC 3339 with their offset, the schema and event type among the known ones. What depends on the event
type or on several fields (the customer's number by direction, times an ended call needs, a
recording's URL) is checked by the channel, naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from casegate.ingest.channels.payload import Id, Instant, Number, Shape
from pydantic import BeforeValidator, Field, StringConstraints

EventType = Literal["call.offered", "call.answered", "call.ended", "call.wrapup", "recording.available",
                    "transcript.available"]
MAX_ID = 255

Seconds = Annotated[Number, Field(ge=0)]


def _direction(value: Any) -> Any:
    """Absent, null or empty is inbound; case does not matter."""
    if value is None:
        return "inbound"
    return (value or "inbound").lower() if isinstance(value, str) else value


class Party(Shape):
    """The call's queue or agent."""

    id: str | None = None
    name: str | None = None

    @property
    def label(self) -> str | None:
        return self.name or self.id


class Recording(Shape):
    url: str | None = None


class Call(Shape):
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID)]
    direction: Annotated[Literal["inbound", "outbound"], BeforeValidator(_direction)] = "inbound"
    ani: str | None = None
    dnis: str | None = None
    root_id: str | None = None
    caller_name: str | None = None
    disposition: str | None = None
    wrapup_code: str | None = None
    notes: str | None = None
    queue: Party | None = None
    agent: Party | None = None
    recording: Recording | None = None
    wait_seconds: Seconds | None = None
    talk_seconds: Seconds | None = None
    hold_seconds: Seconds | None = None
    attributes: dict[str, Any] | None = None
    started_at: Instant | None = None
    answered_at: Instant | None = None
    ended_at: Instant | None = None
    transcript: Any = None
    """Text, or the platform's structured transcript (recorded as JSON)."""

    @property
    def customer_field(self) -> Literal["ani", "dnis"]:
        """The customer is the caller (ANI) of an inbound call and the called party (DNIS) of an outbound one."""
        return "ani" if self.direction == "inbound" else "dnis"

    @property
    def customer(self) -> str | None:
        return self.ani if self.direction == "inbound" else self.dnis

    @property
    def ours(self) -> str | None:
        return self.dnis if self.direction == "inbound" else self.ani


class CallEvent(Shape):
    schema_: Literal["cti.call.v1"] = Field(alias="schema")
    event_id: Id
    event_type: EventType
    occurred_at: Instant
    source: dict[str, Any] | None = None
    call: Call
