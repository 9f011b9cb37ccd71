"""The `[accounts]` section: whether a new contact's Account is found or made from their email domain, and
the personal-mail domains that never make one; and what "the domain" of an address is.

    [accounts]
    from_email_domain = true
    free_mail_domains = ["gmail.com", "hotmail.*", ...]   # the built-in list, FREE_MAIL_DOMAINS
    extra_free_mail_domains = ["example.com"]             # e.g. your own company's domain

An address's account domain is its registrable domain (`support.eu.acme.co.uk` → `acme.co.uk`), worked out
without the Public Suffix List (no dependency): the last two labels, or three under a country's
second-level label (`co.uk`, `com.au` …) or a hosting suffix shared by many owners (`onmicrosoft.com`,
`github.io` …). A domain the list would treat otherwise is cut one label too short or too long; the
tldextract package would give the exact answer.

A free-mail entry is a domain (`gmail.com`, matching it and its subdomains) or `name.*` (any registrable
domain whose first label is `name`: `yahoo.*` is yahoo.com, yahoo.co.uk, yahoo.com.br …).
"""

from __future__ import annotations

import re

from casegate.config.sections import Section
from pydantic import field_validator

FREE_MAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "outlook.*", "hotmail.*", "live.*", "msn.com", "windowslive.com",
    "yahoo.*", "ymail.com", "rocketmail.com", "icloud.com", "me.com", "mac.com", "aol.*", "aim.com",
    "gmx.*", "web.de", "t-online.de", "freenet.de", "mail.com", "email.com", "proton.me", "protonmail.*",
    "pm.me", "tutanota.*", "tuta.io", "tutamail.com", "zoho.com", "zohomail.*", "fastmail.*", "hey.com",
    "yandex.*", "ya.ru", "mail.ru", "inbox.ru", "list.ru", "bk.ru", "rambler.ru", "qq.com", "163.com",
    "126.com", "yeah.net", "sina.com", "sina.cn", "sohu.com", "aliyun.com", "naver.com", "daum.net",
    "hanmail.net", "rediffmail.com", "libero.it", "virgilio.it", "orange.fr", "wanadoo.fr", "laposte.net",
    "free.fr", "sfr.fr", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "comcast.net",
    "verizon.net", "att.net", "sbcglobal.net", "btinternet.com", "sky.com", "bigpond.com", "shaw.ca",
    "rogers.com", "uol.com.br", "bol.com.br", "terra.com.br",
)
"""Personal mail providers: their users are people, not companies, so no Account is made for them."""

SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "gov", "ltd", "me", "net", "nhs", "or", "org", "plc", "sch",
                          "ne", "go", "gob", "gouv", "nic", "mil", "info", "biz"})
"""Labels under a two-letter country code that are a public suffix with it (`co.uk`, `com.au`, `ne.jp`)."""
SHARED_SUFFIXES = frozenset({"onmicrosoft.com", "github.io", "gitlab.io", "herokuapp.com", "appspot.com",
                             "blogspot.com", "azurewebsites.net", "cloudfront.net", "amazonaws.com",
                             "vercel.app", "netlify.app", "pages.dev", "web.app", "firebaseapp.com"})
"""Domains under which every name belongs to a different owner (`contoso.onmicrosoft.com`)."""
_LABEL = re.compile(r"[^\W_](?:[^\W_]|-){0,62}")
"""A domain label: letters (any script) and digits, with hyphens inside."""


def _is_domain(name: str) -> bool:
    return all(_LABEL.fullmatch(label) and not label.endswith("-") for label in name.split("."))


def domain_of(address: str | None) -> str | None:
    """The domain of an email address, lower case, without a trailing dot; None when it has none."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().rstrip(".").lower()
    labels = domain.split(".")
    if len(labels) < 2 or not _is_domain(domain):
        return None  # a bare host, an address literal ([192.0.2.1]) or not a domain at all
    return domain


def registrable_domain(domain: str) -> str:
    """The part of `domain` (lower case, no trailing dot) its owner registered: see the module's docstring."""
    labels = domain.split(".")
    under_suffix = ".".join(labels[-2:]) in SHARED_SUFFIXES or (len(labels[-1]) == 2 and labels[-2] in SECOND_LEVEL)
    return ".".join(labels[-3:] if under_suffix and len(labels) >= 3 else labels[-2:])


def _free_mail_entry(v: str) -> str:
    entry = v.strip().rstrip(".").lower()
    name = entry[:-2] if entry.endswith(".*") else entry
    if not _is_domain(name) or (entry == name and "." not in name):
        raise ValueError(f"{v!r} is not a domain (gmail.com) or a name followed by .* (yahoo.*)")
    return entry


class AccountSettings(Section):
    """Accounts found or made from a new contact's email domain (see the module's docstring)."""

    from_email_domain: bool = True
    """A new contact with an email address gets the Account whose Domain is their registrable domain,
    made (Name and Domain = that domain) when there is none; the contact's cases carry it. False: the
    worker makes no Account and links none."""
    free_mail_domains: list[str] = list(FREE_MAIL_DOMAINS)
    """Domains that never make an Account. Setting this replaces the built-in list."""
    extra_free_mail_domains: list[str] = []
    """More domains that never make an Account, added to free_mail_domains (e.g. your own company's)."""

    @field_validator("free_mail_domains", "extra_free_mail_domains")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        return [_free_mail_entry(entry) for entry in v]

    def account_domain(self, address: str | None) -> str | None:
        """The registrable domain whose Account a contact with `address` belongs to; None when no Account
        is made for it (the setting off, no domain, or a free-mail domain)."""
        domain = domain_of(address) if self.from_email_domain else None
        if domain is None:
            return None
        registrable = registrable_domain(domain)
        first = registrable.split(".", 1)[0]
        for entry in (*self.free_mail_domains, *self.extra_free_mail_domains):
            if entry.endswith(".*"):
                if entry[:-2] == first:
                    return None
            elif domain == entry or domain.endswith("." + entry) or registrable == entry:
                return None
        return registrable
