"""The `casegate` command: run the daemon, migrate the store, look at cases and dead letters, manage
API users (ingest/app/cli_users.py).

Bad settings print every offending key and the reason and exit 2; no traceback reaches the user.
Everything printed from the store, the bus or the daemon's state goes through ingest.terminal_text:
`printable` for text, `dumps` for `--json`, so no stranger's control character reaches the terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from casegate.config import ConfigError, Settings, load_settings
from casegate.ingest.app import cli_users
from casegate.ingest.app.daemon import DATA_DIR_HINT, ROLES, Daemon, StartupError, open_store
from casegate.ingest.app.heap import settle_heap
from casegate.ingest.app.log_setup import configure_logging
from casegate.ingest.bus.dead_letters import list_dead_letters, replay_dead_letters
from casegate.ingest.channels.imap_status import print_mailbox_status
from casegate.ingest.terminal_text import dumps, printable
from casegate.rules.lifecycle import StatusModel
from casegate.store import message_trace
from casegate.store.case_queries import CaseFilter, CasePage, OwnerNotFound, find_cases, show_case
from casegate.store.database import Database
from casegate.store.errors import CaseNotFound
from casegate.store.migrate import MigrationError, StoreLocationError, migrate_store, store_name

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE",
                        help="TOML settings file (default: $CASEGATE_CONFIG; without either, the defaults and "
                             "CASEGATE_* variables: data in ./casegate-data)")
    p = argparse.ArgumentParser(prog="casegate", description="Every way a customer reaches support, as cases.",
                                epilog="`casegate COMMAND --help` lists a command's actions, `casegate COMMAND "
                                       "ACTION --help` their options.",
                                formatter_class=_CommandsHelp)
    sub = p.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")
    run = sub.add_parser("run", parents=[common], help="run the daemon",
                         description="Run the daemon: SMTP, IMAP and webhook channels, the worker, the admin port.")
    run.add_argument("--role", choices=ROLES, default=None,
                     help="run one part in this process: all (everything), ingest or worker (default: a "
                          "supervisor running [run] processes ingest processes and one worker)")
    db = sub.add_parser("db", help="the case store's schema: upgrade").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    db.add_parser("upgrade", parents=[common], help="migrate the case store to the current schema",
                  description="Migrate the case store to this casegate's schema. A SQLite store (the default, "
                              "<data_dir>/cases.db) is created with its directory if it is not there yet, and "
                              "is also migrated at start by `casegate run`; PostgreSQL only ever by this command.")
    cases = sub.add_parser("cases", help="look at cases: list, show").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    _case_list_arguments(cases.add_parser(
        "list", parents=[common], help="list cases, newest first, a page at a time",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List cases, newest first (by CreatedDate), a page at a time. Filters combine: a case\n"
                    "is listed when it matches every one given. The last line says which cases are shown,\n"
                    "of how many, and how to get the next page (on standard error with --json, whose\n"
                    "output is the page's Case records).",
        epilog="examples:\n  casegate cases list --status open --owner Support\n"
               "  casegate cases list --origin sms --since 7d --page 2\n"
               "  casegate cases list --since 2026-11-27 --limit 500 --json"))
    show = cases.add_parser("show", parents=[common], help="one case with its messages and timeline")
    show.add_argument("case_number", metavar="CASENUMBER", help="the case's CaseNumber, e.g. 00001000")
    _json_option(show)
    msgs = sub.add_parser("messages", help="where inbound messages went: export, show").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    ex = msgs.add_parser("export", parents=[common], help="every inbound message and its outcome, as JSON lines")
    ex.add_argument("--since", type=_since, metavar="WHEN",
                    help="only messages received since WHEN: an ISO date or time (UTC unless it says), or an age "
                         "such as 30m, 12h, 7d")
    ex.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    ms = msgs.add_parser("show", parents=[common], help="where did this mail go?")
    ms.add_argument("message_id", metavar="MESSAGE-ID",
                    help="the Message-ID in any form: abc@host, <abc@host>, or \"\" for an empty one")
    _json_option(ms)
    dlq = sub.add_parser("dlq", help="dead-lettered messages: list, replay").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    dl = dlq.add_parser("list", parents=[common], help="dead letters not yet replayed")
    _json_option(dl)
    dlq.add_parser("replay", parents=[common], help="put dead letters back on the inbound topic")
    mbx = sub.add_parser("mailboxes", help="IMAP mailboxes: status").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    mst = mbx.add_parser("status", parents=[common],
                         help="each mailbox's connection, watermark, counters and last error (from the running daemon)")
    _json_option(mst)
    cli_users.add_parsers(sub, common)
    return p


class _CommandsHelp(argparse.HelpFormatter):
    """argparse measures subcommand names two columns short of where it prints them, which pushes the
    help of the longest (`mailboxes`) onto a line of its own."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            self._action_max_length += 2


