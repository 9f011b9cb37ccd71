"""What Twilio's messaging and voice webhooks share: their form parameters and the TwiML they answer."""

from __future__ import annotations

from aiohttp import web

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
Params = dict[str, list[str]]


def first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def twiml(body: str = "") -> web.Response:
    """A TwiML answer; the empty <Response/> when `body` is empty (nothing for Twilio to do)."""
    return web.Response(text=body or EMPTY_TWIML, content_type="text/xml")
