"""What settings may put into a case's fields, as plain data and checks, so that a value the store or the
rules could not use stops the daemon at start, naming the key, instead of failing every message later.

It owns the default case Status values (`[case] statuses`, in `config.case_settings`, starts from them;
`rules.lifecycle` builds the status model on them), the length of a picklist value (Priority, Origin, Type: 40, as
Salesforce's, and as the store's columns), the owners settings name (`queue:<name>` up to 80 characters,
`user:<email address>` up to 128, as the Queue and User tables hold them) and the phone regions numbers
without a country code may be read in.
"""

from __future__ import annotations

import re
from typing import Annotated

import phonenumbers
from casegate.config.sections import OwnerRef
from pydantic import AfterValidator

OPEN_STATUSES = ("New", "Working", "On Hold", "Escalated")
CLOSED_STATUSES = ("Closed",)
DEFAULT_STATUS = "New"
"""The default Status values; `[case] statuses` may name others."""
PICKLIST_MAX = 40
"""Characters of a picklist value (Case Priority, Origin, Type, Reason)."""
QUEUE_NAME_MAX = 80
USER_EMAIL_MAX = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _picklist(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be empty")
    if len(v) > PICKLIST_MAX:
        raise ValueError(f"is {len(v)} characters; a picklist value has at most {PICKLIST_MAX}")
    if _CONTROL.search(v):
        raise ValueError("must not contain control characters")
    return v


def _optional_picklist(v: str) -> str:
    return _picklist(v) if v else v


Picklist = Annotated[str, AfterValidator(_picklist)]
"""A picklist value (Priority, Origin): 1 to 40 characters, no control characters."""
OptionalPicklist = Annotated[str, AfterValidator(_optional_picklist)]
"""A picklist value, or "" for none (or the default)."""


OpenStatus = Annotated[str, AfterValidator(_picklist)]
"""A case Status that must be open (what a reopened case becomes): a picklist value here; that it is one of
the open `[case] statuses` is checked by `Settings` (`config.case_settings.check_statuses`), which knows them."""


def _owner(v: str) -> str:
    kind, name = v.split(":", 1)
    if kind == "queue" and len(name) > QUEUE_NAME_MAX:
        raise ValueError(f"queue name is {len(name)} characters; a queue name has at most {QUEUE_NAME_MAX}")
    if kind == "user":
        if not re.fullmatch(r"[^@\s]+@[^@\s]+", name):
            raise ValueError(f"user:{name} does not name a user by email address (user:<email>)")
        if len(name) > USER_EMAIL_MAX:
            raise ValueError(f"user email is {len(name)} characters; at most {USER_EMAIL_MAX}")
    return v


Owner = Annotated[OwnerRef, AfterValidator(_owner)]
"""An owner, `queue:<Queue name>` or `user:<user email>`, that the Queue and User tables can hold."""


def _region(v: str) -> str:
    if v and v not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{v!r} is not a region phone numbers are known for (ISO 3166 alpha-2, e.g. GB, US)")
    return v


PhoneRegion = Annotated[str, AfterValidator(_region)]
"""An ISO 3166 alpha-2 region numbers are read in (checked against the phone number library), or ""."""
