"""The API's errors, in Salesforce's shape: a JSON array of `{"message", "errorCode", "fields"}` with the
HTTP status Salesforce gives for the same mistake. Handlers raise `ApiError`; the API's middleware
(ingest/api/mount.py) writes it. Within sObject collections an error is `{"statusCode", "message",
"fields"}` instead (`collection_error`).

Status codes and errorCodes: https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

NOT_FOUND_MESSAGE = "The requested resource does not exist"


class ApiError(Exception):
    """A request refused: `status`, Salesforce's `code`, a `message`, and the fields concerned."""

    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = (), *,
                 content: Any = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.content = content
        """A body other than the error list (an upsert's 300 lists the URLs of the records it matched)."""

    def body(self) -> Any:
        if self.content is not None:
            return self.content
        return [{"message": self.message, "errorCode": self.code, "fields": self.fields}]

    def collection_error(self) -> dict[str, Any]:
        """The error as an entry of an sObject collection's `errors`."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": "Token"} if self.status == 401 else None
        return web.json_response(self.body(), status=self.status, headers=headers)


def not_found(message: str = NOT_FOUND_MESSAGE) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def invalid_session() -> ApiError:
    return ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")


def bad_body(message: str, fields: Sequence[str] = ()) -> ApiError:
    """The body is JSON but not what the resource takes."""
    return ApiError(400, "JSON_PARSER_ERROR", message, fields)


def method_not_allowed(method: str, allowed: Sequence[str]) -> ApiError:
    return ApiError(405, "METHOD_NOT_ALLOWED",
                    f"HTTP Method '{method[:20]}' not allowed. Allowed are {','.join(sorted(allowed))}")


def unavailable() -> ApiError:
    """The case store cannot be reached: the client should try again."""
    return ApiError(503, "SERVER_UNAVAILABLE", "The case store is unavailable; please retry")
