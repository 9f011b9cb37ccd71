"""Web-to-Case (Salesforce's form, https://help.salesforce.com/s/articleView?id=service.customizesupport_web_to_case_notes.htm):
a browser POSTs a form with Salesforce's field names; every
accepted submission becomes one `web` envelope (entry type Form) that opens a new case.

Per field: `email` must be one address and the picklists (`type`, `reason`, `priority`) at most 40
characters, else 400 naming the field; free text is never refused, only cut (`name`, `company` at 80,
`subject` at 255; the description is kept whole in the blob store, 131,072 characters on the bus);
an invalid `phone` is kept as typed in the entry's details. The body is read by `form_body` (bounded:
text charsets only, at most 1,000 fields, no files, no nested multipart); undecodable bytes become U+FFFD.
Spam defences: a honeypot field (answered as accepted, published nowhere) and a per-IP sliding-window rate
limit (429). `retURL` is followed (303) only to a configured host; anything else gets the thank-you page.
"""

from __future__ import annotations

import html
import ipaddress
import math
import string
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from casegate.config.channels import WebFormChannel
from casegate.ingest.bus.blobs import BlobStoreError
from casegate.ingest.channels.form_body import Fields, parse_form
from casegate.ingest.channels.webhook import (
    ChannelContext,
    Rejected,
    e164,
    json_error,
    message_envelope,
    publish_all,
    webhook,
)
from casegate.ingest.envelope import Envelope, Sender
from casegate.ingest.metrics import WEBHOOK_REJECTED

log = structlog.get_logger("casegate.web_form")

FORM_TEMPLATE = Path(__file__).with_name("web_form.html")
CUT = {"name": 80, "company": 80, "subject": 255, "phone": 40}
PICKLISTS = {"type": "Type", "reason": "Reason", "priority": "Priority"}
PICKLIST_MAX = 40
TEXT_ON_BUS = 131072
"""Characters of the description on the bus: what the case's entry keeps (the raw body is in the blob store)."""
HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                                      "frame-ancestors 'none'", "X-Content-Type-Options": "nosniff"}
THANK_YOU = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Thank you</title></head>\n"
             "<body><main><h1>Thank you</h1><p>We received your request and will get back to you soon.</p>"
             "</main></body></html>\n")


class RateLimiter:
    """At most `limit` hits per key within a sliding `window` of seconds (in this process's memory)."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float | None = None) -> float:
        """0 when the hit is allowed (and counted), else the seconds until it would be."""
        at = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            if len(self._hits) >= self.max_keys:
                self._prune(at)
            hits = self._hits[key] = deque()
        while hits and hits[0] <= at - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - at
        hits.append(at)
        return 0.0

    def _prune(self, at: float) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= at - self.window]:
            del self._hits[key]
        while len(self._hits) >= self.max_keys:  # still full: forget the oldest keys
            del self._hits[next(iter(self._hits))]


def client_key(request: web.Request, trusted_proxies: int) -> str:
    """The client's IP (from X-Forwarded-For behind `trusted_proxies` proxies); IPv6 by its /64."""
    ip = request.remote or "?"
    if trusted_proxies:
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        if len(hops) >= trusted_proxies:
            ip = hops[-trusted_proxies]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr.ipv4_mapped or addr) if isinstance(addr, ipaddress.IPv6Address) else str(addr)


def redirect_target(url: str, allowed_hosts: Sequence[str]) -> str | None:
    """`url` when the browser may be sent there: a path on this host, or http(s) to an allowed host;
    None for anything else (foreign hosts, `javascript:`, `//host`, backslashes, userinfo, spaces)."""
    if not url or len(url) > 2048 or not url.isascii() or any(c == "\\" or c <= " " or c == "\x7f" for c in url):
        return None
    if url.startswith("/"):
        return None if url.startswith("//") else url
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    for entry in allowed_hosts:
        allowed = urlsplit("//" + entry.lower())
        try:
            if allowed.hostname == host and allowed.port in (None, port):
                return url
        except ValueError:
            continue
    return None


def _one(fields: Fields, name: str) -> str:
    """The first value of `name`, without NULs and surrounding white space ("" when absent)."""
    values = fields.get(name)
    return values[0].replace("\x00", "").strip() if values else ""


def _line(value: str, limit: int, field: str, cut: list[str]) -> str:
    one = " ".join(value.split())
    if len(one) > limit:
        cut.append(field)
    return one[:limit]


def _email(value: str) -> str | None:
    if not value:
        return None
    local, at, domain = value.rpartition("@")
    bad = set(' \t\r\n<>()[]\\,;:"')
    if (not at or not local or "." not in domain.strip(".") or len(value) > 254 or bad & set(value)
            or "@" in local or domain.startswith(".") or domain.endswith(".") or ".." in domain):
        raise Rejected(400, "email is not an email address", "email")
    return value


