"""Users, their roles and queues, and their bearer tokens in the case store: made by `casegate users`,
checked on every API request.

A token is `cg_` and 43 URL-safe characters (256 random bits). The store keeps only its SHA-256, the kind
(api: made from the CLI, no expiry; access and refresh: OAuth 2.0, with expiry) and a hint of its first
characters; the token itself is shown once. `authenticate` turns a token into the `Actor` that
rules.access judges, or None for a token that is unknown, revoked, expired or whose user is inactive."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from casegate.rules.access import ROLES, Actor
from casegate.store.database import Database, as_utc
from casegate.store.ids import claim_node, new_id
from casegate.store.models import ApiToken, Queue, QueueMember, User
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

TOKEN_PREFIX = "cg_"
KINDS = ("api", "access", "refresh")
LAST_USED_EVERY = timedelta(minutes=1)
"""LastUsedDate is written at most this often per token, so a busy integration does not write a row on
every request."""
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


class AccessError(ValueError):
    """A user or token operation that cannot be done; the message says why, naming the value."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    email: str
    name: str
    role: str
    is_active: bool
    queues: tuple[str, ...]
    tokens: int
    """Tokens in force (not revoked, not expired)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 128 or not _EMAIL.fullmatch(email):
        raise AccessError(f"not an email address: {value!r}")
    return email


def _role(value: str) -> str:
    role = value.strip().lower()
    if role not in ROLES:
        raise AccessError(f"unknown role {value!r} (one of {', '.join(ROLES)})")
    return role


async def add_user(db: Database, email: str, role: str, name: str | None = None,
                   now: datetime | None = None) -> UserInfo:
    """Make a user. A user with that email exists already: AccessError (roles change with `set_role`)."""
    email, role = _email(email), _role(role)
    name = (name or email.split("@", 1)[0]).strip()[:121] or email
    now = now or datetime.now(UTC)
    try:
        async with db.engine.begin() as conn:
            await claim_node(conn)
            if (await conn.execute(select(User.Id).where(User.Email == email))).first():
                raise AccessError(f"a user {email} exists already")
            await conn.execute(insert(User).values(
                Id=new_id("User"), Name=name, Email=email, IsActive=True, Role=role, CreatedDate=now))
    except IntegrityError:
        raise AccessError(f"a user {email} exists already") from None
    return await get_user(db, email)


async def set_role(db: Database, email: str, role: str) -> UserInfo:
    email, role = _email(email), _role(role)
    async with db.engine.begin() as conn:
        done = await conn.execute(update(User).where(User.Email == email).values(Role=role))
    if not done.rowcount:
        raise AccessError(f"no user {email}")
    return await get_user(db, email)


async def get_user(db: Database, email: str, now: datetime | None = None) -> UserInfo:
    email = _email(email)
    found = [u for u in await list_users(db, now) if u.email == email]
    if not found:
        raise AccessError(f"no user {email}")
    return found[0]


async def list_users(db: Database, now: datetime | None = None) -> list[UserInfo]:
    """Every user, by email, with their queues and how many tokens they hold in force."""
    now = now or datetime.now(UTC)
    async with db.session() as s:
        users = (await s.execute(select(User).order_by(User.Email))).scalars().all()
        queues: dict[str, list[str]] = {}
        for user_id, queue in await s.execute(
                select(QueueMember.UserId, Queue.Name).join(Queue, Queue.Id == QueueMember.QueueId)
                .order_by(Queue.Name)):
            queues.setdefault(user_id, []).append(queue)
        tokens: dict[str, int] = {user_id: n for user_id, n in await s.execute(
            select(ApiToken.UserId, func.count()).where(ApiToken.RevokedDate.is_(None))
            .where((ApiToken.ExpiresDate.is_(None)) | (ApiToken.ExpiresDate > now))
            .group_by(ApiToken.UserId))}
    return [UserInfo(u.Id, u.Email, u.Name, u.Role, u.IsActive, tuple(queues.get(u.Id, ())), tokens.get(u.Id, 0))
            for u in users]


async def issue_token(db: Database, email: str, kind: str = "api", ttl: timedelta | None = None,
                      now: datetime | None = None) -> str:
    """A new token for the user with this email, returned once (only its hash is kept)."""
    if kind not in KINDS:
        raise AccessError(f"unknown token kind {kind!r}")
    email, now = _email(email), now or datetime.now(UTC)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(User.Id, User.IsActive).where(User.Email == email))).first()
        if row is None:
            raise AccessError(f"no user {email}")
        if not row.IsActive:
            raise AccessError(f"user {email} is inactive")
        await conn.execute(insert(ApiToken).values(
            TokenHash=hash_token(token), UserId=row.Id, Kind=kind, Hint=token[:10], CreatedDate=now,
            ExpiresDate=now + ttl if ttl else None))
    return token


async def revoke_token(db: Database, token: str, now: datetime | None = None) -> str:
    """Revoke a token; returns the email of its user. Unknown or already revoked: AccessError."""
    now = now or datetime.now(UTC)
    async with db.engine.begin() as conn:
        row = (await conn.execute(select(ApiToken.RevokedDate, User.Email).join(User, User.Id == ApiToken.UserId)
                                  .where(ApiToken.TokenHash == hash_token(token.strip())))).first()
        if row is None:
            raise AccessError("no such token (tokens are matched whole: give the token as it was printed)")
        if row.RevokedDate is not None:
            when = as_utc(row.RevokedDate)
            raise AccessError(f"that token of {row.Email} was revoked already, at {when:%Y-%m-%d %H:%M} UTC")
        await conn.execute(update(ApiToken).where(ApiToken.TokenHash == hash_token(token.strip()))
                           .values(RevokedDate=now))
    return str(row.Email)


async def authenticate(db: Database, token: str, now: datetime | None = None,
                       kinds: tuple[str, ...] = ("api", "access")) -> Actor | None:
    """The actor a bearer token speaks for; None when the token is unknown, revoked, expired, of another
    kind, or its user is inactive."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    now, digest = now or datetime.now(UTC), hash_token(token)
    async with db.reading() as s:  # never waits for the write lock; LastUsedDate is written apart
        row = (await s.execute(
            select(ApiToken.Kind, ApiToken.ExpiresDate, ApiToken.RevokedDate, ApiToken.LastUsedDate,
                   User.Id, User.Role, User.IsActive)
            .join(User, User.Id == ApiToken.UserId).where(ApiToken.TokenHash == digest))).first()
        if (row is None or row.Kind not in kinds or row.RevokedDate is not None or not row.IsActive
                or (row.ExpiresDate is not None and as_utc(row.ExpiresDate) <= now)):
            return None
        queues = frozenset((await s.execute(select(QueueMember.QueueId).where(QueueMember.UserId == row.Id)))
                           .scalars())
    if row.LastUsedDate is None or now - as_utc(row.LastUsedDate) >= LAST_USED_EVERY:
        async with db.engine.begin() as conn:
            await conn.execute(update(ApiToken).where(ApiToken.TokenHash == digest).values(LastUsedDate=now))
    return Actor(row.Id, row.Role, queues)


async def add_member(db: Database, queue: str, email: str, now: datetime | None = None) -> None:
    """Make the user a member of the queue (by name); being one already is fine."""
    email, now = _email(email), now or datetime.now(UTC)
    async with db.engine.begin() as conn:
        user_id = (await conn.execute(select(User.Id).where(User.Email == email))).scalar_one_or_none()
        queue_id = (await conn.execute(select(Queue.Id).where(Queue.Name == queue))).scalar_one_or_none()
        if user_id is None:
            raise AccessError(f"no user {email}")
        if queue_id is None:
            raise AccessError(f"no queue {queue!r}")
        have = await conn.execute(select(QueueMember.Id).where(QueueMember.QueueId == queue_id,
                                                               QueueMember.UserId == user_id))
        if have.first() is None:
            await claim_node(conn)
            await conn.execute(insert(QueueMember).values(
                Id=new_id("QueueMember"), QueueId=queue_id, UserId=user_id, CreatedDate=now))
