"""Settings of the webhook channels, one section each under `[channels.<name>]`: whether it is on, the
route providers call, its secret (inline or from a file, never logged), and the cases it opens —
Origin, Priority, owner, how long a conversation stays on one case, and what a message after the case
closed does. The messaging sections also say how agents' replies go back through the provider's API
(credentials, our sender ids, the API's base URL: ingest/replies/configured.py); their tokens are read at
start, so a rotated token file takes a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from casegate.config.case_values import OptionalPicklist, Owner, PhoneRegion, Picklist
from casegate.config.sections import Section
from pydantic import Field, model_validator


class ChannelBase(Section):
    enabled: bool = False
    origin: OptionalPicklist = ""
    """Case Origin of cases this channel opens. Empty = the channel's own name (SMS, WhatsApp, ...)."""
    priority: Picklist = "Medium"
    owner: Owner | None = None
    """Owner of new cases from this channel before assignment rules. Empty = assignment rules."""
    conversation_window_hours: float = Field(default=24.0, gt=0)
    """A message from the same person within this many hours of the last one goes on the same open case."""
    closed_case_policy: Literal["reopen", "reopen_within_days", "new_case"] = "reopen_within_days"
    """A message after the conversation's case closed: reopen it; reopen it if it closed less than
    `reopen_within_days` ago, else a new case with ParentId; always a new case with ParentId."""
    reopen_within_days: int = Field(default=7, ge=0)

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        """(name, inline value, file) of each secret of the section, for validation."""
        return []

    def _reply_secret_pairs(self) -> list[tuple[str, str, str]]:
        """(name, inline value, file) of each optional secret for sending replies."""
        return []

    @model_validator(mode="after")
    def _secrets(self) -> ChannelBase:
        for name, value, path in self._secret_pairs() + self._reply_secret_pairs():
            if value and path:
                raise ValueError(f"set {name} or {name}_file, not both")
            if path and not Path(path).is_file():
                raise ValueError(f"{name}_file not found: {path}")
        for name, value, path in self._secret_pairs():
            if self.enabled and not value and not path:
                raise ValueError(f"enabled without {name} (or {name}_file): requests could not be verified")
        return self


class ReplyingChannel(ChannelBase):
    """A channel agents reply on, through the provider's API (store.agent_replies, ingest/worker/reply_sender.py)."""

    reply_timeout_seconds: float = Field(default=10.0, gt=0)
    """Seconds one reply's request to the provider may take; then it is tried again later (a request that
    timed out may still have been delivered: providers take no idempotency key)."""

    @model_validator(mode="after")
    def _reply_urls(self) -> ReplyingChannel:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name.endswith("_url") and value and not value.lower().startswith(("https://", "http://")):
                raise ValueError(f"{name} must be an http(s) URL: {value!r}")
        return self


CaseFieldName = Literal["Type", "Reason", "Priority", "Language", "SuppliedCompany", "Comments"]
"""Case fields a web form may fill (store.channel_policy.CASE_FIELDS)."""


