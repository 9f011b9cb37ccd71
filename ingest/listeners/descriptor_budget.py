"""The process's file-descriptor budget. At start the soft RLIMIT_NOFILE is raised to the hard limit
(systemd starts services at a soft limit of 1,024 whatever the hard one), then the listeners'
connection caps are fitted into it: a `"auto"` cap takes an equal share of what is left once the
reserve and the explicit caps are set aside (at most AUTO_MAX), an explicit cap must fit, or the daemon
refuses to start naming the keys. However many clients connect, the listeners can then never take the
descriptors the store, the bus, the blobs and the other listeners need: no accept() failing with
EMFILE, and one listener full never stops the others."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from casegate.config import Settings
from casegate.ingest.listeners.connection_guard import ACCEPTS_PER_TURN, MAX_LINGERING

RESERVED = 128
"""Descriptors kept for everything but the listeners' connections: the case store and the local bus
(SQLite: the file, its WAL and shared memory per connection), the blob pack, Kafka and PostgreSQL
connections, outbound SMTP, media fetches, log files and the listening sockets (an embedded daemon at
rest holds about 30). Each IMAP mailbox adds one."""
PER_LISTENER = ACCEPTS_PER_TURN + MAX_LINGERING
"""Kept per running listener on top: connections accepted in one loop turn before the guard refuses
them, and refused ones lingering while the client reads the refusal."""
AUTO_MAX = 4096
"""The most connections an "auto" cap allows however high the limit (about 100 MB of idle sessions);
set a number to go higher."""
AUTO_MIN = 16
"""Below this an "auto" cap is useless: the daemon refuses to start and says to raise the limit."""


class DescriptorBudgetError(Exception):
    """The caps cannot fit in the open-file limit; the message names the keys and what to change."""


@dataclass(frozen=True)
class ConnectionCaps:
    """The cap on open connections of each listener that will run (0 = the listener does not run)."""

    limit: int
    smtp: int = 0
    http: int = 0
    admin: int = 0


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (as far as the kernel allows); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else _nr_open()


def _nr_open() -> int:
    """The kernel's ceiling on a process's descriptors (what an unlimited hard limit means on Linux)."""
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1048576


def plan_caps(settings: Settings, limit: int, *, smtp: bool, http: bool, admin: bool) -> ConnectionCaps:
    """The caps of the listeners that will run (`smtp`, `http`, `admin`) within `limit` descriptors.
    Raises DescriptorBudgetError when they cannot fit."""
    wanted: dict[str, int | str] = {}
    if smtp:
        wanted["smtp"] = settings.smtp.max_connections
    if http:
        wanted["http"] = settings.http.max_connections
    if admin:
        wanted["admin"] = settings.admin.max_connections
    reserve = RESERVED + len(settings.mailboxes) + PER_LISTENER * len(wanted)
    fixed = {name: v for name, v in wanted.items() if isinstance(v, int)}
    auto = [name for name, v in wanted.items() if v == "auto"]
    left = limit - reserve - sum(fixed.values())
    caps = dict(fixed)
    if auto:
        share = min(AUTO_MAX, left // len(auto))
        if share < AUTO_MIN:
            keys = " and ".join(f"{n}.max_connections" for n in auto)
            taken = "".join(f" + {n}.max_connections ({v})" for n, v in fixed.items())
            raise DescriptorBudgetError(
                f"the open-file limit {limit} (RLIMIT_NOFILE) leaves {max(left, 0)} descriptors for {keys} = \"auto\" "
                f"after {reserve} reserved{taken}; raise the limit (LimitNOFILE= in the systemd unit, ulimit -n) "
                f"or set {keys} to numbers that fit")
        caps.update(dict.fromkeys(auto, share))
    elif left < 0:
        keys = " + ".join(f"{n}.max_connections ({v})" for n, v in fixed.items())
        raise DescriptorBudgetError(
            f"{keys} + {reserve} descriptors reserved (store, bus, blobs, accept bursts) = {limit - left} exceed the "
            f"open-file limit {limit} (RLIMIT_NOFILE); lower them or raise the limit (LimitNOFILE= in the "
            "systemd unit, ulimit -n)")
    return ConnectionCaps(limit=limit, **caps)
