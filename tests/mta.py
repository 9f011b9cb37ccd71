"""Real mail software in front of the SMTP channel: the swaks SMTP client and a Postfix relay.

A pytest plugin (registered by `tests/conftest.py`). Like tests.services, a missing tool skips the
test with the reason, unless CASEGATE_REQUIRE_SERVICES=1 (CI), where it fails it instead.

- `swaks` (fixture): runs the `swaks` CLI without blocking the test's loop (the daemon runs there);
  `Swaks.tls_available()` tells whether its STARTTLS support (Net::SSLeay) is installed.
- `postfix_relay` (fixture): a factory `await postfix_relay(target_port)` starting a **private
  Postfix instance** that relays every recipient to 127.0.0.1:`target_port` (a transport map
  `* smtp:[127.0.0.1]:port`, as in postfix_setup.sh) and listens itself on a free loopback port.
  Its config, queue and log live in a fresh temporary directory (`postfix -c DIR`), so the machine's
  own Postfix (/etc/postfix, the queue in /var/spool/postfix, port 25) is never touched, and no queue
  state survives from an earlier run. A deferred mail is retried every 2-3 s. Stopped and
  removed after the test. Needs root (Postfix's master runs as root and drops to `mail_owner`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port, service_missing

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


async def _run(*argv: str, timeout: float = 60) -> tuple[int, str]:
    """Run a command as an asyncio subprocess, so the daemon on the test's loop keeps serving while we
    wait; returns (exit code, stdout and stderr)."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", errors="replace")


# -- swaks ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SwaksResult:
    """One swaks session: its exit code and transcript (`-> `/` ~>` sent, `<- `/`<~ `/`<** ` replies)."""

    returncode: int
    transcript: str

    def replies(self) -> list[str]:
        """Every reply line of the server, in order, without swaks' direction marks."""
        return [m.group(1) for m in re.finditer(r"^<[-~*]{1,3} +(\d{3}[ -].*)$", self.transcript, re.M)]

    def final_reply(self) -> str:
        """The last reply before QUIT's 221: for a whole transaction, the answer to the end of DATA."""
        replies = [r for r in self.replies() if not r.startswith("221")]
        return replies[-1] if replies else ""


class Swaks:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    async def run(self, port: int, *args: str) -> SwaksResult:
        """`swaks --server 127.0.0.1:port ARGS...` (swaks exits 26 for a 4xx and a 5xx alike: read the reply)."""
        rc, out = await _run(self.binary, "--server", f"127.0.0.1:{port}", "--ehlo", "client.example.org",
                             "--timeout", "20", *args)
        return SwaksResult(rc, out)

    @staticmethod
    def tls_available() -> bool:
        """swaks only recommends Net::SSLeay (Debian: libnet-ssleay-perl); without it `--tls` fails."""
        perl = shutil.which("perl")
        return perl is not None and subprocess.run([perl, "-MNet::SSLeay", "-e", "1"], capture_output=True,
                                                   check=False).returncode == 0


@pytest.fixture
def swaks() -> Swaks:
    binary = shutil.which("swaks")
    if binary is None:
        service_missing("swaks not installed (apt-get install swaks libnet-ssleay-perl)")
    return Swaks(binary)


# -- Postfix --------------------------------------------------------------------------------------
# master.cf of the private instance: Debian's services without chroot (a chroot would need copies of
# /etc files that only Debian's init script makes), and smtpd on our own loopback port instead of 25.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix n - n 60 1 pickup
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
tlsmgr     unix - - n 1000? 1 tlsmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp       unix - - n - - smtp
relay      unix - - n - - smtp
showq      unix n - n - - showq
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
"""

# main.cf: relay everything to casegate, loopback only, log to a file (there is no syslog), and retry
# a deferred mail every 2-3 s. 1 s is the minimum Postfix accepts for queue_run_delay and both backoffs
# (qmgr exits "fatal: invalid queue_run_delay: 0 (min 1)"), but such a backoff races: the deferred
# queue gets a time stamp of now + backoff (whole seconds) and qmgr's scan takes any file stamped at
# most 1 s ahead, so with 1 s (and, near a second boundary, 2 s) qmgr can take the mail back at once,
# while the smtp process that deferred it still holds its lock; qmgr then parks it in the incoming
# queue for 60 s ("skipped, still being delivered"). With 3 s the next try is at least 1 s later.
# debug_peer_list logs the relay's SMTP conversation, so a test can read what Postfix declared
# (MAIL FROM:<...> SIZE=n BODY=8BITMIME) without a packet capture.
MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
myhostname = mta.example.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
transport_maps = texthash:{root}/etc/transport
maillog_file = {root}/postfix.log
maillog_file_prefixes = {root}
syslog_name = postfix-casegate-test
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtp_connect_timeout = 5s
queue_run_delay = 1s
minimal_backoff_time = 3s
maximal_backoff_time = 3s
bounce_queue_lifetime = 10m
maximal_queue_lifetime = 10m
debug_peer_list = 127.0.0.1
debug_peer_level = 1
"""


