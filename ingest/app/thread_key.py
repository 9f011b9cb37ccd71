"""The HMAC key of thread tokens (`store.thread_token`): `[threading] secret`, or a random key made once and
kept as `thread.key` in the data directory. Every process of a deployment needs the same key — the worker
signs acknowledgements with it, the REST API signs agents' replies — so the file is made atomically: the
first process to link its key into place wins and every other one reads that key."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from casegate.config import Settings

KEY_FILE = "thread.key"


def thread_secret(settings: Settings) -> bytes:
    """The HMAC key of thread tokens: configured, or made once and kept in the data directory."""
    if settings.threading.secret:
        return settings.threading.secret.encode()
    path = settings.data_path / KEY_FILE
    if not path.exists():
        _make_key(path)
    return path.read_text().strip().encode()


def _make_key(path: Path) -> None:
    """Write a new key to a file of its own, then link it to `path`, which fails if another process was first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
