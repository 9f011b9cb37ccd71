"""Our signed thread token, `thread::<case id>.<signature>::`, put in every outbound subject and body.

The signature is an HMAC of the case Id under the installation's secret, so a stranger who types a
case number (or even a case Id) cannot attach their mail to someone else's case.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_TOKEN = re.compile(r"thread::(500[0-9A-Za-z]{15})\.([0-9A-Za-z_-]{16})::")


def _signature(secret: bytes, case_id: str) -> str:
    mac = hmac.new(secret, case_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:12]).decode()


def make_token(secret: bytes, case_id: str) -> str:
    return f"thread::{case_id}.{_signature(secret, case_id)}::"


def find_case_id(secret: bytes, *texts: str | None) -> str | None:
    """The case Id of the first validly signed token in `texts` (subject first, then bodies)."""
    for text in texts:
        for m in _TOKEN.finditer(text or ""):
            if hmac.compare_digest(m.group(2), _signature(secret, m.group(1))):
                return m.group(1)
    return None