def _case_list_arguments(ls: argparse.ArgumentParser) -> None:
    ls.add_argument("--status", action="append", metavar="STATUS",
                    help="only cases with this Status: one of [case] statuses (by default New, Working, On Hold, "
                         "Escalated, Closed), or open (any open status) or closed (any closed one); letter case "
                         "ignored; repeat for several")
    ls.add_argument("--owner", metavar="OWNER",
                    help="only cases owned by this queue (by name) or user (by email or name); queue:NAME or "
                         "user:EMAIL names only that kind")
    ls.add_argument("--origin", metavar="ORIGIN",
                    help="only cases with this Origin: Email, Web, Phone, SMS, WhatsApp, Messenger, Instagram, "
                         "Telegram, X, Chat or your own; letter case ignored")
    ls.add_argument("--since", type=_since, metavar="WHEN",
                    help="only cases created since WHEN: an ISO date or time (UTC unless it says), or an age "
                         "such as 30m, 12h, 7d")
    ls.add_argument("--limit", type=_count(1), default=50, metavar="N", help="cases on a page (default: 50)")
    where = ls.add_mutually_exclusive_group()
    where.add_argument("--page", type=_count(1), metavar="N", help="show page N (1 is the newest cases; default: 1)")
    where.add_argument("--offset", type=_count(0), metavar="N", help="skip the N newest matching cases first")
    _json_option(ls, "the page as JSON, a list of Salesforce-shaped Case records, instead of a table")


def _json_option(p: argparse.ArgumentParser, prints: str = "JSON (exact values) instead of text") -> None:
    p.add_argument("--json", action="store_true", help=f"print {prints}")


def _statuses(values: Sequence[str], model: StatusModel) -> tuple[str, ...]:
    """`--status` values (a `[case]` Status in any letter case, or `open` / `closed`) as the Status values they
    stand for; ValueError naming the first one that is none."""
    out: list[str] = []
    for value in values:
        wanted = value.strip().lower()
        if wanted in ("open", "closed"):
            out += model.open if wanted == "open" else model.closed
            continue
        found = next((s for s in model.all if s.lower() == wanted), None)
        if found is None:
            raise ValueError(f"argument --status: unknown status {value!r} (one of {', '.join(model.all)}, or open)")
        out.append(found)
    return tuple(dict.fromkeys(out))


