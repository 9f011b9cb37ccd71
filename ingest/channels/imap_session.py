"""One IMAP connection to one mailbox, with aioimaplib: connect, log in (password or XOAUTH2, the
credential read afresh each time), select the folder, list the UIDs above a watermark, fetch them
with BODY.PEEK[] (never setting \\Seen), flag or move them, wait for new mail with IDLE.

Every call is bounded by a timeout and ends at once when the connection drops, as `ImapTemporary`.
aioimaplib does not answer the SASL error challenge a server sends for a rejected XOAUTH2 token (it
would wait for its timeout); `_Protocol` answers it with the empty response RFC 7628 asks for, so the
server says NO straight away, and the login is bounded by `login_timeout` besides.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import shlex
import ssl
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from aioimaplib import aioimaplib
from casegate.config import MailboxSettings
from casegate.config.sections import read_secret

T = TypeVar("T")

UIDVALIDITY_RE = re.compile(rb"\[UIDVALIDITY (\d+)\]")
FETCH_UID_RE = re.compile(rb"\bUID (\d+)")
LITERAL_RE = re.compile(rb"\{(\d+)\}$")


class ImapError(Exception):
    """Root of the IMAP channel's errors."""


class ImapTemporary(ImapError):
    """Connection refused or lost, a command timed out or failed: reconnect after a back-off."""


class ImapAuthFailed(ImapError):
    """The server refused the credentials (or the token could not be had): retry after a back-off,
    which only helps once the operator fixes the password or refreshes the token."""


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]  # aioimaplib ships no types
    """aioimaplib's protocol, answering a SASL error challenge during AUTHENTICATE (RFC 7628 §3.2.3)."""

    sasl_error: bytes = b""

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            self.sasl_error = line[1:].strip()
            self.send("")
            return
        super()._continuation(line)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]  # aioimaplib ships no types
    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop, conn_lost_cb: Any = None,
                      ssl_context: ssl.SSLContext | None = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