class PostfixRelay:
    """A private Postfix instance (config, queue and log under `root`) relaying to casegate."""

    def __init__(self, postfix: str, postqueue: str, root: Path, port: int) -> None:
        self.postfix = postfix
        self.postqueue = postqueue
        self.root = root
        self.port = port
        self.config_dir = root / "etc"
        self.log_path = root / "postfix.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_log(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first log line matching `pattern` (regex), waiting for Postfix to write it."""
        end = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.log_text(), re.M)
            if found:
                return found
            if time.monotonic() > end:
                raise AssertionError(f"no Postfix log line matches {pattern!r}:\n{self.log_text()}")
            await asyncio.sleep(0.1)

    async def queue(self) -> list[dict[str, Any]]:
        """`postqueue -j`: one JSON object per queued mail (queue_name, recipients[].delay_reason ...)."""
        rc, out = await _run(self.postqueue, "-c", str(self.config_dir), "-j")
        assert rc == 0, out
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    async def wait_queue(self, pred: Callable[[list[dict[str, Any]]], bool],
                         timeout: float = 30) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while True:
            queued = await self.queue()
            if pred(queued) or time.monotonic() > end:
                return queued
            await asyncio.sleep(0.1)

    async def flush(self) -> None:
        """`postqueue -f`: attempt delivery of every queued mail now."""
        rc, out = await _run(self.postqueue, "-c", str(self.config_dir), "-f")
        assert rc == 0, out

    def _master_pid(self) -> int | None:
        try:
            return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self._master_pid()
        # `abort` signals the master (which takes its children down) without `stop`'s 1 s sleep loop
        subprocess.run([self.postfix, "-c", str(self.config_dir), "abort"], capture_output=True, timeout=30,
                       check=False)
        end = time.monotonic() + 10
        while pid is not None and _running(pid):
            if time.monotonic() > end:  # master would not go: do not leave it relaying to a dead port
                os.killpg(pid, signal.SIGKILL)
                break
            time.sleep(0.02)
        shutil.rmtree(self.root, ignore_errors=True)


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie does not: the daemonized master is not our child to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _postfix_tools() -> tuple[str, str]:
    postfix = shutil.which("postfix", path=SBIN_PATH)
    postqueue = shutil.which("postqueue", path=SBIN_PATH)
    if postfix is None or postqueue is None:
        service_missing("Postfix not installed (apt-get install postfix)")
    if os.geteuid() != 0:
        service_missing("a Postfix instance needs root (its master runs as root)")
    return postfix, postqueue


def start_postfix_relay(target_port: int, ready_timeout: float = 10) -> PostfixRelay:
    """Configure and start a private Postfix instance relaying all mail to 127.0.0.1:`target_port`."""
    postfix, postqueue = _postfix_tools()
    root = Path(tempfile.mkdtemp(prefix="casegate-postfix-"))
    root.chmod(0o755)  # Postfix's unprivileged daemons must reach the queue below it
    for sub in ("etc", "queue", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", user="postfix")
    port = free_port()
    (root / "etc" / "main.cf").write_text(MAIN_CF.format(root=root))
    (root / "etc" / "master.cf").write_text(MASTER_CF.format(port=port))
    (root / "etc" / "transport").write_text(f"*\tsmtp:[127.0.0.1]:{target_port}\n")
    past = time.time() - 60  # Postfix waits (in 300 ms naps) until a just-written main.cf looks settled
    for conf in (root / "etc").iterdir():
        os.utime(conf, (past, past))
    relay = PostfixRelay(postfix, postqueue, root, port)
    # `start` first creates the queue directories with Postfix's owners (post-install create-missing)
    done = subprocess.run([postfix, "-c", str(relay.config_dir), "start"], capture_output=True, text=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        relay.stop()
        raise RuntimeError(f"postfix start failed ({done.returncode}): {done.stdout}{done.stderr}")
    end = time.monotonic() + ready_timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return relay
        except OSError:
            if time.monotonic() > end:
                text = relay.log_text()
                relay.stop()
                raise RuntimeError(f"Postfix smtpd on port {port} did not come up:\n{text}") from None
            time.sleep(0.05)


@pytest.fixture
def postfix_relay() -> Iterator[Callable[[int], Awaitable[PostfixRelay]]]:
    """`relay = await postfix_relay(casegate_smtp_port)`; every relay started is stopped afterwards."""
    started: list[PostfixRelay] = []

    async def start(target_port: int) -> PostfixRelay:
        relay = await asyncio.to_thread(start_postfix_relay, target_port)
        started.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in started:
            print(f"--- Postfix log ({relay.log_path}):\n{relay.log_text()}")  # shown when the test failed
            relay.stop()


__all__ = ["PostfixRelay", "Swaks", "SwaksResult", "start_postfix_relay"]