class WebFormChannel(ChannelBase):
    """Web-to-Case: a form posted with Salesforce's field names."""

    path: str = "/web-to-case"
    """Where forms POST (application/x-www-form-urlencoded or multipart/form-data without files)."""
    form_path: str = "/web-to-case/form"
    """Where a minimal example HTML form is served ("" = not served)."""
    orgid: str = ""
    """When set, submissions must carry this `orgid` (as Salesforce's form does), in the body or the query."""
    allowed_redirect_hosts: list[str] = []
    """Hosts `retURL` may point at (`example.com` = any port, `example.com:8443` = that port only); any
    other retURL is not followed (no open redirect): the submission is accepted with a thank-you page."""
    thank_you_url: str = ""
    """The `retURL` the example form carries (an allowed absolute URL or a path on this host). "" = none:
    the daemon answers with its own thank-you page."""
    honeypot_field: str = "website"
    """A field humans leave empty (hidden in the form); a filled one is answered as accepted but dropped."""
    rate_limit_per_minute: int = Field(default=10, ge=1)
    """Submissions per client IP (IPv6: per /64) per minute, sliding window in each process; more get 429."""
    trusted_proxies: int = Field(default=0, ge=0)
    """Reverse proxies in front of casegate that append to X-Forwarded-For: the client IP (rate limit) is
    that many entries from its right. 0 = the peer address of the connection."""
    default_region: PhoneRegion = Field(default="", pattern=r"^([A-Z]{2})?$")
    """Region (ISO 3166 alpha-2, e.g. GB) of phone numbers typed without +country code. "" = they need one."""
    daily_cap: int = Field(default=5000, ge=1)
    """Cases per 24 hours (Salesforce: 5,000); submissions beyond it are kept pending, not lost."""
    custom_fields: dict[str, CaseFieldName] = {}
    """Form field → Case field (one of Type, Reason, Priority, Language, SuppliedCompany, Comments), e.g.
    {"00N5g00000AbCdE" = "Comments"}. A repeated field (multi-select) is joined with ";"."""

    @model_validator(mode="after")
    def _web_form(self) -> WebFormChannel:
        for name in ("path", "form_path"):
            value = getattr(self, name)
            if value and not value.startswith("/"):
                raise ValueError(f"{name} must start with /: {value!r}")
        if not self.path:
            raise ValueError("path must not be empty")
        if not self.honeypot_field:
            raise ValueError("honeypot_field must not be empty")
        for host in self.allowed_redirect_hosts:
            if not host or any(c in host for c in "/\\@ ") or host != host.strip():
                raise ValueError(f"allowed_redirect_hosts: {host!r} is not a host or host:port")
        return self


class TwilioChannel(ReplyingChannel):
    """Twilio Programmable Messaging (SMS, MMS, WhatsApp via Twilio) and Voice status callbacks."""

    auth_token: str = ""
    auth_token_file: str = ""
    """The account's Auth Token: the key of X-Twilio-Signature (and, with the AccountSid, of media fetches)."""
    account_sid: str = ""
    """When set, requests for any other AccountSid are refused (403), and replies are sent as this account.
    Empty = any account signed with the token, and no replies over Twilio."""
    shared_keys: dict[str, str] = {}
    """Webhooks Rules SharedKey id → secret, for requests carrying X-Twilio-Webhooks-Signature-Settings."""
    messaging_path: str = "/hooks/twilio/messaging"
    """Incoming SMS/MMS/WhatsApp messages and their delivery status callbacks (acknowledged, no case)."""
    voice_path: str = "/hooks/twilio/voice"
    """Call status callbacks (also served at `<voice_path>/status`) and the incoming-call webhook."""
    voice_twiml: str = ""
    """TwiML answered to the incoming-call webhook. Empty = an empty <Response/>."""
    fetch_media: bool = False
    """Download MMS/WhatsApp media into the blob store before acknowledging (the URLs are kept either way)."""
    media_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    """A media item larger than this is not downloaded (its URL is still recorded)."""
    media_timeout_seconds: float = Field(default=8.0, gt=0)
    """Time allowed for all media of one message (Twilio waits 15 s for the answer)."""
    media_hosts: list[str] = ["api.twilio.com"]
    """Hosts (and their subdomains) media is downloaded from; the account's credentials go nowhere else."""
    api_key_sid: str = ""
    api_key_secret: str = ""
    api_key_secret_file: str = ""
    """An API key (SK…) and its secret to send replies with instead of the Auth Token (recommended)."""
    sms_from: str = ""
    """The number (E.164) SMS replies go from when the conversation does not name the number the
    customer wrote to. Replies go from that number when it does."""
    whatsapp_from: str = ""
    """The same for WhatsApp replies via Twilio (E.164, without the whatsapp: prefix)."""
    messaging_service_sid: str = ""
    """A Messaging Service (MG…) that picks the number when neither of the above is known."""
    status_callback_url: str = ""
    """Where Twilio posts the delivery statuses of replies. Empty = [http] public_base_url + messaging_path
    (no callback when public_base_url is unset)."""
    api_base_url: str = "https://api.twilio.com/2010-04-01"

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("auth_token", self.auth_token, self.auth_token_file)]

    def _reply_secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("api_key_secret", self.api_key_secret, self.api_key_secret_file)]