def tls_context(settings: MailboxSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    ctx = ssl.create_default_context(cafile=settings.ca_file or None)
    if not settings.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def login_secret(settings: MailboxSettings) -> str:
    """The password or the access token, read now (the operator may have changed it since)."""
    if settings.auth == "password" and settings.password:
        return settings.password
    secret_file = settings.password_file if settings.auth == "password" else settings.token_file
    if secret_file:
        try:
            return await asyncio.to_thread(read_secret, "", secret_file)
        except OSError as e:
            raise ImapAuthFailed(f"cannot read {secret_file}: {e.strerror}") from None
    try:
        proc = await asyncio.create_subprocess_exec(*shlex.split(settings.token_command),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    except OSError as e:
        raise ImapAuthFailed(f"token_command cannot run: {e.strerror or e}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), settings.login_timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ImapAuthFailed(f"token_command gave no token within {settings.login_timeout} s") from None
    token = out.decode(errors="replace").strip()
    if proc.returncode != 0 or not token:
        raise ImapAuthFailed(f"token_command exited {proc.returncode}: "
                             f"{err.decode(errors='replace').strip()[:200] or 'no token printed'}")
    return token


def uid_set(uids: Sequence[int]) -> str:
    """`1:3,7` for [1, 2, 3, 7]."""
    out: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        out.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(out)


def parse_fetch(lines: Sequence[bytes | bytearray]) -> dict[int, bytes]:
    """UID → raw message from a `UID FETCH … (UID BODY.PEEK[])` response as aioimaplib splits it: the
    line opening a FETCH ends in `{size}`, the literal follows as a bytearray, then the rest of the
    line (where a server may put `UID n` instead)."""
    found: dict[int, bytes] = {}
    for i, item in enumerate(lines):
        if not isinstance(item, bytearray) or i == 0:
            continue
        head = lines[i - 1]
        if isinstance(head, bytearray) or not LITERAL_RE.search(head) or b"FETCH" not in head:
            continue
        m = FETCH_UID_RE.search(head)
        if m is None and i + 1 < len(lines) and not isinstance(lines[i + 1], bytearray):
            m = FETCH_UID_RE.search(lines[i + 1])
        if m is not None:
            found[int(m.group(1))] = bytes(item)
    return found


class ImapSession:
    """A logged-in connection with the folder selected. Use `open()`, then `close()`."""

    def __init__(self, settings: MailboxSettings) -> None:
        self.settings = settings
        self.uidvalidity = 0
        self._lost = asyncio.Event()
        self._client: Any = None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def _on_lost(self, _exc: Exception | None) -> None:
        self._lost.set()

    async def _call(self, aw: Awaitable[T], what: str, timeout: float | None = None) -> T:
        """`aw`, unless the connection drops or `timeout` passes first (both: ImapTemporary)."""
        task = asyncio.ensure_future(aw)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=timeout or self.settings.timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # we are cancelled: so is the command
            task.cancel()
            raise
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            waited = timeout or self.settings.timeout
            reason = "connection lost" if self._lost.is_set() else f"no answer within {waited} s"
            raise ImapTemporary(f"{what}: {reason}")
        try:
            return task.result()
        except (aioimaplib.AioImapException, OSError, TimeoutError) as e:
            raise ImapTemporary(f"{what}: {type(e).__name__}: {e}") from e

    async def open(self) -> None:
        """Connect, log in, select the folder (and check the move target exists)."""
        s = self.settings
        self._client = _Client(s.host, s.port, timeout=s.timeout, conn_lost_cb=self._on_lost,
                               ssl_context=tls_context(s))
        await self._call(self._client.wait_hello_from_server(), f"connect to {s.host}:{s.port}")
        await self._login()
        r = await self._call(self._client.select(_quote(s.folder)), f"SELECT {s.folder}")
        if r.result != "OK":
            raise ImapTemporary(f"SELECT {s.folder}: {r.result} {_text(r.lines)}")
        found = next((m for line in r.lines if isinstance(line, bytes) and (m := UIDVALIDITY_RE.search(line))), None)
        if found is None:
            raise ImapTemporary(f"SELECT {s.folder}: the server sent no UIDVALIDITY")
        self.uidvalidity = int(found.group(1))
        if s.after_fetch == "move":
            st = await self._call(self._client.status(_quote(s.move_to), "(UIDNEXT)"), f"STATUS {s.move_to}")
            if st.result != "OK":
                raise ImapTemporary(f"move_to folder {s.move_to!r} is not usable: {_text(st.lines)}")

    async def _login(self) -> None:
        s = self.settings

        async def login() -> Any:
            secret = await login_secret(s)
            if s.auth == "password":
                return await self._client.login(s.username, secret)
            return await self._client.xoauth2(s.username, secret)

        try:
            r = await self._call(login(), f"{s.auth} login", timeout=s.login_timeout)
        except ImapTemporary as e:
            if self._lost.is_set():
                raise
            raise ImapAuthFailed(f"{e} (a token the server rejects without answering looks like this)") from None
        if r.result != "OK":
            detail = _text(r.lines)
            sasl = self._client.protocol.sasl_error
            if sasl:
                detail += f" (server said: {_b64_text(sasl)})"
            raise ImapAuthFailed(f"{s.auth} login as {s.username!r} refused: {r.result} {detail}".strip())

    @property
    def can_idle(self) -> bool:
        return bool(self._client.has_capability("IDLE"))

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending (`n:*` always matches the last message: filtered)."""
        r = await self._call(self._client.uid_search("UID", f"{last_uid + 1}:*", charset=None), "UID SEARCH")
        if r.result != "OK":
            raise ImapTemporary(f"UID SEARCH: {r.result} {_text(r.lines)}")
        words = r.lines[0].split() if r.lines and isinstance(r.lines[0], bytes) else []
        return sorted(u for w in words if w.isdigit() and (u := int(w)) > last_uid)

    async def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        """UID → raw message, fetched with BODY.PEEK[] (leaves \\Seen alone). A UID expunged meanwhile
        is simply absent."""
        # aioimaplib's FETCH timeout restarts with every chunk of data, so a big message is not cut off
        r = await self._call(self._client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"), "UID FETCH",
                             timeout=self.settings.timeout * max(1, len(uids)))
        if r.result != "OK":
            raise ImapTemporary(f"UID FETCH: {r.result} {_text(r.lines)}")
        return parse_fetch(r.lines)

    async def mark_done(self, uids: Sequence[int]) -> str | None:
        """Flag \\Seen or move to `move_to`, as configured. None when done; else the server's refusal."""
        s, c, uset = self.settings, self._client, uid_set(uids)
        if s.after_fetch == "seen":
            r = await self._call(c.uid("store", uset, "+FLAGS.SILENT", r"(\Seen)"), "UID STORE")
            return None if r.result == "OK" else f"UID STORE: {r.result} {_text(r.lines)}"
        target = _quote(s.move_to)
        if c.has_capability("MOVE"):
            r = await self._call(c.uid("move", uset, target), "UID MOVE")
            return None if r.result == "OK" else f"UID MOVE: {r.result} {_text(r.lines)}"
        r = await self._call(c.uid("copy", uset, target), "UID COPY")
        if r.result != "OK":
            return f"UID COPY: {r.result} {_text(r.lines)}"
        r = await self._call(c.uid("store", uset, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        if r.result != "OK":
            return f"UID STORE \\Deleted: {r.result} {_text(r.lines)}"
        # without UIDPLUS a plain EXPUNGE also removes what other clients flagged \Deleted
        expunge = c.uid("expunge", uset) if c.has_capability("UIDPLUS") else c.expunge()
        r = await self._call(expunge, "EXPUNGE")
        return None if r.result == "OK" else f"EXPUNGE: {r.result} {_text(r.lines)}"

    async def wait_for_mail(self, renew: float, stop: asyncio.Event) -> None:
        """IDLE until the server reports new mail (EXISTS), `renew` seconds pass, or `stop` is set."""
        c = self._client
        idle = await self._call(c.idle_start(timeout=renew), "IDLE")
        stopping = asyncio.ensure_future(stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while True:
                push = asyncio.ensure_future(c.wait_server_push(timeout=renew + self.settings.timeout))
                done, _ = await asyncio.wait({push, stopping, lost}, return_when=asyncio.FIRST_COMPLETED)
                if push not in done:
                    push.cancel()
                    break
                try:
                    lines = push.result()
                except TimeoutError:
                    break
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                if any(isinstance(line, bytes) and line.endswith(b"EXISTS") for line in lines):
                    break
        finally:
            stopping.cancel()
            lost.cancel()
        if self._lost.is_set():
            raise ImapTemporary("IDLE: connection lost")
        c.idle_done()
        await self._call(idle, "IDLE DONE")

    async def close(self) -> None:
        """LOGOUT (briefly) and drop the connection."""
        c = self._client
        if c is None:
            return
        if not self._lost.is_set() and c.get_state() in ("AUTH", "SELECTED"):
            with contextlib.suppress(ImapError):
                await self._call(c.logout(), "LOGOUT", timeout=min(5.0, self.settings.timeout))
        transport = getattr(c.protocol, "transport", None)
        if transport is not None:
            transport.close()
        client_task = getattr(c, "_client_task", None)
        if client_task is not None and not client_task.done():
            client_task.cancel()


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(lines: Sequence[bytes | bytearray]) -> str:
    return " ".join(bytes(line).decode(errors="replace") for line in lines if isinstance(line, bytes))[:300]


def _b64_text(data: bytes) -> str:
    try:
        return base64.b64decode(data, validate=True).decode(errors="replace")[:300]
    except ValueError:
        return data.decode(errors="replace")[:300]


__all__ = ["ImapAuthFailed", "ImapError", "ImapSession", "ImapTemporary", "login_secret", "parse_fetch", "uid_set"]
