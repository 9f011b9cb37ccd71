"""Replies over Twilio Programmable Messaging (https://www.twilio.com/docs/messaging/api/message-resource):
SMS, and WhatsApp via Twilio.

POST {base}/Accounts/{AccountSid}/Messages.json, form-encoded To, From (or MessagingServiceSid) and Body
— or ContentSid and ContentVariables for a template — with HTTP Basic auth AccountSid:AuthToken (or an
API key's SID:secret). WhatsApp numbers are written `whatsapp:+E164`. Twilio answers 201 with the
Message resource (`sid`, `status` queued or accepted); an error is {"code", "message", "more_info",
"status"}: 21610 (recipient unsubscribed), 21211 (invalid To), 63016 (outside the WhatsApp window) are
permanent, 20429 and any 5xx are "retry later". A body is at most 1,600 characters; WhatsApp free text
only within 24 hours of the customer's last message. With `status_callback`, Twilio posts the delivery
statuses there (delivery_status.twilio_status reads them).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from urllib.parse import quote, urlencode

import aiohttp
from casegate.ingest.replies._http import Answer, HttpSender, Request, failure, retry_after
from casegate.ingest.replies.delivery_status import TWILIO_STATUSES, DeliveryStatus
from casegate.ingest.replies.errors import ReplyRefused
from casegate.ingest.replies.limits import TextLimit, check_content, check_window
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

API_BASE = "https://api.twilio.com/2010-04-01"
TEXT_LIMIT = TextLimit(1600)
RETRY_CODES = frozenset({"20429", "20500", "20503"})
"""Too many requests, internal error, service unavailable (also when the HTTP status says otherwise)."""


def whatsapp_address(number: str) -> str:
    return number if number.lower().startswith("whatsapp:") else f"whatsapp:{number}"


class TwilioSender(HttpSender):
    routes = (("sms", "twilio"), ("whatsapp", "twilio"))

    def __init__(self, session: aiohttp.ClientSession, *, account_sid: str, auth_token: str = "",
                 api_key_sid: str = "", api_key_secret: str = "", sms_from: str = "", whatsapp_from: str = "",
                 messaging_service_sid: str = "", status_callback: str = "", base_url: str = API_BASE,
                 timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        if not account_sid:
            raise ValueError("Twilio replies need the account_sid")
        if not auth_token and not (api_key_sid and api_key_secret):
            raise ValueError("Twilio replies need the auth_token, or an api_key_sid with its api_key_secret")
        self.account_sid = account_sid
        user, password = (api_key_sid, api_key_secret) if api_key_sid and api_key_secret else (account_sid, auth_token)
        self._password = password
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.sms_from = sms_from
        self.whatsapp_from = whatsapp_from
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self.url = f"{base_url.rstrip('/')}/Accounts/{quote(account_sid, safe='')}/Messages.json"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password,)

    def check(self, reply: Reply, now: datetime) -> None:
        check_content(reply, TEXT_LIMIT, "Twilio", templates=True)
        if reply.channel == "whatsapp":
            check_window(reply, now, "WhatsApp")
        if self._sender(reply) is None:
            raise ReplyRefused("no_sender", f"no Twilio number or Messaging Service is configured for "
                                            f"{reply.channel} replies")

    def _sender(self, reply: Reply) -> tuple[str, str] | None:
        """("From", number) or ("MessagingServiceSid", sid): the number the customer wrote to, else the
        channel's configured number, else the Messaging Service (Twilio picks a number of its pool)."""
        whatsapp = reply.channel == "whatsapp"
        number = reply.from_id or (self.whatsapp_from if whatsapp else self.sms_from)
        if number:
            return "From", whatsapp_address(number) if whatsapp else number
        if self.messaging_service_sid:
            return "MessagingServiceSid", self.messaging_service_sid
        return None

    def request(self, reply: Reply, now: datetime) -> Request:
        to = whatsapp_address(reply.to) if reply.channel == "whatsapp" else reply.to
        fields = [("To", to), self._sender(reply) or ("From", "")]  # check() refused a reply without one
        if reply.template is not None:
            fields.append(("ContentSid", reply.template.name))
            if reply.template.parameters:
                variables = {str(i): value for i, value in enumerate(reply.template.parameters, 1)}
                fields.append(("ContentVariables", json.dumps(variables, ensure_ascii=False)))
        else:
            fields.append(("Body", reply.text or ""))
        if self.status_callback:
            fields.append(("StatusCallback", self.status_callback))
        return Request(self.url, urlencode(fields).encode(), {
            "Authorization": self._authorization, "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded"})

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        body = answer.json_object()
        if answer.ok:
            sid = body.get("sid")
            status = TWILIO_STATUSES.get(str(body.get("status", "")).lower(), DeliveryStatus.QUEUED)
            if status is DeliveryStatus.FAILED:  # Twilio took it and failed it at once
                code = str(body.get("error_code") or "") or None
                return SendResult.failed(code, str(body.get("error_message") or "Twilio failed the message"),
                                         http_status=answer.status)
            return SendResult.sent(sid if isinstance(sid, str) and sid else None, status, answer.status)
        code = str(body["code"]) if body.get("code") is not None else None
        message = str(body.get("message") or f"HTTP {answer.status} from Twilio")
        return failure(answer, code, message, retry_after=retry_after(answer.headers.get("Retry-After"), now),
                       transient=code in RETRY_CODES)
