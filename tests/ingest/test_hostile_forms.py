"""Hostile Web-to-Case bodies over real HTTP on loopback: a charset that is no text charset (punycode decodes
in quadratic time, idna and undefined raise) is refused with 400 naming `encoding` or `charset` before
anything is decoded; a form of 20,000 parts, 3,000 levels of nested multipart or 200,000 url-encoded fields
is refused at the field limit, at once; and meanwhile the daemon keeps answering HTTP and SMTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from casegate.config import Settings
from casegate.ingest.channels.form_body import parse_form
from casegate.ingest.channels.webhook import Rejected

from tests.ingest.test_web_form import FORM, ORG, post, running, web_form
from tests.pipeline import Pipeline, mail, settings_for

URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def urlencoded(charset: str) -> dict[str, str]:
    return {"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"}
NOT_TEXT = ["punycode", "idna", "undefined", "rot13", "base64", "base64_codec", "zlib_codec", "uu", "hex",
            "bz2", "quopri", "unicode-escape", "raw-unicode-escape", "utf-7", "no-such-charset", "utf-\x00",
            "x" * 500]


def settings(tmp_path: Path) -> Settings:
    return settings_for("local-sqlite", tmp_path, channels=web_form(), http={"max_body_size": 4 * 1024 * 1024})


def multipart(parts: list[tuple[str, str]], boundary: str = "b") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body of (part header lines, content) and its Content-Type header."""
    body = "".join(f"--{boundary}\r\n{head}\r\n\r\n{content}\r\n" for head, content in parts) + f"--{boundary}--\r\n"
    return body.encode("latin-1"), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def form_part(name: str, extra: str = "") -> str:
    return f'Content-Disposition: form-data; name="{name}"' + (f"\r\n{extra}" if extra else "")


async def form_page(p: Pipeline) -> int:
    """Another request to the same port meanwhile: GET the example form."""
    async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{p.daemon.http_port}/web-to-case/form") as r:
        return r.status


