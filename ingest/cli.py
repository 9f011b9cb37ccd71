"""The `casegate` command: run the daemon, migrate the store, look at cases and dead letters.

Bad settings print every offending key and the reason and exit 2; no traceback reaches the user.
Everything printed from the store, the bus or the daemon's state goes through ingest.terminal_text:
`printable` for text, `dumps` for `--json`, so no stranger's control character reaches the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from config import ConfigError, Settings, load_settings
from ingest.channels.imap_status import print_mailbox_status
from ingest.daemon import ROLES, Daemon, StartupError, open_store
from ingest.dead_letters import list_dead_letters, replay_dead_letters
from ingest.log_setup import configure_logging
from ingest.terminal_text import dumps, printable
from store import message_trace
from store.case_queries import list_cases, show_case
from store.database import Database
from store.errors import CaseNotFound
from store.migrate import upgrade

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", help="TOML settings file (default: $CASEGATE_CONFIG)")
    p = argparse.ArgumentParser(prog="casegate", description="Every way a customer reaches support, as cases.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--role", choices=ROLES, default=None,
                     help="run one part in this process: all (everything), ingest or worker (default: a "
                          "supervisor running [run] processes ingest processes and one worker)")
    db = sub.add_parser("db", help="case store schema").add_subparsers(dest="action", required=True)
    db.add_parser("upgrade", parents=[common], help="migrate the case store to the current schema")
    cases = sub.add_parser("cases", help="look at cases").add_subparsers(dest="action", required=True)
    ls = cases.add_parser("list", parents=[common], help="list cases")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--limit", type=int, default=1000)
    show = cases.add_parser("show", parents=[common], help="one case with its messages and timeline")
    show.add_argument("case_number", metavar="CASENUMBER")
    show.add_argument("--json", action="store_true")
    msgs = sub.add_parser("messages", help="where inbound messages went").add_subparsers(dest="action",
                                                                                         required=True)
    ex = msgs.add_parser("export", parents=[common], help="every inbound message and its outcome, as JSON lines")
    ex.add_argument("--since", type=_since, metavar="WHEN",
                    help="only messages received since WHEN: an ISO date or time (UTC unless it says), or an age "
                         "such as 30m, 12h, 7d")
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    ms = msgs.add_parser("show", parents=[common], help="where did this mail go?")
    ms.add_argument("message_id", metavar="MESSAGE-ID")
    ms.add_argument("--json", action="store_true")
    dlq = sub.add_parser("dlq", help="dead-lettered messages").add_subparsers(dest="action", required=True)
    dl = dlq.add_parser("list", parents=[common], help="dead letters not yet replayed")
    dl.add_argument("--json", action="store_true")
    dlq.add_parser("replay", parents=[common], help="put dead letters back on the inbound topic")
    mbx = sub.add_parser("mailboxes", help="IMAP mailboxes").add_subparsers(dest="action", required=True)
    mst = mbx.add_parser("status", parents=[common],
                         help="each mailbox's connection, watermark, counters and last error (from the running daemon)")
    mst.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"casegate: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    configure_logging(settings.log_level, json=args.command == "run")
    try:
        sys.exit(asyncio.run(_dispatch(args, settings)) or 0)
    except StartupError as e:
        print(f"casegate: {e}", file=sys.stderr)
        sys.exit(EXIT_USAGE if args.command == "run" else 1)
    except KeyboardInterrupt:
        sys.exit(130)


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        if args.role is None:
            from ingest.supervisor import Supervisor

            return await Supervisor(settings, args.config).run()
        await Daemon(settings, args.role).serve()
        return 0
    if args.command == "db":
        await asyncio.to_thread(upgrade, settings.store_url)
        print(f"case store migrated: {settings.store_url.split('@')[-1]}")
        return 0
    if args.command == "mailboxes":
        print_mailbox_status(settings, args.json)
        return 0
    if args.command == "dlq":
        return await (_dlq_list(settings, args.json) if args.action == "list" else _dlq_replay(settings))
    db = await open_store(settings, migrate=False)
    try:
        if args.command == "messages":
            return await (_messages_export(db, args.since, args.output) if args.action == "export"
                          else _messages_show(db, args.message_id, args.json))
        if args.action == "list":
            _print_cases(await list_cases(db, limit=args.limit), args.json)
            return 0
        try:
            case = await show_case(db, args.case_number)
        except CaseNotFound as e:
            print(f"casegate: {printable(e)}", file=sys.stderr)
            return 1
        print(dumps(case, indent=2) if args.json else _case_text(case))
        return 0
    finally:
        await db.dispose()


def _print_cases(cases: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(dumps(cases, indent=2))
        return
    cols = [("CaseNumber", 10), ("Status", 9), ("Priority", 8), ("Origin", 7), ("OwnerName", 16),
            ("ContactEmail", 28), ("Subject", 48)]
    print("  ".join(name.ljust(width) for name, width in cols))
    for c in cases:
        print("  ".join(printable(c.get(name) or "")[:width].ljust(width) for name, width in cols))
    print(f"({len(cases)} case{'s' if len(cases) != 1 else ''})")


def _case_text(case: dict[str, Any]) -> str:
    fields = ["CaseNumber", "Subject", "Status", "Priority", "Origin", "OwnerId", "ContactId", "SuppliedEmail",
              "ParentId", "IsClosed", "ClosedDate", "CreatedDate"]
    p = printable
    lines = [f"{f:>14}: {p(case.get(f))}" for f in fields]
    lines.append(f"\nMessages ({len(case['EmailMessages'])}):")
    for m in case["EmailMessages"]:
        lines.append(f"  {m['CreatedDate']}  {p(m['FromAddress'])}  {p(m['MessageIdentifier'])}  {p(m['Subject'])}")
    lines.append("\nTimeline:")
    for f in case["Feed"]:
        change = f" {p(f['Field'])}: {p(f['OldValue'])} -> {p(f['NewValue'])}" if f["Field"] else ""
        lines.append(f"  {f['CreatedDate']}  {p(f['Type'])}{change}  {p(f['Body'] or '')}")
    return "\n".join(lines)


def _since(value: str) -> datetime:
    """`--since`: an ISO date/time (UTC when it has no offset) or an age like 30m, 12h, 7d."""
    age = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if age:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date, time or age: {value!r} (examples: 2026-11-27, 2026-11-27T09:30, 12h, 7d)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def _messages_export(db: Database, since: datetime | None, output: str | None) -> int:
    # a CLI command with nothing else on its loop: blocking file writes are fine here
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: ASYNC230, SIM115
    n = 0
    try:
        async for entry in message_trace.export(db, since):
            out.write(dumps(entry) + "\n")
            n += 1
    finally:
        if output:
            out.close()
    print(f"{n} message{'s' if n != 1 else ''} exported", file=sys.stderr)
    return 0


async def _messages_show(db: Database, message_id: str, as_json: bool) -> int:
    found = await message_trace.find(db, message_id)
    if as_json:
        print(dumps(found, indent=2))
    p = printable
    for e in [] if as_json else found:
        if e["outcome"] in ("created", "threaded"):
            where = f"on case {e['case_number']} ({e['outcome']}, threading rule: {p(e['rule'])})"
            if e["reason"]:
                where += f"; {p(e['reason'])}"
        elif e["outcome"] == "suppressed":
            where = f"suppressed ({p(e['suppressed'])}): {p(e['reason'])}"
        else:
            where = f"dead-lettered: {p(e['reason'])} (see `casegate dlq list`)"
        print(f"{p(e['channel'])} {p(e['message_id'] or e['external_id'])}\n  from {p(e['sender'])}, "
              f"subject {p(repr(e['subject']))}\n  received {e['received_at']}, processed {e['processed_at']}\n"
              f"  {where}")
    if not found:
        print(f"casegate: no message {printable(message_id)} has been processed (it may still be on the bus, or "
              "never reached casegate: check the sending server's log)", file=sys.stderr)
        return 1
    return 0


async def _dlq_list(settings: Settings, as_json: bool) -> int:
    letters = await list_dead_letters(settings)
    if as_json:
        print(dumps(letters, indent=2))
    else:
        for d in letters:
            print(f"{d['offset']:>8}  {printable(d['failed_at'] or ''):32}  {printable(d['external_id'] or ''):40}  "
                  f"{printable(d['error'])}")
        print(f"({len(letters)} dead letter{'s' if len(letters) != 1 else ''} waiting)")
    return 0


async def _dlq_replay(settings: Settings) -> int:
    n = await replay_dead_letters(settings)
    print(f"replayed {n} dead letter{'s' if n != 1 else ''} onto {settings.bus.topic}")
    return 0
