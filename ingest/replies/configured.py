"""The reply senders the settings configure, one per provider section that has its credentials
(`[channels.twilio]`, `.meta`, `.telegram`, `.x`, `.chat`, enabled), built once at start over the caller's
aiohttp session; and the up-front check they give the store (`reply_check`): what a reply's provider
would refuse — too long, outside its messaging window, no sender for the route — is refused before the
reply is queued, as a ReplyRefusedError the REST API answers 400 with."""

from __future__ import annotations

from datetime import datetime

import aiohttp
from casegate.config import Settings
from casegate.config.sections import read_secret
from casegate.ingest.replies.chat import ChatSender
from casegate.ingest.replies.errors import ReplyRefused, UnknownRoute
from casegate.ingest.replies.meta_messenger import MessengerSender
from casegate.ingest.replies.meta_whatsapp import WhatsAppCloudSender
from casegate.ingest.replies.oauth1 import OAuth1Credentials
from casegate.ingest.replies.reply import Reply, Template
from casegate.ingest.replies.sender import ReplySender, SenderTable
from casegate.ingest.replies.telegram import TelegramSender
from casegate.ingest.replies.twilio import TwilioSender
from casegate.ingest.replies.x_dm import OAuth1UserContext, UserBearerToken, XAuth, XDirectMessageSender
from casegate.store.agent_replies import OutgoingReply, ReplyCheck, ReplyRefusedError


def build_senders(settings: Settings, session: aiohttp.ClientSession) -> list[ReplySender]:
    """A sender for each enabled section with what it needs to send; secrets are read now (OSError when a
    file cannot be read, ValueError for an unusable value: the daemon does not start)."""
    ch = settings.channels
    senders: list[ReplySender] = []
    t = ch.twilio
    token = read_secret(t.auth_token, t.auth_token_file) if t.enabled else ""
    key_secret = read_secret(t.api_key_secret, t.api_key_secret_file) if t.enabled else ""
    if t.account_sid and (token or (t.api_key_sid and key_secret)):
        senders.append(TwilioSender(
            session, account_sid=t.account_sid, auth_token=token, api_key_sid=t.api_key_sid,
            api_key_secret=key_secret, sms_from=t.sms_from, whatsapp_from=t.whatsapp_from,
            messaging_service_sid=t.messaging_service_sid, status_callback=status_callback_url(settings),
            base_url=t.api_base_url, timeout=t.reply_timeout_seconds))
    m = ch.meta
    if m.enabled:
        app_secret = read_secret(m.app_secret, m.app_secret_file)
        whatsapp = read_secret(m.whatsapp_access_token, m.whatsapp_access_token_file)
        page = read_secret(m.page_access_token, m.page_access_token_file)
        instagram = read_secret(m.instagram_access_token, m.instagram_access_token_file) or page
        base, timeout = m.graph_api_base_url, m.reply_timeout_seconds
        if whatsapp:
            senders.append(WhatsAppCloudSender(session, access_token=whatsapp, app_secret=app_secret,
                                               phone_number_id=m.whatsapp_phone_number_id, base_url=base,
                                               timeout=timeout))
        if page:
            senders.append(MessengerSender(session, channel="messenger", access_token=page, page_id=m.page_id,
                                           app_secret=app_secret, human_agent=m.human_agent_tag, base_url=base,
                                           timeout=timeout))
        if instagram:
            senders.append(MessengerSender(session, channel="instagram", access_token=instagram, page_id=m.page_id,
                                           app_secret=app_secret, human_agent=m.human_agent_tag, base_url=base,
                                           timeout=timeout))
    g = ch.telegram
    bot = read_secret(g.bot_token, g.bot_token_file) if g.enabled else ""
    if bot:
        senders.append(TelegramSender(session, bot_token=bot, base_url=g.api_base_url, timeout=g.reply_timeout_seconds))
    x = ch.x
    auth = _x_auth(settings) if x.enabled else None
    if auth is not None:
        senders.append(XDirectMessageSender(session, auth=auth, base_url=x.api_base_url,
                                            timeout=x.reply_timeout_seconds))
    c = ch.chat
    if c.enabled and c.reply_url:
        senders.append(ChatSender(session, callback_url=c.reply_url, secret=read_secret(c.secret, c.secret_file),
                                  max_text=c.reply_max_text, timeout=c.reply_timeout_seconds))
    return senders


def _x_auth(settings: Settings) -> XAuth | None:
    x = settings.channels.x
    secret = read_secret(x.access_token_secret, x.access_token_secret_file)
    if x.consumer_key and x.access_token and secret:
        consumer = read_secret(x.consumer_secret, x.consumer_secret_file)
        return OAuth1UserContext(OAuth1Credentials(x.consumer_key, consumer, x.access_token, secret))
    bearer = read_secret(x.oauth2_user_token, x.oauth2_user_token_file)
    return UserBearerToken(bearer) if bearer else None


def status_callback_url(settings: Settings) -> str:
    """Where Twilio should post reply statuses: the setting, else the messaging route at the public URL."""
    t, base = settings.channels.twilio, settings.http.public_base_url
    return t.status_callback_url or (base.rstrip("/") + t.messaging_path if base else "")


def reply_timeout(settings: Settings) -> float:
    """The longest a send may take, over every section (the reply sender's claim lease is counted from it)."""
    ch = settings.channels
    return max(s.reply_timeout_seconds for s in (ch.twilio, ch.meta, ch.telegram, ch.x, ch.chat))


def as_reply(reply: OutgoingReply) -> Reply:
    """The store's queued reply as the senders take it."""
    template = reply.template
    return Reply(entry_id=reply.entry_id, channel=reply.channel, provider=reply.provider, to=reply.to,
                 text=reply.text, last_inbound_at=reply.last_inbound_at, from_id=reply.from_id, thread=reply.thread,
                 case_id=reply.case_id,
                 template=Template(template.name, template.language, template.parameters) if template else None)


def reply_check(table: SenderTable) -> ReplyCheck:
    """The check `store.agent_replies.queue_conversation_reply` runs before queueing: the route's sender's
    own `check`, its refusal (or a route no sender serves) as a ReplyRefusedError."""

    def check(reply: OutgoingReply, now: datetime) -> None:
        candidate = as_reply(reply)
        try:
            table.sender_for(candidate).check(candidate, now)
        except UnknownRoute as e:
            raise ReplyRefusedError("no_sender", f"{e}: its [channels] section has no credentials for "
                                                 "sending replies", ["ParentId"]) from None
        except ReplyRefused as e:
            raise ReplyRefusedError(e.code, e.message, ["Message"]) from None

    return check
