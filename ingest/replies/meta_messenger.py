"""Replies over the Messenger Platform's Send API, for Messenger and Instagram
(https://developers.facebook.com/docs/messenger-platform/reference/send-api,
https://developers.facebook.com/docs/instagram-platform/instagram-api-with-facebook-login/messaging-api).

POST {graph}/{page-id or me}/messages with the Page access token (and appsecret_proof) and
{"recipient": {"id": PSID or IGSID}, "messaging_type": "RESPONSE", "message": {"text"}}. Meta answers
{"recipient_id", "message_id"}. A standard reply is allowed within 24 hours of the customer's last
message; with `human_agent` (the app has the Human Agent permission) a reply up to 7 days after it goes
as messaging_type MESSAGE_TAG with tag HUMAN_AGENT. Messenger takes 2,000 characters; Instagram 1,000
bytes of UTF-8. Neither has templates for free-form customer care replies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import aiohttp
from casegate.ingest.replies._graph import GRAPH_API, GraphClient, graph_failure
from casegate.ingest.replies._http import Answer, HttpSender, Request
from casegate.ingest.replies.limits import (
    HUMAN_AGENT_WINDOW,
    WHATSAPP_WINDOW,
    TextLimit,
    check_content,
    check_window,
    window_open,
)
from casegate.ingest.replies.reply import Reply
from casegate.ingest.replies.result import SendResult

TEXT_LIMITS = {"messenger": TextLimit(2000), "instagram": TextLimit(1000, "bytes")}
STANDARD_WINDOW = WHATSAPP_WINDOW
"""24 hours, as WhatsApp's."""
NAMES = {"messenger": "Messenger", "instagram": "Instagram"}


class MessengerSender(HttpSender):
    def __init__(self, session: aiohttp.ClientSession, *, channel: Literal["messenger", "instagram"],
                 access_token: str, page_id: str = "me", app_secret: str = "", human_agent: bool = False,
                 base_url: str = GRAPH_API, timeout: float = 10.0):
        super().__init__(session, timeout=timeout)
        if channel not in TEXT_LIMITS:
            raise ValueError(f"not a Messenger Platform channel: {channel!r}")
        self.routes = ((channel, "meta"),)
        self.channel = channel
        self.graph = GraphClient(access_token, app_secret, base_url)
        self.page_id = page_id or "me"
        self.human_agent = human_agent

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.graph.access_token,)

    def check(self, reply: Reply, now: datetime) -> None:
        name = NAMES[self.channel]
        check_content(reply, TEXT_LIMITS[self.channel], name)
        if self.human_agent:
            check_window(reply, now, f"{name} (human agent tag)", HUMAN_AGENT_WINDOW,
                         remedy="reach the customer on another channel")
        else:
            check_window(reply, now, name, STANDARD_WINDOW, remedy="reach the customer on another channel, or "
                                                                   "enable the human agent tag (7 days)")

    def request(self, reply: Reply, now: datetime) -> Request:
        payload: dict[str, Any] = {"recipient": {"id": reply.to}}
        if window_open(reply.last_inbound_at, now, STANDARD_WINDOW):
            payload["messaging_type"] = "RESPONSE"
        else:  # check() let it through only with the human agent tag, within its 7 days
            payload |= {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
        payload["message"] = {"text": reply.text}
        # the token's own node: a Page token's "me" is the Page (also for its linked Instagram account);
        # the inbound recipient id (an IGID) is not a node this token may post to
        return self.graph.post_json(self.page_id, "messages", payload)

    def interpret(self, answer: Answer, now: datetime) -> SendResult:
        if not answer.ok:
            return graph_failure(answer, now)
        mid = answer.json_object().get("message_id")
        return SendResult.sent(mid if isinstance(mid, str) and mid else None, http_status=answer.status)
