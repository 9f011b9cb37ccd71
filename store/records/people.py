"""Contacts, accounts and assets: plain records with what each derives (a contact's match keys) or needs
(an asset belongs to an account, a contact, or both). Deleting one that cases, contacts or assets still
name is refused, as Salesforce refuses deleting a contact with cases."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from casegate.store.contact_resolver import email_key
from casegate.store.records.call import Call
from casegate.store.records.errors import required_missing
from casegate.store.records.handler import Blocker, PlainHandler
from casegate.store.records.objects import OBJECTS
from sqlalchemy import RowMapping

CASES = "case"


def phone_key(number: str | None) -> str | None:
    """The E.164 form contacts are matched by, for a number written with its country code; else None."""
    if not number:
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):  # as the channels normalise numbers (webhook.e164)
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@dataclass
class ContactHandler(PlainHandler):
    def prepare(self, call: Call, values: dict[str, object], row: RowMapping | None) -> dict[str, object]:
        """EmailKey and PhoneKey follow Email and Phone (MobilePhone when there is no Phone)."""
        out = dict(values)
        if "Email" in values:
            out["EmailKey"] = email_key(_text(values["Email"]))
        if "Phone" in values or "MobilePhone" in values:
            merged = {**(dict(row) if row is not None else {}), **values}
            out["PhoneKey"] = phone_key(_text(merged.get("Phone"))) or phone_key(_text(merged.get("MobilePhone")))
        return out


@dataclass
class AssetHandler(PlainHandler):
    def check(self, call: Call, values: dict[str, object], row: RowMapping | None) -> None:
        merged = {**(dict(row) if row is not None else {}), **values}
        if merged.get("AccountId") is None and merged.get("ContactId") is None:
            raise required_missing(["AccountId", "ContactId"], ": every asset needs an account, a contact, or both")
        super().check(call, values, row)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


CONTACT = ContactHandler(OBJECTS["Contact"], blockers=(Blocker(CASES, "ContactId", "case(s)"),
                                                       Blocker("asset", "ContactId", "asset(s)")),
                         cascade=(("contact_handle", "ContactId"),))
ACCOUNT = PlainHandler(OBJECTS["Account"], blockers=(Blocker(CASES, "AccountId", "case(s)"),
                                                     Blocker("contact", "AccountId", "contact(s)"),
                                                     Blocker("asset", "AccountId", "asset(s)")))
ASSET = AssetHandler(OBJECTS["Asset"], blockers=(Blocker(CASES, "AssetId", "case(s)"),))
