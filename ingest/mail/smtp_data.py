"""Reading the content of an SMTP DATA command (RFC 5321 §4.1.1.4): the bytes up to the line that holds a
lone dot, with the transparency dots taken out (§4.5.2), under aiosmtpd's limits and with its answers.

aiosmtpd reads it one line at a time, a `readuntil` and a dozen Python steps for each line: two fifths of
a no-op session's CPU for a mail of 20 lines. Here the stream is read up to each `.` CRLF instead (a line
start only if CRLF came before it), in as few reads as the stream's buffer limit allows, and each line
costs one `find`. The answers are aiosmtpd's, in the order its line loop meets them: a line longer than
`line_limit` bytes (its CRLF included) is `500 Line too long`, more than `size_limit` bytes in all is
`552`; a line whose CRLF is not within `line_limit` + 2 bytes overruns aiosmtpd's stream before its bytes
are counted (so it is a 500 even where it would also pass the size limit). Either way the rest is read
and dropped up to the lone dot, so the session goes on, and nothing more than the limit is kept."""

from __future__ import annotations

import asyncio

LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH = "552 Error: Too much mail data"
_DOT_CRLF = b".\r\n"


async def read_data(reader: asyncio.StreamReader, size_limit: int, line_limit: int) -> bytes | str:
    """The content, dot-stuffing undone; or, once the lone dot has come, the answer for a broken limit."""
    data = bytearray()
    scanned = 0
    """data[:scanned] is whole lines within the limits (while there is no verdict)."""
    verdict: str | None = None
    before = b""
    """The last two bytes read before this read: whether a `.` starts a line."""
    started = False
    while True:
        try:
            chunk = await reader.readuntil(_DOT_CRLF)
        except asyncio.LimitOverrunError as e:  # no `.` CRLF within the stream's limit: take what is there
            chunk = await reader.read(e.consumed)
            ended = False
        else:
            ended = (before + chunk)[-5:-3] == b"\r\n" if started or len(chunk) > 3 else True
        started = True
        before = (before + chunk)[-2:]
        if verdict is not None:
            if ended:
                return verdict
            continue
        end = len(data) + len(chunk) - (3 if ended else 0)
        data += chunk
        verdict, scanned = _scan(data, scanned, end, size_limit, line_limit)
        if verdict is not None:
            data.clear()  # dropped now; the rest is read and dropped too
            if ended:
                return verdict
        elif ended:
            del data[end:]
            if data[:1] == b".":
                del data[0]
            return bytes(data).replace(b"\r\n.", b"\r\n")


def _scan(data: bytearray, start: int, end: int, size_limit: int, line_limit: int) -> tuple[str | None, int]:
    """Walk the whole lines of data[start:end] as aiosmtpd's loop meets them: (its answer if one of them
    breaks a limit, else None; where the unfinished line starts). Every byte before `start` is counted."""
    pos = start
    while True:
        eol = data.find(b"\r\n", pos, end)
        if eol < 0:  # unfinished: aiosmtpd's stream overruns once it is longer than the limit (a CR may end it)
            unfinished = end - pos - (1 if end > pos and data[end - 1] == 0x0D else 0)
            return (LINE_TOO_LONG if unfinished > line_limit else None), pos
        if eol - pos > line_limit:  # overran aiosmtpd's stream: refused before its bytes are counted
            return LINE_TOO_LONG, pos
        if eol + 2 > size_limit:
            return TOO_MUCH, pos
        if eol + 2 - pos > line_limit:
            return LINE_TOO_LONG, pos
        pos = eol + 2
