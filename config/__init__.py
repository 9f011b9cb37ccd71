"""casegate settings: the typed shape of every setting, and loading them from TOML plus `CASEGATE_*`.

`load_settings(path)` is the only entry point; it raises `ConfigError` whose lines each name the
offending key and the reason, so the daemon can print them and exit 2 instead of a traceback.
"""

from __future__ import annotations

from casegate.config.accounts import AccountSettings
from casegate.config.case_settings import CaseSettings, StatusValue
from casegate.config.loader import ConfigError, load_settings
from casegate.config.mail import LoopSettings, MailSettings, OutboundSettings, RoutingAddress
from casegate.config.mailboxes import MailboxSettings
from casegate.config.settings import (
    AssignmentEntry,
    BlobSettings,
    BusSettings,
    HttpSettings,
    KafkaSettings,
    LocalBusSettings,
    RulesSettings,
    RunSettings,
    Settings,
    SmtpSettings,
    StoreSettings,
    WorkerSettings,
)

__all__ = [
    "AccountSettings",
    "AssignmentEntry",
    "BlobSettings",
    "BusSettings",
    "CaseSettings",
    "ConfigError",
    "HttpSettings",
    "KafkaSettings",
    "LocalBusSettings",
    "LoopSettings",
    "MailSettings",
    "MailboxSettings",
    "OutboundSettings",
    "RoutingAddress",
    "RulesSettings",
    "RunSettings",
    "Settings",
    "SmtpSettings",
    "StatusValue",
    "StoreSettings",
    "WorkerSettings",
    "load_settings",
]
