"""What the Meta senders (WhatsApp Cloud, Messenger, Instagram) share: the Graph API's base URL, its
bearer token with `appsecret_proof` (https://developers.facebook.com/docs/graph-api/security), and its
error object {"error": {"message", "type", "code", "error_subcode", "error_data", "is_transient"}}: Meta
answers 400 for rate limits and outages too, so the code decides whether to retry."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from casegate.ingest.replies._http import Answer, Request, failure, retry_after
from casegate.ingest.replies.result import SendResult

GRAPH_API = "https://graph.facebook.com/v23.0"
"""Graph API versions live two years; the version is part of the configured base URL."""
RETRY_CODES = frozenset({
    1, 2,  # API unknown / service temporarily unavailable
    4, 17, 32, 341, 613,  # app, user, page, application call-rate limits
    80006, 80007,  # Messenger platform and WhatsApp Business Account rate limits
    1200,  # Messenger: temporary send message failure
    130429, 131048, 131056,  # WhatsApp throughput, spam and business-customer pair rate limits
    131000, 131016, 133004,  # WhatsApp: something went wrong, service unavailable, server temporarily unavailable
})


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """hex(HMAC-SHA256(key = app secret, message = access token)): proves the call comes from the app's
    own server (required when the app enables "Require App Secret")."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class GraphClient:
    """The Graph API as one app's token sees it."""

    def __init__(self, access_token: str, app_secret: str = "", base_url: str = GRAPH_API):
        if not access_token:
            raise ValueError("Graph API replies need an access token")
        self.access_token = access_token
        self.app_secret = app_secret
        self.base_url = base_url.rstrip("/")

    def post_json(self, node: str, edge: str, payload: dict[str, Any]) -> Request:
        """POST {base}/{node}/{edge} with the JSON payload, the bearer token and, when the app secret is
        configured, ?appsecret_proof=..."""
        url = f"{self.base_url}/{quote(node, safe='')}/{edge}"
        if self.app_secret:
            url += "?appsecret_proof=" + appsecret_proof(self.access_token, self.app_secret)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return Request(url, body, {"Authorization": f"Bearer {self.access_token}",
                                   "Content-Type": "application/json", "Accept": "application/json"})


def graph_failure(answer: Answer, now: datetime) -> SendResult:
    """A Graph error answer as a result: retry later for the transient codes (or `is_transient`, 429,
    5xx), failed with `code` (or `code/subcode`) and Meta's message otherwise."""
    error = answer.json_object().get("error")
    if not isinstance(error, dict):
        return failure(answer, None, f"HTTP {answer.status} from the Graph API",
                       retry_after=retry_after(answer.headers.get("Retry-After"), now))
    code, subcode = error.get("code"), error.get("error_subcode")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    texts = [str(t) for t in (error.get("message"), error.get("error_user_msg"), details) if t]
    message = " — ".join(dict.fromkeys(texts)) or f"HTTP {answer.status} from the Graph API"
    label = None if code is None else f"{code}/{subcode}" if subcode else str(code)
    transient = error.get("is_transient") is True or code in RETRY_CODES
    return failure(answer, label, message, retry_after=retry_after(answer.headers.get("Retry-After"), now),
                   transient=transient)
