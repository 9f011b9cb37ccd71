"""Replies over the WhatsApp Business Cloud API
(https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages).

POST {graph}/{phone-number-id}/messages with the bearer token (and appsecret_proof) and
{"messaging_product": "whatsapp", "to", "type": "text", "text": {"body"}}, or "type": "template" with
the template's name, language and body parameters. Meta answers {"messages": [{"id": "wamid..."}]};
the wamid names the message in the `statuses[]` webhook (delivery_status.meta_statuses). Free text only
within 24 hours of the customer's last message (else Meta refuses it with 131047, and we refuse it
first); at most 4,096 characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
from casegate.ingest.replies._graph import GRAPH_API, GraphClient, graph_failure
from casegate.ingest.replies._http import Answer, HttpSender, Request
from casegate.ingest.replies.delivery_status import DeliveryStatus
from casegate.ingest.replies.errors import ReplyRefused
from casegate.ingest.replies.limits import TextLimit, check_content, check_window
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

TEXT_LIMIT = TextLimit(4096)


class WhatsAppCloudSender(HttpSender):
    routes = (("whatsapp", "meta"),)

    def __init__(self, session: aiohttp.ClientSession, *, access_token: str, phone_number_id: str = "",
                 app_secret: str = "", base_url: str = GRAPH_API, timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        self.graph = GraphClient(access_token, app_secret, base_url)
        self.phone_number_id = phone_number_id

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.graph.access_token,)

    def check(self, reply: Reply, now: datetime) -> None:
        check_content(reply, TEXT_LIMIT, "WhatsApp", templates=True)
        check_window(reply, now, "WhatsApp")
        if not (reply.from_id or self.phone_number_id):
            raise ReplyRefused("no_sender", "no WhatsApp phone number id is configured for replies")

    def request(self, reply: Reply, now: datetime) -> Request:
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "to": reply.to}
        if reply.template is not None:
            template: dict[str, Any] = {"name": reply.template.name, "language": {"code": reply.template.language}}
            if reply.template.parameters:
                template["components"] = [{"type": "body", "parameters": [
                    {"type": "text", "text": value} for value in reply.template.parameters]}]
            payload |= {"type": "template", "template": template}
        else:
            payload |= {"type": "text", "text": {"body": reply.text}}
        return self.graph.post_json(reply.from_id or self.phone_number_id, "messages", payload)

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        if not answer.ok:
            return graph_failure(answer, now)
        messages = answer.json_object().get("messages")
        first = messages[0] if isinstance(messages, list) and messages and isinstance(messages[0], dict) else {}
        wamid = first.get("id")
        # accepted (or held for quality assessment): Meta's `sent` status follows on the webhook
        return SendResult.sent(wamid if isinstance(wamid, str) and wamid else None, DeliveryStatus.QUEUED,
                               answer.status)
