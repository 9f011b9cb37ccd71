"""`POST /services/oauth2/token`: OAuth 2.0 tokens for API clients that log in rather than hold a token.

    grant_type=client_credentials&client_id=<the user's email>&client_secret=<one of their API tokens>
        (or the pair as HTTP Basic credentials, RFC 6749 §2.3.1)
        -> 200 {"access_token", "refresh_token", "instance_url", "id", "token_type": "Bearer",
                "issued_at", "signature"}
    grant_type=refresh_token&refresh_token=<a refresh token>[&client_id=…&client_secret=…]
        -> 200 the same without a new refresh token (as Salesforce: the refresh token stays valid)

Access tokens live `[api] access_token_seconds` (2 h), refresh tokens `[api] refresh_token_days`
(90 days); both are store tokens of kind access/refresh (casegate.store.access), revoked like any other.
`issued_at` is milliseconds since the epoch; `signature` is base64(HMAC-SHA256(key, id + issued_at))
with the client secret as key (the refresh token when none is given), as Salesforce signs it.

Errors are OAuth's: `{"error", "error_description"}` — 400 `unsupported_grant_type`, `invalid_request`
(a parameter missing or repeated, a body that is not a form), `invalid_grant` (a refresh token unknown,
revoked or expired), 401 `invalid_client` (an email and secret that do not belong together)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import parse_qsl

from aiohttp import web
from casegate.ingest.api.body import read_bounded
from casegate.ingest.api.context import ApiContext
from casegate.ingest.api.errors import ApiError
from casegate.rules.access import Actor
from casegate.store.access import AccessError, authenticate, get_user, issue_token, list_users
from casegate.store.database import Database
from casegate.store.ids import suffix

MAX_FORM = 16384
ORG_ID = "00D000000000001" + suffix("00D000000000001")
"""The one organisation a casegate is (Salesforce names the org in the identity URL)."""
FORM = "application/x-www-form-urlencoded"


class OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> web.Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="casegate"'
        return web.json_response({"error": self.error, "error_description": self.description},
                                 status=self.status, headers=headers)


def invalid_client() -> OAuthError:
    return OAuthError(401, "invalid_client", "invalid client credentials")


async def form_of(request: web.Request, ctx: ApiContext) -> dict[str, str]:
    """The form parameters, each at most once; Basic credentials as client_id and client_secret."""
    if request.content_type != FORM:
        raise OAuthError(400, "invalid_request", f"the body must be {FORM}")
    try:
        raw = await read_bounded(request, MAX_FORM, ctx.settings.http.body_timeout)
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ApiError as e:
        raise OAuthError(400, "invalid_request", e.message) from None
    except (UnicodeDecodeError, ValueError):
        raise OAuthError(400, "invalid_request", "the body is not a form of at most 20 UTF-8 fields") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError(400, "invalid_request", f"{name[:40]} is given more than once")
        form[name] = value
    basic = request.headers.get("Authorization", "")
    if basic[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(basic[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client() from None
        form.setdefault("client_id", client_id)
        form.setdefault("client_secret", secret)
    return form


async def token(ctx: ApiContext, request: web.Request) -> web.Response:
    try:
        form = await form_of(request, ctx)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return await _client_credentials(ctx, request, form)
        if grant == "refresh_token":
            return await _refresh(ctx, request, form)
        raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
    except OAuthError as e:
        return e.response()


async def _client(db: Database, form: dict[str, str]) -> tuple[Actor, str, str]:
    """The user whose email is client_id and one of whose API tokens is client_secret."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError(400, "invalid_request", "client_id and client_secret are required")
    actor = await authenticate(db, secret, kinds=("api",))
    try:
        user = await get_user(db, client_id) if actor is not None else None
    except AccessError:
        user = None
    if actor is None or user is None or user.id != actor.user_id:
        raise invalid_client()
    return actor, user.email, secret


async def _client_credentials(ctx: ApiContext, request: web.Request, form: dict[str, str]) -> web.Response:
    db = ctx.db
    actor, email, secret = await _client(db, form)
    access = await issue_token(db, email, "access", ttl=timedelta(seconds=ctx.api.access_token_seconds))
    refresh = await issue_token(db, email, "refresh", ttl=timedelta(days=ctx.api.refresh_token_days))
    return _granted(ctx, request, actor, access, secret, refresh)


async def _refresh(ctx: ApiContext, request: web.Request, form: dict[str, str]) -> web.Response:
    db = ctx.db
    given = form.get("refresh_token", "")
    if not given:
        raise OAuthError(400, "invalid_request", "refresh_token is required")
    actor = await authenticate(db, given, kinds=("refresh",))
    if actor is None:
        raise OAuthError(400, "invalid_grant", "expired access/refresh token")
    key = given
    if form.get("client_id") or form.get("client_secret"):
        client, _, key = await _client(db, form)
        if client.user_id != actor.user_id:
            raise invalid_client()
    email = next((u.email for u in await list_users(db) if u.id == actor.user_id), None)
    if email is None:  # the user went between the two reads
        raise OAuthError(400, "invalid_grant", "expired access/refresh token")
    try:
        access = await issue_token(db, email, "access", ttl=timedelta(seconds=ctx.api.access_token_seconds))
    except AccessError:  # made inactive meanwhile
        raise OAuthError(400, "invalid_grant", "inactive user") from None
    return _granted(ctx, request, actor, access, key, None)


def _granted(ctx: ApiContext, request: web.Request, actor: Actor, access: str, key: str,
             refresh: str | None) -> web.Response:
    instance = ctx.settings.http.public_base_url.rstrip("/") or f"{request.scheme}://{request.host}"
    identity = f"{instance}/id/{ORG_ID}/{actor.user_id}"
    issued_at = str(int(time.time() * 1000))
    signature = base64.b64encode(hmac.new(key.encode(), (identity + issued_at).encode(), hashlib.sha256).digest())
    body = {"access_token": access, "instance_url": instance, "id": identity, "token_type": "Bearer",
            "issued_at": issued_at, "signature": signature.decode()}
    if refresh is not None:
        body["refresh_token"] = refresh
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