class MetaChannel(ReplyingChannel):
    """Meta webhooks: WhatsApp Cloud API, Messenger, Instagram (one route for all three)."""

    app_secret: str = ""
    """The App Secret of the Meta app that owns the webhook subscription (App Dashboard → App settings →
    Basic): the key of X-Hub-Signature-256. Not the verify token, not an access token."""
    app_secret_file: str = ""
    """File holding the app secret (first line), read on every request: replace the file to rotate it."""
    verify_token: str = ""
    """The Verify Token typed in the App Dashboard; Meta sends it back in the GET subscription handshake."""
    verify_token_file: str = ""
    """File holding the verify token (first line), read on every handshake."""
    path: str = "/hooks/meta"
    """The callback URL's path: GET answers the handshake, POST receives the events (and WhatsApp's
    delivery statuses of replies)."""
    whatsapp_phone_number_id: str = ""
    """The WhatsApp Cloud API phone number id replies go from when the conversation does not name the
    one the customer wrote to."""
    whatsapp_access_token: str = ""
    whatsapp_access_token_file: str = ""
    """A system user's token with whatsapp_business_messaging. Empty = no WhatsApp Cloud replies."""
    page_id: str = "me"
    """The Page whose Send API Messenger and Instagram replies use ("me" = the token's own Page)."""
    page_access_token: str = ""
    page_access_token_file: str = ""
    """The Page access token (pages_messaging). Empty = no Messenger replies."""
    instagram_access_token: str = ""
    instagram_access_token_file: str = ""
    """The token for Instagram replies (instagram_manage_messages). Empty = the Page access token."""
    human_agent_tag: bool = False
    """Send Messenger/Instagram replies up to 7 days after the customer's last message with the HUMAN_AGENT
    tag (the app needs that permission); off = 24 hours."""
    graph_api_base_url: str = "https://graph.facebook.com/v23.0"
    """The Graph API, with its version (versions live two years)."""

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("app_secret", self.app_secret, self.app_secret_file),
                ("verify_token", self.verify_token, self.verify_token_file)]

    def _reply_secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("whatsapp_access_token", self.whatsapp_access_token, self.whatsapp_access_token_file),
                ("page_access_token", self.page_access_token, self.page_access_token_file),
                ("instagram_access_token", self.instagram_access_token, self.instagram_access_token_file)]


class TelegramChannel(ReplyingChannel):
    """Telegram Bot API webhook: messages and edits sent to the bot."""

    secret_token: str = ""
    """The `secret_token` given to setWebhook (1-256 of A-Z a-z 0-9 _ -); Telegram sends it back in
    X-Telegram-Bot-Api-Secret-Token on every request."""
    secret_token_file: str = ""
    """A file whose first line is the secret token (instead of `secret_token`; read on each request)."""
    path: str = "/hooks/telegram"
    """The route setWebhook points at (add an unguessable segment if you like)."""
    bot_token: str = ""
    bot_token_file: str = ""
    """The bot's token from @BotFather, to send replies with (sendMessage). Empty = no Telegram replies."""
    api_base_url: str = "https://api.telegram.org"

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("secret_token", self.secret_token, self.secret_token_file)]

    def _reply_secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("bot_token", self.bot_token, self.bot_token_file)]


class XChannel(ReplyingChannel):
    """X Account Activity API: DMs and mentions."""

    consumer_secret: str = ""
    """The app's Consumer Secret (API secret key): key of the CRC answer and of the POST signatures."""
    consumer_secret_file: str = ""
    """A file whose first line is the consumer secret (instead of `consumer_secret`; read on each request)."""
    own_user_id: str = ""
    """Our account's user id: its own DMs and tweets are ignored (as are those of each delivery's
    `for_user_id`, the subscribed account), and tweets count as mentions when they mention it."""
    path: str = "/hooks/x"
    """The route registered as the webhook URL: GET answers the CRC, POST takes the events."""
    consumer_key: str = ""
    access_token: str = ""
    access_token_secret: str = ""
    access_token_secret_file: str = ""
    """OAuth 1.0a user context of the support account, for DM replies: the app's API key (with the consumer
    secret above) and the account's access token and secret."""
    oauth2_user_token: str = ""
    oauth2_user_token_file: str = ""
    """Or an OAuth 2.0 user access token (dm.write); it expires: refreshing it is yours. Neither = no X replies."""
    api_base_url: str = "https://api.x.com/2"

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("consumer_secret", self.consumer_secret, self.consumer_secret_file)]

    def _reply_secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("access_token_secret", self.access_token_secret, self.access_token_secret_file),
                ("oauth2_user_token", self.oauth2_user_token, self.oauth2_user_token_file)]