def submission(fields: Fields, ch: WebFormChannel, external_id: str) -> Envelope:
    """The envelope of one submission; Rejected (400 naming the field) for input that cannot be one."""
    cut: list[str] = []
    details: dict[str, str] = {}
    email = _email(_one(fields, "email"))
    name = _line(_one(fields, "name"), CUT["name"], "name", cut) or None
    raw_phone = _line(_one(fields, "phone"), CUT["phone"], "phone", cut)
    phone = e164(raw_phone, ch.default_region or None)
    if raw_phone and phone is None:
        details["phone_raw"] = raw_phone
    if not (email or phone or name):
        raise Rejected(400, "give an email address, a phone number or a name",
                       "phone" if raw_phone else "email")
    case_fields: dict[str, str] = {}
    for field, case_field in PICKLISTS.items():
        value = " ".join(_one(fields, field).split())
        if len(value) > PICKLIST_MAX:
            raise Rejected(400, f"{field} is not a picklist value", field)
        if value:
            case_fields[case_field] = value
    company = _line(_one(fields, "company"), CUT["company"], "company", cut)
    if company:
        case_fields["SuppliedCompany"] = company
    for field, case_field in ch.custom_fields.items():
        values = [v.replace("\x00", "").strip() for v in fields.get(field, [])]
        if any(values):
            case_fields[case_field] = ";".join(v for v in values if v)
    subject = _line(_one(fields, "subject"), CUT["subject"], "subject", cut) or None
    text = (fields.get("description") or [""])[0].replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if not subject and not text.strip():
        raise Rejected(400, "give a subject or a description", "description")
    if len(text) > TEXT_ON_BUS:
        details["description_length"] = str(len(text))
        cut.append("description")
    if cut:
        details["cut"] = ",".join(cut)
    return message_envelope("web", "web_form", external_id, sender=Sender(name=name, email=email, phone=phone),
                            text=text[:TEXT_ON_BUS] or None, subject=subject, entry_type="Form",
                            details=details, case_fields=case_fields)


def _idempotency_key(request: web.Request) -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    key = value.strip().strip('"')
    if not key or len(key) > 255 or not all(33 <= ord(c) <= 126 for c in key):
        raise Rejected(400, "Idempotency-Key must be 1-255 visible ASCII characters", "Idempotency-Key")
    return key


def wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(r.split(";")[0].strip().lower() == "application/json" for r in accept.split(","))


def answer(request: web.Request, ch: WebFormChannel, fields: Fields, external_id: str) -> web.Response:
    """What the browser (303 to an allowed retURL, else a thank-you page) or a JSON client is told."""
    if wants_json(request):
        return web.json_response({"status": "accepted", "id": external_id})
    ret_url = _one(fields, "retURL")
    target = redirect_target(ret_url, ch.allowed_redirect_hosts) if ret_url else None
    if target is not None:
        return web.Response(status=303, headers={"Location": target, **HEADERS})
    if ret_url:
        log.warning("web_form.redirect_refused", channel="web", external_id=external_id, ret_url=ret_url[:100])
    return web.Response(text=THANK_YOU, content_type="text/html", charset="utf-8", headers=HEADERS)


def example_form(ch: WebFormChannel) -> str:
    hidden = {"orgid": ch.orgid, "retURL": ch.thank_you_url}
    fields = "\n".join(f'  <input type="hidden" name="{name}" value="{html.escape(value)}">'
                       for name, value in hidden.items() if value)
    template = string.Template(FORM_TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(action=html.escape(ch.path), hidden_fields=fields,
                               honeypot=html.escape(ch.honeypot_field))


def mount(app: web.Application, ctx: ChannelContext) -> None:
    ch = ctx.settings.channels.web_form
    if ch.thank_you_url and redirect_target(ch.thank_you_url, ch.allowed_redirect_hosts) is None:
        raise ValueError(f"channels.web_form.thank_you_url {ch.thank_you_url!r}: not a path on this host nor "
                         "an http(s) URL on one of allowed_redirect_hosts")
    limiter = RateLimiter(ch.rate_limit_per_minute)

    async def handle(request: web.Request, body: bytes) -> web.StreamResponse:
        fields = parse_form(body, request.headers.get("Content-Type", ""), request.query.get("encoding"))
        if ch.orgid:
            given = _one(fields, "orgid") or request.query.get("orgId") or request.query.get("orgid", "")
            if given != ch.orgid:
                raise Rejected(400, "orgid does not match", "orgid")
        key = _idempotency_key(request)
        external_id = key or str(uuid.uuid4())
        if _one(fields, ch.honeypot_field):
            log.info("web_form.spam", channel="web", reason="honeypot field filled", peer=request.remote)
            return answer(request, ch, fields, external_id)
        envelope = submission(fields, ch, external_id)
        try:
            raw_sha, _ = await ctx.publisher.claim(body)
        except BlobStoreError as e:
            log.warning("webhook.tempfail", channel="web_form", reason=str(e), messages=1)
            WEBHOOK_REJECTED.labels("web_form", "503").inc()
            return json_error(503, "could not store the message durably; please retry")
        envelope = envelope.model_copy(update={"raw_sha256": raw_sha})
        return await publish_all(ctx, "web_form", [envelope], ok=answer(request, ch, fields, external_id))

    submit = webhook("web_form", ctx, handle)

    async def post(request: web.Request) -> web.StreamResponse:
        wait = limiter.hit(client_key(request, ch.trusted_proxies))
        if wait:
            log.warning("webhook.rejected", channel="web_form", status=429, reason="rate limit", peer=request.remote)
            WEBHOOK_REJECTED.labels("web_form", "429").inc()
            response = json_error(429, f"more than {ch.rate_limit_per_minute} submissions a minute; retry later")
            response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return response
        return await submit(request)

    page = example_form(ch) if ch.form_path else ""

    async def form(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers=HEADERS)

    app.router.add_post(ch.path, post)
    if ch.form_path:
        app.router.add_get(ch.form_path, form)


__all__ = ["RateLimiter", "client_key", "mount", "parse_form", "redirect_target", "submission"]
