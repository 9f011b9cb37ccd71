"""OAuth 1.0a request signing, HMAC-SHA1 (RFC 5849 §3.4), as X's user-context authentication wants it
(https://docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature).

The signature base string is METHOD & encode(base URI) & encode(normalised parameters): the base URI
with scheme and host in lower case, the port only when it is not the scheme's default and no query; the
parameters are the query's, the form body's (a JSON body is not signed) and the oauth_* ones, each name
and value percent-encoded (RFC 3986 unreserved characters stay), sorted by name then value, joined as
name=value with &. The key is encode(consumer secret) & encode(token secret); the signature is the
base64 HMAC-SHA1, sent with the other oauth_* values in `Authorization: OAuth k="v", ...`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def encode(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then every octet but ALPHA / DIGIT / - . _ ~ as %XX (upper-case hex)."""
    return quote(value, safe="~")


def base_uri(url: str) -> str:
    """RFC 5849 §3.4.1.2: scheme://host[:port]/path, scheme and host lower-cased, default port left out."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    authority = host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return f"{scheme}://{authority}{parts.path or '/'}"


def normalised_parameters(params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.3.2: each name and value encoded, sorted by name then value, name=value joined by &."""
    return "&".join(f"{name}={value}" for name, value in sorted((encode(n), encode(v)) for n, v in params))


def base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1: `params` are the oauth_* and form body parameters; the query's are taken from `url`."""
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    return "&".join((method.upper(), encode(base_uri(url)), encode(normalised_parameters([*query, *params]))))


def hmac_sha1_signature(base: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{encode(consumer_secret)}&{encode(token_secret)}"
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode("ascii")


@dataclass(frozen=True)
class OAuth1Credentials:
    consumer_key: str
    consumer_secret: str
    token: str
    token_secret: str

    def authorization(self, method: str, url: str, *, timestamp: int, nonce: str | None = None,
                      form: Iterable[tuple[str, str]] = ()) -> str:
        """The `Authorization: OAuth ...` value of this request, signed with HMAC-SHA1 (`form`: the body's
        parameters when it is form-encoded)."""
        oauth = [("oauth_consumer_key", self.consumer_key), ("oauth_nonce", nonce or secrets.token_hex(16)),
                 ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", str(timestamp)),
                 ("oauth_token", self.token), ("oauth_version", "1.0")]
        signature = hmac_sha1_signature(base_string(method, url, [*oauth, *form]), self.consumer_secret,
                                        self.token_secret)
        fields = sorted([*oauth, ("oauth_signature", signature)])
        return "OAuth " + ", ".join(f'{encode(name)}="{encode(value)}"' for name, value in fields)