async def test_a_megabyte_form_in_punycode_is_refused_at_once_while_smtp_and_http_keep_answering(
        tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as p:
        body = b"orgid=" + ORG.encode() + b"&subject=" + b"z" * 1_000_000
        raw, _ = mail("mail while a form is refused")
        started = time.perf_counter()
        (status, _, reply), (code, _), page = await asyncio.gather(
            post(p, body, path="/web-to-case?encoding=punycode", **URLENCODED), p.send(raw), form_page(p))
        elapsed = time.perf_counter() - started
        assert (status, reply["field"]) == (400, "encoding"), reply
        assert (code, page) == (250, 200)
        assert elapsed < 2  # decoding it took 33 s, and neither SMTP nor HTTP answered meanwhile
        started = time.perf_counter()
        status, _, reply = await post(p, body, **urlencoded("punycode"))
        assert (status, reply["field"]) == (400, "charset")
        assert time.perf_counter() - started < 2
        await p.wait_for(lambda cs: len(cs) == 1)
        assert [c["Subject"] for c in await p.cases()] == ["mail while a form is refused"]


async def test_only_text_charsets_are_accepted_for_a_form_and_each_part(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as p:
        small = urlencode(FORM).encode()
        for label in NOT_TEXT:  # idna and undefined answered 500 (an uncaught UnicodeError)
            status, _, reply = await post(p, small, path=f"/web-to-case?encoding={label}", **URLENCODED)
            assert (status, reply["field"]) == (400, "encoding"), label
        for label in ("punycode", "idna", "undefined", "zlib_codec"):
            status, _, reply = await post(p, small, **urlencoded(label))
            assert (status, reply["field"]) == (400, "charset"), label
            parts = [(form_part(k), v) for k, v in FORM.items() if k != "description"]
            body, headers = multipart([*parts, (form_part("description", f"Content-Type: text/plain; charset={label}"),
                                                "z" * 1000)])
            status, _, reply = await post(p, body, **headers)
            assert (status, reply["field"]) == (400, "charset"), label
        await p.wait_idle()
        assert await p.cases() == []
        # real text charsets, normalised as Python's codec registry does: in the query, the header, a part
        shift_jis = urlencode({**FORM, "subject": "お問い合わせ"}, encoding="shift_jis").encode()
        assert (await post(p, shift_jis, path="/web-to-case?encoding=Shift-JIS", **URLENCODED))[0] == 200
        cp1252 = urlencode({**FORM, "subject": "Ça va"}, encoding="cp1252").encode()
        assert (await post(p, cp1252, **urlencoded("Windows-1252")))[0] == 200
        parts = [(form_part(k), v) for k, v in FORM.items() if k not in ("subject", "description")]
        body, headers = multipart([*parts, (form_part("subject"), "latin1 part"),
                                   (form_part("description", "Content-Type: text/plain; charset=ISO_8859-1"), "café")])
        assert (await post(p, body, **headers))[0] == 200
        cases = await p.wait_for(lambda cs: len(cs) == 3)
        assert sorted(c["Subject"] for c in cases) == sorted(["お問い合わせ", "Ça va", "latin1 part"])
        latin1 = await p.case(next(c["CaseNumber"] for c in cases if c["Subject"] == "latin1 part"))
        assert latin1["Description"] == "caf\u00e9"


async def refused_at_once(p: Pipeline, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """POST `body` together with another request: the form is refused with 400 and the other request
    answered, both well within 2 s; the JSON error."""
    started = time.perf_counter()
    (status, _, reply), page = await asyncio.gather(post(p, body, **headers), form_page(p))
    assert time.perf_counter() - started < 2
    assert (status, page) == (400, 200), reply
    assert isinstance(reply, dict)
    return reply


async def test_many_parts_deep_nesting_and_many_fields_are_refused_at_the_limit(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as p:
        # 20,000 parts: the whole form was parsed (3 s, the daemon frozen) before the field count was checked
        body, headers = multipart([(form_part(f"f{i}"), "x") for i in range(20_000)])
        assert (await refused_at_once(p, body, headers))["error"] == "more than 1000 fields"
        # 3,000 levels of multipart/mixed inside form-data: 0.5 s of parsing, then a 500 (RecursionError)
        levels = 3000
        nested = "".join(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(levels))
        nested += "--b3000\r\nContent-Disposition: form-data; name=subject\r\n\r\ndeep\r\n"
        nested += "".join(f"--b{i}--\r\n" for i in reversed(range(levels + 1)))
        reply = await refused_at_once(p, nested.encode(), {"Content-Type": "multipart/form-data; boundary=b0"})
        assert reply["error"] == "nested multipart parts are not accepted"
        # one level is refused too: form-data has no nesting (RFC 7578)
        inner, _ = multipart([(form_part("subject"), "inner")], boundary="inner")
        body, headers = multipart([(form_part("email"), "ada@example.org"),
                                   (form_part("files", "Content-Type: multipart/mixed; boundary=inner"),
                                    inner.decode())])
        assert (await refused_at_once(p, body, headers)) == {"error": "nested multipart parts are not accepted",
                                                             "field": "files"}
        # 200,000 url-encoded fields: counted while splitting
        body = b"&".join(b"f%d=x" % i for i in range(200_000))
        assert (await refused_at_once(p, body, URLENCODED))["error"] == "more than 1000 fields"
        await p.wait_idle()
        assert await p.cases() == []
        # up to the limit is a form like any other
        extra = 1000 - len(FORM)
        body, headers = multipart([(form_part(k), v) for k, v in FORM.items()]
                                  + [(form_part(f"x{i}"), "x") for i in range(extra)])
        assert (await post(p, body, **headers))[0] == 200
        pairs = [*FORM.items(), *((f"x{i}", "x") for i in range(extra))]
        assert (await post(p, pairs))[0] == 200
        body, headers = multipart([(form_part(k), v) for k, v in FORM.items()]
                                  + [(form_part(f"x{i}"), "x") for i in range(extra + 1)])
        assert (await post(p, body, **headers))[0] == 400
        await p.wait_for(lambda cs: len(cs) == 2)


def test_multipart_shapes_the_walk_reads() -> None:
    """Preamble, LF-only lines, transport padding, a `--bx` line inside a value, no close delimiter,
    base64 and quoted-printable parts, a quoted boundary, RFC 5987 names: as the email parser read them."""
    body = (b"preamble\r\n--b\nContent-Disposition: form-data; name=x\n\nLF only\n--b  \r\n"
            b'Content-Disposition: form-data; name="y;z"\r\n\r\n--bx is no delimiter\r\n--b\r\n'
            b"Content-Disposition: form-data; name=e\r\nContent-Transfer-Encoding: base64\r\n\r\nw6k=\r\n--b\r\n"
            b"Content-Disposition: form-data; name=q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"Gr=C3=BC=\r\n\xc3\x9fe\r\n--b\r\n"
            b"Content-Disposition: form-data; name*=utf-8''%C3%A9\r\n\r\nlast, no close")
    assert parse_form(body, 'multipart/form-data; boundary="b"') == {
        "x": ["LF only"], "y;z": ["--bx is no delimiter"], "e": ["é"], "q": ["Grüße"], "é": ["last, no close"]}
    for bad in ("multipart/form-data", "multipart/form-data; boundary=", f"multipart/form-data; boundary={'b' * 201}"):
        with pytest.raises(Rejected, match="malformed multipart body"):
            parse_form(b"--b\r\n\r\nx\r\n--b--\r\n", bad)
    with pytest.raises(Rejected, match="part headers over"):
        parse_form(b"--b\r\nX: " + b"y" * 20000 + b"\r\n\r\nv\r\n--b--", "multipart/form-data; boundary=b")