def _count(least: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = least - 1
        if n < least:
            raise argparse.ArgumentTypeError(f"not a whole number of at least {least}: {value!r}")
        return n

    return parse


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


class _SettledDaemon(Daemon):
    """`casegate run --role …` in one process: the heap is settled once it has started (ingest.app.heap)."""

    async def start(self) -> None:
        await super().start()
        settle_heap()


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        if args.role is None:
            from casegate.ingest.app.supervisor import Supervisor

            return await Supervisor(settings, args.config).run()
        await _SettledDaemon(settings, args.role).serve()
        return 0
    if args.command == "db":
        return await _db_upgrade(settings)
    if args.command == "users":
        return await cli_users.run(args, settings)
    if args.command == "mailboxes":
        print_mailbox_status(settings, args.json)
        return 0
    if args.command == "dlq":
        if missing := _no_bus_log(settings):
            print(f"casegate: {printable(missing)}", file=sys.stderr)
            return 1
        return await (_dlq_list(settings, args.json) if args.action == "list" else _dlq_replay(settings))
    statuses: tuple[str, ...] = ()
    if args.command == "cases" and args.action == "list":
        try:  # the [case] statuses are known once the settings are read: checked before the store is opened
            statuses = _statuses(args.status or (), StatusModel.of(settings.case))
        except ValueError as e:
            print(f"casegate cases list: error: {printable(e)}", file=sys.stderr)
            return EXIT_USAGE
    db = await open_store(settings, migrate=False, create=False)
    try:
        if args.command == "messages":
            return await (_messages_export(db, args.since, args.output) if args.action == "export"
                          else _messages_show(db, args.message_id, args.json))
        if args.action == "list":
            return await _list_cases(db, args, statuses)
        try:
            case = await show_case(db, args.case_number)
        except CaseNotFound as e:
            print(f"casegate: {printable(e)}", file=sys.stderr)
            return 1
        print(dumps(case, indent=2) if args.json else _case_text(case))
        return 0
    finally:
        await db.dispose()


async def _db_upgrade(settings: Settings) -> int:
    """`casegate db upgrade`: one line saying what became of which store; a failure is one line too (exit 2
    when the settings name a store that cannot be, 1 otherwise)."""
    try:
        before, after = await asyncio.to_thread(migrate_store, settings.store_url)
    except MigrationError as e:
        print(f"casegate: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(e, StoreLocationError) else 1
    name = printable(store_name(settings.store_url))
    if before == after:
        print(f"case store {name}: already at schema {after}")
    else:
        print(f"case store {name}: migrated to schema {after} (it was {'empty' if before is None else 'at ' + before})")
    return 0


def _no_bus_log(settings: Settings) -> str | None:
    """Why the dead letters cannot be read: the local bus log is not where the settings say (it is never
    created by a command that only looks at it)."""
    if settings.bus.driver != "local" or settings.bus_path.exists():
        return None
    where = settings.bus_path.absolute()
    if settings.bus.local.path:
        return f"no bus log at {where} (bus.local.path) — check bus.local.path"
    return f"no bus log at {where} — {DATA_DIR_HINT}"


async def _list_cases(db: Database, args: argparse.Namespace, statuses: tuple[str, ...]) -> int:
    where = CaseFilter(statuses=statuses, owner=args.owner, origin=args.origin, since=args.since)
    offset = args.offset if args.offset is not None else ((args.page or 1) - 1) * args.limit
    try:
        page = await find_cases(db, where, limit=args.limit, offset=offset)
    except OwnerNotFound as e:
        print(f"casegate: {printable(e)}", file=sys.stderr)
        return 1
    summary = _page_summary(page, by_offset=args.offset is not None, narrowed=where.narrows)
    if args.json:
        print(dumps(page.records, indent=2))
        print(summary, file=sys.stderr)
        return 0
    cols = [("CaseNumber", 10), ("Status", 9), ("Priority", 8), ("Origin", 9), ("OwnerName", 16),
            ("ContactEmail", 28), ("CreatedDate", 16), ("Subject", 48)]
    if page.records:
        print("  ".join(name.ljust(width) for name, width in cols))
    for c in page.records:
        shown = {**c, "CreatedDate": c["CreatedDate"][:16].replace("T", " ")}  # UTC, to the minute
        print("  ".join(printable(shown.get(name) or "")[:width].ljust(width) for name, width in cols))
    print(summary)
    return 0


def _page_summary(page: CasePage, *, by_offset: bool, narrowed: bool) -> str:
    """The line under the list: which cases these are, of how many, and the option that shows the next
    ones ("showing 51\u2013100 of 1,234 cases; next: --page 3", with an en dash)."""
    total, first, last = page.total, page.offset + 1, page.offset + len(page.records)
    cases = f"{total:,} case{'s' if total != 1 else ''}"
    if total == 0:
        return "no cases match these filters" if narrowed else "no cases"
    if not page.records:
        if by_offset:
            return f"no cases after the first {page.offset:,}: there are {cases}"
        return f"no cases on page {page.offset // page.limit + 1}: there are {cases}, the last page is " \
               f"--page {(total - 1) // page.limit + 1}"
    if first == 1 and last == total:
        return cases
    shown = f"showing {first:,}\u2013{last:,} of {cases}" if last > first else f"showing {first:,} of {cases}"
    if last == total:
        return shown
    return f"{shown}; next: " + (f"--offset {last}" if by_offset else f"--page {page.offset // page.limit + 2}")


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
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)  # in UTC: as the store keeps times


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
