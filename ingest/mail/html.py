"""The HTML body of a mail (pure, no I/O): sanitised for display with nh3 (the Ammonia sanitiser), and read
as plain text when a mail has no text alternative (html-text over lxml's tree).

Bounded in time and size. At most `MAX_INPUT_CHARS` of HTML are read at all (the rest is cut and the cut
recorded). The HTML is first parsed by libxml2 (lxml), which stops at 255 levels of nesting, and nh3 is
handed lxml's re-serialised, well-formed tree: html5ever, under nh3, spends time proportional to
tags x nesting depth on some deep shapes (20,000 nested `<div>`s cost it 0.7 s, 100,000 cost 25 s), so its
input must never be deeply nested. The same tree gives the plain text, so the mail is parsed once for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import html_text
import lxml.etree  # type: ignore[import-untyped]  # lxml ships no type hints (types-lxml is not a dependency)
import lxml.html  # type: ignore[import-untyped]
import nh3

MAX_INPUT_CHARS = 2_000_000
"""HTML read per mail; a longer body is cut here before parsing (worst case measured: ~0.2 s)."""

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_HIDDEN = ("head", "script", "style", "title", "template")
"""Elements whose content is never shown: dropped from the tree before it becomes HTML or text."""
_CLEANER = nh3.Cleaner(
    clean_content_tags={"script", "style", "title"},
    url_schemes=nh3.ALLOWED_URL_SCHEMES | {"cid"},  # inline images: <img src="cid:...">
    url_relative="deny",  # a relative URL would resolve against whatever page shows the case
)


@dataclass(frozen=True, slots=True)
class HtmlBody:
    html: str
    """Sanitised HTML, at most the `max_chars` asked for."""
    text: str | None
    """The words of the HTML with its line breaks, if asked for; not bounded."""
    truncated: bool
    defects: tuple[str, ...]


def read_html(html: str, *, max_chars: int, want_text: bool) -> HtmlBody:
    """Sanitise `html` (and, if `want_text`, read its text). Never raises: HTML that cannot be parsed at
    all becomes its escaped source."""
    defects: list[str] = []
    truncated = len(html) > MAX_INPUT_CHARS
    if truncated:
        html = html[:MAX_INPUT_CHARS]
        defects.append(f"html: longer than {MAX_INPUT_CHARS} chars, cut")
    if _CONTROL.search(html):  # not text in HTML, and lxml refuses them in the text it is handed back
        html = _CONTROL.sub("", html)
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    try:  # bytes: lxml refuses a str holding NUL or other control characters
        root = lxml.etree.fromstring(html.encode("utf-8", "replace"), parser=parser)
    except (lxml.etree.LxmlError, ValueError) as e:
        return HtmlBody(_bounded(_CLEANER.clean(_escaped(html)), max_chars), None, truncated,
                        (*defects, f"html: unparseable ({type(e).__name__})"))
    if root is None:  # empty or only whitespace
        return HtmlBody("", None, truncated, tuple(defects))
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        truncated = True
        defects.append("html: nested deeper than 255 elements, cut there")
    for element in list(root.iter(*_HIDDEN)):
        element.drop_tree()
    clean = _CLEANER.clean(lxml.etree.tostring(root, method="html", encoding="unicode"))
    if len(clean) > max_chars:
        truncated = True
        clean = _bounded(clean, max_chars)
    text = None
    if want_text:
        try:
            text = html_text.etree_to_text(root)
        except Exception as e:  # a text we cannot read is a defect, not a failure
            defects.append(f"html: no text ({type(e).__name__})")
    return HtmlBody(clean, text, truncated, tuple(defects))


def _bounded(clean: str, max_chars: int) -> str:
    """Sanitised HTML cut to `max_chars` at a tag boundary and closed again (nh3 closes what is open)."""
    if len(clean) <= max_chars:
        return clean
    cut = clean[: max(0, max_chars - 4096)]  # room for the end tags of up to 255 open elements
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return _CLEANER.clean(cut)[:max_chars]


def _escaped(html: str) -> str:
    return html.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
