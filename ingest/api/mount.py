"""The API as an aiohttp sub-application under `/services` of the public application: the versions list
(`GET /services/data`, no token needed), every resource of a version (`/services/data/vNN.N/…`, a token
needed, routed by ingest/api/routes.py) and the OAuth token endpoint (ingest/api/oauth.py); beside it,
on the public application, the OpenAPI document and its page (ingest/api/openapi.py).

Its middleware gives every answer Salesforce's shape: `ApiError`s as written; aiohttp's own 404 and 405
as NOT_FOUND and METHOD_NOT_ALLOWED; a case store that cannot be reached as 503 SERVER_UNAVAILABLE;
anything unexpected is logged with its stack and only then answered 500 UNKNOWN_EXCEPTION with an id to
find it in the log. The sub-application opens its own case store connections when the application
starts and closes them when it stops (`ApiContext.store`), so it works alike in every role."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from functools import partial

import structlog
from aiohttp import web
from casegate.config import Settings
from casegate.ingest.api import oauth
from casegate.ingest.api.body import read_json
from casegate.ingest.api.context import BASE, ApiContext, Call, Outcome, split_path
from casegate.ingest.api.errors import ApiError, method_not_allowed, not_found, unavailable
from casegate.ingest.api.openapi import ApiDocument
from casegate.ingest.api.operations import UNREACHABLE
from casegate.ingest.api.routes import dispatch

log = structlog.get_logger("casegate.api")
RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def release(version: str) -> str:
    """The release a version came with: 59.0 Winter '24, 60.0 Spring '24, 61.0 Summer '24 …"""
    k = int(float(version)) - 59
    return f"{('Winter', 'Spring', 'Summer')[k % 3]} '{24 + k // 3:02d}"


@web.middleware
async def salesforce_errors(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return e.response()
    except web.HTTPMethodNotAllowed as e:
        return method_not_allowed(request.method, sorted(e.allowed_methods)).response()
    except web.HTTPNotFound:
        return not_found().response()
    except web.HTTPException as e:
        return ApiError(e.status, e.reason.upper().replace(" ", "_"), e.text or e.reason).response()
    except UNREACHABLE as e:
        log.warning("api.store_unavailable", path=request.path[:200], error=f"{type(e).__name__}: {str(e)[:300]}")
        return unavailable().response()
    except Exception:
        error_id = secrets.token_hex(6)
        log.exception("api.unexpected_error", error_id=error_id, method=request.method, path=request.path[:200])
        return ApiError(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if "
                        f"you contact support: {error_id}").response()


def respond(outcome: Outcome, extra: dict[str, str]) -> web.Response:
    headers = {**outcome.headers, **extra}
    if outcome.body is None:
        return web.Response(status=outcome.status, headers=headers)
    return web.json_response(outcome.body, status=outcome.status, headers=headers)


async def versions(ctx: ApiContext, request: web.Request) -> web.Response:
    return web.json_response([{"label": release(v), "url": f"{BASE}/v{v}", "version": v} for v in ctx.api.versions])


async def serve(ctx: ApiContext, request: web.Request) -> web.Response:
    """A request to a resource of a version: the caller's token, the version, then the resource."""
    actor = await ctx.tokens.require(request.headers.get("Authorization"))
    ctx.usage.count()
    where = split_path(request.rel_url.raw_path)
    if where is None or where[0] not in ctx.api.versions:
        raise not_found()
    version, segments = where
    http = ctx.settings.http

    async def body() -> object:
        return await read_json(request, ctx.api.max_body_size, http.body_timeout)

    call = Call(actor, version, request.method, segments, request.query, request.headers, body)
    return respond(await dispatch(ctx, call), {"Sforce-Limit-Info": ctx.usage.header()})


def mount_api(app: web.Application, settings: Settings) -> None:
    """Add the API under /services to the public application `app`, and its OpenAPI document
    (`/openapi.json`) and page (`/docs`), which need no token: they say what a Salesforce client already
    knows, plus the configured versions and `[case]` picklists."""
    ctx = ApiContext(settings)
    api = web.Application(middlewares=[salesforce_errors])
    api.cleanup_ctx.append(ctx.store)
    for path in ("/data", "/data/"):
        api.router.add_get(path, partial(versions, ctx))
    for path in (r"/data/v{version:\d{1,3}\.\d}", r"/data/v{version:\d{1,3}\.\d}/{tail:.*}"):
        api.router.add_route("*", path, partial(serve, ctx))
    api.router.add_post("/oauth2/token", partial(oauth.token, ctx))
    app.add_subapp("/services", api)
    document = ApiDocument(ctx)
    app.router.add_get("/openapi.json", document.serve_json)
    app.router.add_get("/docs", document.serve_page)