class DispositionRule(Section):
    """What a call with this disposition does to cases; the first rule whose disposition matches wins,
    and a call no rule matches is logged."""

    disposition: str = Field(min_length=1)
    """Call disposition (case-insensitive) this rule is for (completed, abandoned, no-answer, busy,
    failed, voicemail, transferred, canceled, or a vendor's own), or "*" for any."""
    action: Literal["log", "new_case", "ignore"] = "log"
    """log: on the caller's open case, else a new Phone case; new_case: always a new case; ignore: record only."""


class CtiChannel(ChannelBase):
    """Generic call events (`cti.call.v1`) and the screen-pop lookup for softphones."""

    secret: str = ""
    secret_file: str = ""
    """HMAC key of call events (signature over timestamp + body)."""
    path: str = "/hooks/cti"
    lookup_path: str = "/cti/lookup"
    lookup_token: str = ""
    lookup_token_file: str = ""
    """Bearer token softphones send to the lookup."""
    replay_window_seconds: int = Field(default=300, ge=1)
    """A signed event whose X-CTI-Timestamp is further than this from now (past or future) is refused."""
    dispositions: list[DispositionRule] = [DispositionRule(disposition="*", action="log")]
    """Rules applied to each call's disposition, in order (`[[channels.cti.dispositions]]`)."""
    bearer_token: str = ""
    bearer_token_file: str = ""
    """Optional: call events may instead carry `Authorization: Bearer <this>`, for senders that cannot
    sign (EventBridge API destinations). Empty = only signed events are accepted."""
    default_region: PhoneRegion = Field(default="", pattern=r"^([A-Z]{2})?$")
    """ISO country (GB, US ...) for numbers the CTI sends without a country code. Empty = numbers must
    be international (+44..., or all digits with the country code)."""

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("secret", self.secret, self.secret_file),
                ("lookup_token", self.lookup_token, self.lookup_token_file)]

    @model_validator(mode="after")
    def _bearer(self) -> CtiChannel:
        if self.bearer_token and self.bearer_token_file:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        if self.bearer_token_file and not Path(self.bearer_token_file).is_file():
            raise ValueError(f"bearer_token_file not found: {self.bearer_token_file}")
        return self


class ChatChannel(ReplyingChannel):
    """The generic chat webhook (a site chat widget, any provider not listed)."""

    secret: str = ""
    secret_file: str = ""
    """HMAC-SHA256 key; requests carry X-Casegate-Signature: sha256=hex(HMAC(key, timestamp + "." + body))."""
    path: str = "/hooks/chat"
    replay_window_seconds: int = Field(default=300, ge=1)
    """A request whose X-Casegate-Timestamp is further than this from now (past or future) is refused."""
    default_region: PhoneRegion = Field(default="", pattern=r"^([A-Z]{2})?$")
    """ISO country (GB, US ...) for visitor phone numbers given without a country code."""
    reply_url: str = ""
    """Where agents' replies are POSTed, signed with `secret` as inbound messages are (format in
    ingest/replies/chat.py). Empty = no chat replies."""
    reply_max_text: int = Field(default=10_000, ge=1)
    """Characters of one reply the widget takes."""

    def _secret_pairs(self) -> list[tuple[str, str, str]]:
        return [("secret", self.secret, self.secret_file)]


class ChannelsSettings(Section):
    """One section per webhook channel, in the order of `config.channel_list.WEBHOOK_CHANNELS` (which
    says what each publishes on; checked against these fields when it is imported)."""

    web_form: WebFormChannel = WebFormChannel()
    twilio: TwilioChannel = TwilioChannel()
    meta: MetaChannel = MetaChannel()
    telegram: TelegramChannel = TelegramChannel()
    x: XChannel = XChannel()
    cti: CtiChannel = CtiChannel()
    chat: ChatChannel = ChatChannel()
