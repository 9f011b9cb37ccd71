"""What a listener is to the daemon, as a typing.Protocol: one way work comes in from outside — the SMTP
port, the IMAP mailboxes, the public HTTP port, the admin port — which the daemon (ingest/app/daemon.py)
starts, and stops in two phases around the worker's last batch:

1. `drain(timeout)`, before the worker finishes: take no new work and finish what is under way within
   `timeout` (SMTP answers 421, lets its hand-offs finish and closes its port; the IMAP mailboxes finish
   their batch and log out). A listener the worker does not wait for — the HTTP ports, which answer
   health checks and the routes reading the case store while the worker drains — has nothing to do;
2. `stop()`, once the worker has committed: close whatever is left (ports, connections, files).

Both are also called on a listener whose `start` failed half-way (the daemon keeps a listener before
starting it, so `Daemon.stop` undoes a failed start), and then do what little there is to do.

Readiness needs no member: a listener is up once `start` returned, and the admin listener starts last,
so an answer from `/readyz` means every listener is up.

Structural: a class fits by having these members, without naming `Listener`. The daemon holds its
listeners as `list[Listener]`, so mypy checks each: `ImapChannel` (ingest/channels/imap.py) as it is,
the SMTP server and the `HttpListener`s through small adapters in the daemon.
"""

from __future__ import annotations

from typing import Protocol


class Listener(Protocol):
    """A source of work the daemon starts and stops (SMTP, IMAP, HTTP, admin)."""

    @property
    def name(self) -> str:
        """Its config section, used in log lines and errors: smtp, imap, http, admin."""

    async def start(self) -> None:
        """Begin taking work in; OSError if its address cannot be had."""

    async def drain(self, timeout: float) -> None:
        """Take no new work and finish what is under way, within `timeout` seconds."""

    async def stop(self) -> None:
        """Close what is left; called after `drain`, once the worker has committed."""


__all__ = ["Listener"]
