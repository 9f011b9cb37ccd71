"""What the CLI may put on an operator's terminal. Subjects, addresses, names and errors come from
strangers; a raw ESC, BEL or C1 control in them would drive the terminal (set its title, colour or
clear it, fake lines), and a bidi override would reorder what the operator reads. So:

- `printable(value)`: the text for tables and text output, with every C0/C1 control, DEL, bidi
  control (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069), line/paragraph separator and lone
  surrogate shown as its Python escape (`\\x1b`, `\\n`, `\\u202e`). Everything else, backslashes
  included, is left as it is, so applying it twice changes nothing.
- `dumps(value)`: JSON for `--json` output, exact (every string decodes to what was stored) and
  readable (letters stay letters), with DEL, C1 controls, bidi controls, separators and lone
  surrogates written as `\\uXXXX` escapes, as json.dumps already writes C0 controls.
"""

from __future__ import annotations

import json
import re
from typing import Any

_BEYOND_C0 = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_SHOWN_AS_ESCAPE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
_RAW_IN_JSON = re.compile(f"[{_BEYOND_C0}]")
"""What json.dumps(ensure_ascii=False) leaves raw of those (it escapes C0 controls itself; its own
newlines between items, with `indent`, are not in a string and stay)."""
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def printable(value: object) -> str:
    """`str(value)` with every character that could drive or reorder the terminal shown as an escape."""
    return _SHOWN_AS_ESCAPE.sub(_escape, str(value))


def dumps(value: Any, indent: int | None = None) -> str:
    """json.dumps(value), exact and safe to print to a terminal (see the module docstring)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    # outside strings JSON text is ASCII punctuation, digits and spaces, so every match is inside a string
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
