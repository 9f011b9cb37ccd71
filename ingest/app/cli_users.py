"""`casegate users …`: the people and integrations that may use the API, and their tokens.

    casegate users add EMAIL --role ROLE [--name NAME]   # roles: integration, agent, supervisor, admin
    casegate users role EMAIL ROLE
    casegate users token EMAIL                            # the new token alone on the last line
    casegate users revoke TOKEN
    casegate users join QUEUE EMAIL                       # the user works the queue's cases
    casegate users list [--json]

A token is shown once, when it is made; the store keeps only its hash."""

from __future__ import annotations

import argparse
import sys

from casegate.config import Settings
from casegate.ingest.app.daemon import open_store
from casegate.ingest.terminal_text import dumps, printable
from casegate.rules.access import ROLES
from casegate.store import access


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    users = sub.add_parser("users", help="API users and tokens: add, role, token, revoke, join, list").add_subparsers(
        dest="action", required=True, title="actions", metavar="ACTION")
    add = users.add_parser("add", parents=[common], help="add a user with a role",
                           description="Add a user. Roles: integration (a system: changes any open case), agent "
                                       "(their own and their queues' cases), supervisor (any open case), admin "
                                       "(anything, reopens closed cases, manages users and queues).")
    add.add_argument("email", metavar="EMAIL", help="the user's email address (their login name)")
    add.add_argument("--role", required=True, type=str.lower, choices=ROLES, help="what the user may do")
    add.add_argument("--name", metavar="NAME", help="the name shown for the user (default: the email's local part)")
    role = users.add_parser("role", parents=[common], help="change a user's role")
    role.add_argument("email", metavar="EMAIL", help="the user's email address")
    role.add_argument("role", metavar="ROLE", type=str.lower, choices=ROLES, help=", ".join(ROLES))
    token = users.add_parser("token", parents=[common], help="make a new API token for a user",
                             description="Make a new API token for a user and print it, alone on the last line. "
                                         "It is shown only now; keep it as a secret. Clients send it as "
                                         "`Authorization: Bearer TOKEN`.")
    token.add_argument("email", metavar="EMAIL", help="the user's email address")
    revoke = users.add_parser("revoke", parents=[common], help="revoke an API token")
    revoke.add_argument("token", metavar="TOKEN", help="the token, as it was printed")
    join = users.add_parser("join", parents=[common], help="make a user a member of a queue")
    join.add_argument("queue", metavar="QUEUE", help="the queue's name, e.g. Support")
    join.add_argument("email", metavar="EMAIL", help="the user's email address")
    ls = users.add_parser("list", parents=[common], help="every user with role, queues and tokens in force")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_store(settings, migrate=False, create=False)
    try:
        if args.action == "add":
            user = await access.add_user(db, args.email, args.role, args.name)
            print(f"added {printable(user.email)} ({user.role}), id {user.id}; "
                  f"`casegate users token {printable(user.email)}` makes their token")
        elif args.action == "role":
            user = await access.set_role(db, args.email, args.role)
            print(f"{printable(user.email)} is now {user.role}")
        elif args.action == "token":
            token = await access.issue_token(db, args.email)
            print(f"a new API token for {printable(args.email.strip().lower())} (shown only now):", file=sys.stderr)
            print(token)
        elif args.action == "revoke":
            email = await access.revoke_token(db, args.token)
            print(f"revoked a token of {printable(email)}")
        elif args.action == "join":
            await access.add_member(db, args.queue, args.email)
            print(f"{printable(args.email.strip().lower())} works queue {printable(args.queue)}")
        else:
            users = await access.list_users(db)
            if args.json:
                print(dumps([{"Id": u.id, "Email": u.email, "Name": u.name, "Role": u.role, "IsActive": u.is_active,
                              "Queues": list(u.queues), "Tokens": u.tokens} for u in users], indent=2))
            else:
                print(f"{'EMAIL':32}  {'ROLE':11}  {'TOKENS':6}  QUEUES")
                for u in users:
                    print(f"{printable(u.email)[:32]:32}  {u.role:11}  {u.tokens:6}  "
                          f"{printable(', '.join(u.queues))}{'' if u.is_active else '  (inactive)'}")
                print(f"({len(users)} user{'s' if len(users) != 1 else ''})")
        return 0
    except access.AccessError as e:
        print(f"casegate: {printable(e)}", file=sys.stderr)
        return 1
    finally:
        await db.dispose()
