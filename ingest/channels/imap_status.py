"""`casegate mailboxes status [--json]`: what the running daemon last wrote to the IMAP state file,
for every configured mailbox (and any the file still knows that is no longer configured), with
whether the daemon process that wrote it is still alive on this host."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from casegate.config import Settings
from casegate.ingest.channels.imap_state import read_statuses, state_path
from casegate.ingest.terminal_text import dumps, printable


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _when(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


def mailbox_status(settings: Settings) -> list[dict[str, Any]]:
    stored = {s.name: s for s in read_statuses(state_path(settings.data_path))}
    configured = [m.name for m in settings.mailboxes]
    out = []
    for name in [*configured, *sorted(set(stored) - set(configured))]:
        st = stored.get(name)
        if st is None:
            out.append({"name": name, "configured": True, "state": "never run", "connected": False,
                        "daemon_running": False})
            continue
        row = st.as_dict()
        running = _alive(st.pid)
        row.update(configured=name in configured, daemon_running=running,
                   last_error_at=_when(st.last_error_at), last_success_at=_when(st.last_success_at),
                   updated_at=_when(st.updated_at))
        if not running and st.state != "stopped":
            row["connected"] = False  # what the file says was true while the daemon lived
        out.append(row)
    return out


def print_mailbox_status(settings: Settings, as_json: bool) -> None:
    rows = mailbox_status(settings)
    if as_json:
        print(dumps(rows, indent=2))
        return
    cols = [("name", 16), ("state", 13), ("connected", 9), ("uidvalidity", 11), ("last_uid", 8), ("fetched", 8),
            ("last_success_at", 25), ("last_error", 60)]
    print("  ".join(c.upper().ljust(w) for c, w in cols))
    stale = False
    for r in rows:
        state = r["state"]
        if not r["daemon_running"] and state not in ("stopped", "never run"):
            state, stale = f"{state}?", True
        values = {**r, "state": state, "connected": "yes" if r.get("connected") else "no"}
        print("  ".join(printable(values.get(c) if values.get(c) is not None else "-")[:w].ljust(w) for c, w in cols))
    note = "; `?` = the daemon that wrote this is no longer running" if stale else ""
    print(f"({len(rows)} mailbox{'es' if len(rows) != 1 else ''}{note})")
