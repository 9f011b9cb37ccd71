"""Test plugin: a throwaway Dovecot 2.3 (IMAP + LMTP) on loopback, one per test session, with a fake
OAuth2 identity provider so XOAUTH2 logins are checked for real (Dovecot's `oauth2` passdb asks it).

A pytest plugin (registered by `tests/conftest.py`), in the manner of `tests.services`: a missing
`dovecot` binary or a server that will not start skips the test, or fails it under
CASEGATE_REQUIRE_SERVICES=1.

- `dovecot` (session): a `Dovecot` on free ports in its own directory. Every user name logs in with
  the password `Dovecot.PASSWORD` (a static passdb restricted to PLAIN/LOGIN), so each test takes
  fresh mailboxes with `dovecot.new_user()`. XOAUTH2/OAUTHBEARER tokens are checked by introspection
  against the fake IdP: `dovecot.issue_token(user)` makes a token it accepts for that user only.
- `Dovecot.deliver(user, raw)`: delivers over LMTP (smtplib.LMTP), as a mail server would.
- `Dovecot.client(user)`: a second, ordinary IMAP client (stdlib imaplib) for looking at and
  changing the mailbox the way a person's mail program would.
"""

from __future__ import annotations

import imaplib
import json
import os
import secrets
import shutil
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.services import free_port, service_missing

CONFIG = """\
base_dir = {d}/run
state_dir = {d}/state
instance_name = casegate-test-{tag}
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
log_path = {d}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
login_trusted_networks = 127.0.0.0/8

passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
# Any user name with this password (so each test can take fresh mailboxes); never for OAuth mechanisms,
# or a token equal to the password would log in.
passdb {{
  driver = static
  mechanisms = plain login
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%n allow_all_users=yes
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Archive {{
    auto = create
    special_use = \\Archive
  }}
  mailbox Processed {{
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
protocol lmtp {{
  auth_username_format = %n
}}
mailbox_idle_check_interval = 1 secs
"""

OAUTH2 = """\
introspection_mode = post
introspection_url = http://127.0.0.1:{port}/introspect
username_attribute = username
active_attribute = active
active_value = true
"""


class FakeIdp:
    """The OAuth2 token introspection endpoint Dovecot asks (RFC 7662): active for issued tokens."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests = 0
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                token = parse_qs(self.rfile.read(length).decode()).get("token", [""])[0]
                idp.requests += 1
                user = idp.tokens.get(token)
                body = {"active": True, "username": user} if user else {"active": False}
                data = json.dumps(body).encode()
                self.send_response(200 if user else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-idp", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dovecot:
    PASSWORD = "password"

    def __init__(self, folder: Path, imap_port: int, lmtp_port: int, idp: FakeIdp) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.folder = folder
        self.imap_port = imap_port
        self.lmtp_port = lmtp_port
        self.idp = idp
        self.config = folder / "dovecot.conf"

    def new_user(self, prefix: str = "u") -> str:
        """A user name nobody has used yet in this session: an empty mailbox."""
        return f"{prefix}{secrets.token_hex(4)}"

    def issue_token(self, user: str) -> str:
        token = "tok-" + secrets.token_urlsafe(16)
        self.idp.tokens[token] = user
        return token

    def deliver(self, user: str, raw: bytes, sender: str = "ada@example.org") -> None:
        """Deliver one mail into `user`'s INBOX over LMTP (raises unless the server said 250)."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail(sender, [f"{user}@example.test"], raw)
            assert not refused, refused

    def deliver_many(self, user: str, raws: list[bytes], sender: str = "ada@example.org") -> None:
        """Several mails over one LMTP connection."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=60) as lmtp:
            for raw in raws:
                refused = lmtp.sendmail(sender, [f"{user}@example.test"], raw)
                assert not refused, refused

    def client(self, user: str, folder: str = "INBOX") -> imaplib.IMAP4:
        """A plain IMAP client logged in as `user` with `folder` selected (the caller logs out)."""
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        c.login(user, self.PASSWORD)
        c.select(folder)
        return c

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, str]:
        """UID → FLAGS text of every message in `folder` (read without changing anything)."""
        c = self.client(user, folder)
        try:
            _typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
            out: dict[int, str] = {}
            for item in data:
                if isinstance(item, bytes) and b"UID" in item:
                    text = item.decode()
                    uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
                    out[uid] = text.split("FLAGS (", 1)[1].split(")", 1)[0]
            return out
        finally:
            c.logout()

    def log_text(self) -> str:
        try:
            return (self.folder / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the master (it stops its children), SIGKILL after 5 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


    def close(self) -> None:
        """Stop the server and the IdP, remove the directory."""
        self.stop()
        self.idp.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_dovecot(ready_timeout: float = 10.0) -> Dovecot:
    """Start a private Dovecot (must run as root: it drops to the Debian `dovecot`, `dovenull` and
    `nobody` users) with its own directory under /tmp and free ports."""
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        service_missing("dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd)")
    if os.geteuid() != 0:
        service_missing("dovecot test peer needs root (it drops privileges to dovecot/dovenull/nobody)")
    # not under pytest's 0700 tmp tree: the mail processes run as `nobody` and must reach the Maildirs
    folder = Path(tempfile.mkdtemp(prefix="casegate-dovecot-"))
    folder.chmod(0o755)
    for sub in ("run", "state", "mail"):
        (folder / sub).mkdir()
    shutil.chown(folder / "mail", "nobody", "nogroup")
    idp = FakeIdp()
    server = Dovecot(folder, free_port(), free_port(), idp)
    (folder / "oauth2.conf.ext").write_text(OAUTH2.format(port=idp.port))
    server.config.write_text(CONFIG.format(d=folder, tag=secrets.token_hex(4), password=Dovecot.PASSWORD,
                                           imap=server.imap_port, lmtp=server.lmtp_port))
    # -F: in the foreground, so this Popen is the master and stopping it stops everything
    with (folder / "stderr.log").open("wb") as stderr:
        server.proc = subprocess.Popen([binary, "-F", "-c", str(server.config)], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr)
    end = time.monotonic() + ready_timeout
    while not (_listening(server.imap_port) and _listening(server.lmtp_port)):
        if server.proc.poll() is not None or time.monotonic() > end:
            text = (folder / "stderr.log").read_text(errors="replace") + server.log_text()
            server.stop()
            idp.close()
            service_missing(f"dovecot did not listen within {ready_timeout} s:\n{text[-2000:]}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The session's Dovecot (IMAP `.imap_port`, LMTP `.lmtp_port` on 127.0.0.1)."""
    server = start_dovecot()
    try:
        yield server
    finally:
        server.close()


__all__ = ["Dovecot", "FakeIdp", "start_dovecot"]
