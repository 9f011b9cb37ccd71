"""The one error of the record layer: a refusal carrying the HTTP status and the errorCode Salesforce gives
for the same request, so the REST edge answers `[{"message", "errorCode", "fields"}]` without translating.

Nothing is written when one is raised: every call is one transaction, rolled back by the raise."""

from __future__ import annotations

from collections.abc import Sequence

from casegate.store.errors import StoreError


class RecordError(StoreError):
    """A create, read, update, delete, upsert or merge refused.

    `status`: 400 (bad request), 403 (not this user's to change), 404 (no such record or object), 300 (an
    upsert's external id matches several records: `ids` lists them). `code`: Salesforce's errorCode
    (MALFORMED_ID, NOT_FOUND, INVALID_FIELD, REQUIRED_FIELD_MISSING, STRING_TOO_LONG, ...). `message` in
    Salesforce's wording, naming the field and value; `fields`: the API names of the fields at fault."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = (),
                 ids: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.ids = list(ids)

    def as_salesforce(self) -> list[dict[str, object]]:
        """The body Salesforce answers with: a list of one error."""
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]

    def __repr__(self) -> str:
        return f"RecordError({self.status}, {self.code!r}, {self.message!r}, {self.fields!r})"


def not_found() -> RecordError:
    return RecordError(404, "NOT_FOUND", "The requested resource does not exist")


def invalid_field(message: str, fields: Sequence[str] = ()) -> RecordError:
    return RecordError(400, "INVALID_FIELD", message, fields)


def no_such_column(name: str, obj: str) -> RecordError:
    return invalid_field(f"No such column '{name}' on sobject of type {obj}", [name])


def required_missing(fields: Sequence[str], why: str = "") -> RecordError:
    return RecordError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(fields)}]{why}",
                       fields)


def integrity(message: str, fields: Sequence[str]) -> RecordError:
    return RecordError(400, "FIELD_INTEGRITY_EXCEPTION", message, fields)


def delete_failed(message: str) -> RecordError:
    return RecordError(400, "DELETE_FAILED", message)


def not_for_type(message: str) -> RecordError:
    return RecordError(400, "INVALID_TYPE_FOR_OPERATION", message)
