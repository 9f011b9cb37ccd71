"""The IMAP channel against a real Dovecot on loopback (tests/dovecot.py): mail delivered over LMTP
becomes a case through the real in-process pipeline; IDLE, the watermark, flag/move only after the
bus has the message, restarts and crashes, other clients, failing logins and XOAUTH2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from casegate.config import ConfigError, MailboxSettings, Settings, load_settings
from casegate.ingest.bus.publisher import Publisher
from casegate.ingest.channels.imap import MailboxWatcher
from casegate.ingest.channels.imap_state import ImapState, read_statuses, state_path
from casegate.ingest.envelope import Envelope

from tests.dovecot import Dovecot, start_dovecot
from tests.ingest.test_metrics import delta
from tests.pipeline import Pipeline, mail, settings_for, start_pipeline

CASEGATE = str(Path(sys.executable).parent / "casegate")


def mailbox(dv: Dovecot, user: str, name: str = "support", **overrides: Any) -> dict[str, Any]:
    """A `[[mailboxes]]` entry for `user` on the test Dovecot: plain text, no polling to speak of."""
    return {"name": name, "host": "127.0.0.1", "port": dv.imap_port, "tls": False, "username": user,
            "password": Dovecot.PASSWORD, "routing_address": "support@localhost", "poll_interval": 3600,
            "retry_initial": 0.1, "retry_max": 1.0, "timeout": 10, "login_timeout": 8, **overrides}


async def until(pred: Callable[[], bool], timeout: float = 15, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def watcher(p: Pipeline, name: str = "support") -> MailboxWatcher:
    assert p.daemon.imap is not None
    return next(w for w in p.daemon.imap.watchers if w.settings.name == name)


async def flags(dv: Dovecot, user: str, folder: str = "INBOX") -> dict[int, str]:
    return await asyncio.to_thread(dv.flags, user, folder)


async def deliver(dv: Dovecot, user: str, raw: bytes) -> None:
    await asyncio.to_thread(dv.deliver, user, raw)


async def readyz(p: Pipeline) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{p.daemon.admin_port}/readyz") as r:
        body: dict[str, Any] = await r.json()
        return r.status, body


@pytest.fixture
def private_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of this test's own: failed logins make Dovecot slow down every later login from
    127.0.0.1 (its auth penalty), which must not leak into other tests."""
    server = start_dovecot()
    try:
        yield server
    finally:
        server.close()


# -- the path ---------------------------------------------------------------------------------------
async def test_mail_delivered_over_lmtp_becomes_a_case_and_is_flagged_seen(
        deployment_settings: Callable[..., Settings], dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    raw, msgid = mail("Printer on fire", "It is on fire.")
    await deliver(dovecot, user, raw)
    assert "\\Seen" not in (await flags(dovecot, user))[1]
    p = await start_pipeline(deployment_settings(mailboxes=[mailbox(dovecot, user)]))
    try:
        cases = await p.wait_for(lambda cs: len(cs) == 1)
        assert len(cases) == 1
        assert (cases[0]["Subject"], cases[0]["Origin"], cases[0]["ContactEmail"]) == (
            "Printer on fire", "Email", "ada@example.org")
        shown = await p.case(cases[0]["CaseNumber"])
        assert shown["EmailMessages"][0]["MessageIdentifier"] == msgid
        w = watcher(p)
        await until(lambda: w.status.last_uid == 1, what="watermark")
        assert "\\Seen" in (await flags(dovecot, user))[1]
        [st] = read_statuses(state_path(p.settings.data_path))
        assert (st.name, st.last_uid, st.fetched, st.connected) == ("support", 1, 1, True)
        assert st.uidvalidity and st.last_success_at and st.source.startswith(user)
    finally:
        await p.daemon.stop()
    assert read_statuses(state_path(p.settings.data_path))[0].state == "stopped"


async def test_idle_picks_up_new_mail_without_waiting_for_a_poll(tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=[mailbox(dovecot, user)]))
    try:
        w = watcher(p)
        await until(lambda: w.status.state == "idle" and w.status.last_success_at is not None, what="IDLE")
        status, body = await readyz(p)
        assert status == 200 and body["status"] == "ready"
        assert body["mailboxes"]["support"]["healthy"] and body["mailboxes"]["support"]["state"] == "idle"
        started = time.monotonic()
        await deliver(dovecot, user, mail("while idling")[0])
        assert len(await p.wait_for(lambda cs: len(cs) == 1, timeout=10)) == 1
        latency = time.monotonic() - started
        assert latency < 5, latency  # Dovecot pushes after ~0.5 s; the poll interval is an hour
        await until(lambda: w.status.state == "idle", what="back to IDLE")
        stopping = time.monotonic()
    finally:
        await p.daemon.stop()
    assert time.monotonic() - stopping < 5  # SIGTERM ends IDLE at once, logs out


async def test_idle_is_renewed_with_a_full_scan_and_polling_works_without_idle(
        tmp_path: Path, dovecot: Dovecot) -> None:
    renewing, polling = dovecot.new_user(), dovecot.new_user()
    boxes = [mailbox(dovecot, renewing, "renewing", idle_renew=1),
             mailbox(dovecot, polling, "polling", idle=False, poll_interval=0.3)]
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=boxes))
    try:
        r, q = watcher(p, "renewing"), watcher(p, "polling")
        await until(lambda: r.status.last_success_at is not None and q.status.last_success_at is not None)
        assert (r.status.state, q.status.state) == ("idle", "polling")
        first = r.status.last_success_at
        await until(lambda: (r.status.last_success_at or 0) > (first or 0) + 1.5, timeout=5, what="IDLE renewed")
        await deliver(dovecot, renewing, mail("after renewals")[0])
        await deliver(dovecot, polling, mail("found by a poll")[0])
        assert len(await p.wait_for(lambda cs: len(cs) == 2, timeout=10)) == 2
    finally:
        await p.daemon.stop()


async def test_move_to_a_folder_after_the_hand_off(tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    for i in range(3):
        await deliver(dovecot, user, mail(f"move me {i}")[0])
    box = mailbox(dovecot, user, after_fetch="move", move_to="Processed", fetch_batch=2)
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=[box]))
    try:
        assert len(await p.wait_for(lambda cs: len(cs) == 3)) == 3
        await until(lambda: watcher(p).status.last_uid == 3, what="watermark")
        assert await flags(dovecot, user) == {}
        assert len(await flags(dovecot, user, "Processed")) == 3
    finally:
        await p.daemon.stop()


# -- acknowledge only after the bus has it ----------------------------------------------------------
async def test_bus_failing_leaves_the_mail_unseen_and_it_is_processed_once_after_recovery(
        tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, bus={"local": {"busy_timeout": 0.3}},
                                          mailboxes=[mailbox(dovecot, user)]))
    try:
        w = watcher(p)
        await until(lambda: w.status.state == "idle", what="IDLE")
        holder = sqlite3.connect(p.settings.bus_path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another process holds the log's write lock: the bus cannot write
        try:
            before = await p.metrics()
            await deliver(dovecot, user, mail("during the outage")[0])
            await until(lambda: w.status.state == "retrying", what="hand-off failure")
            assert "Bus" in (w.status.last_error or ""), w.status.last_error
            end = time.monotonic() + 15
            while delta(before, await p.metrics(), "casegate_ingest_handoff_failures_total", stage="bus") < 3:
                assert time.monotonic() < end, "not several hand-off attempts"  # several attempts, each failing
                await asyncio.sleep(0.05)
            assert "\\Seen" not in (await flags(dovecot, user))[1]
            assert read_statuses(state_path(p.settings.data_path))[0].last_uid == 0
            assert await p.cases() == []
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await p.wait_for(lambda cs: len(cs) == 1)
        await until(lambda: w.status.last_uid == 1 and w.status.state == "idle", what="watermark")
        await p.wait_idle()
        assert len(await p.cases()) == 1
        assert "\\Seen" in (await flags(dovecot, user))[1]
        assert w.status.fetched == 1
    finally:
        await p.daemon.stop()


@dataclass(frozen=True)
class StallAfterPublish(Publisher):
    """The real publisher, then the process "dies": it never returns, so the flag and the watermark
    never happen (the test kills the task there)."""

    published: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, envelope: Envelope) -> None:
        await super().publish(envelope)
        self.published.set()
        await asyncio.Event().wait()


async def test_a_crash_between_publish_and_flag_makes_no_duplicate_case(tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    await deliver(dovecot, user, mail("published, then the crash")[0])
    p = await start_pipeline(settings_for("local-sqlite", tmp_path))
    state = ImapState(state_path(p.settings.data_path))
    box = MailboxSettings(**mailbox(dovecot, user))
    try:
        stalling = StallAfterPublish(p.daemon.bus, p.daemon.blobs, p.settings.bus.topic)
        first = asyncio.create_task(MailboxWatcher(box, stalling, state).run())
        await asyncio.wait_for(stalling.published.wait(), 15)
        first.cancel()  # killed after the bus write, before the flag and the watermark
        with contextlib.suppress(asyncio.CancelledError):
            await first
        assert "\\Seen" not in (await flags(dovecot, user))[1]
        assert (await state.load("support")).last_uid == 0  # type: ignore[union-attr]

        again = MailboxWatcher(box, Publisher(p.daemon.bus, p.daemon.blobs, p.settings.bus.topic), state)
        second = asyncio.create_task(again.run())
        await until(lambda: again.status.last_uid == 1, what="watermark after restart")
        await p.wait_for(lambda cs: len(cs) == 1)
        await p.wait_idle()
        assert p.daemon.worker is not None and p.daemon.worker.processed == 2  # published twice ...
        assert len(await p.cases()) == 1  # ... one case
        assert "\\Seen" in (await flags(dovecot, user))[1]
        again.stop()
        await asyncio.wait_for(second, 10)
    finally:
        await state.close()
        await p.daemon.stop()


# -- the watermark, not \Seen -----------------------------------------------------------------------
async def test_mail_another_client_marked_read_is_still_fetched(tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    for i in range(2):
        await deliver(dovecot, user, mail(f"read elsewhere {i}")[0])

    def mark_all_read() -> None:
        c = dovecot.client(user)
        try:
            c.uid("STORE", "1:*", "+FLAGS", "(\\Seen)")
        finally:
            c.logout()

    await asyncio.to_thread(mark_all_read)
    assert all("\\Seen" in f for f in (await flags(dovecot, user)).values())
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=[mailbox(dovecot, user)]))
    try:
        assert len(await p.wait_for(lambda cs: len(cs) == 2)) == 2
        await until(lambda: watcher(p).status.state == "idle", what="IDLE")
        await deliver(dovecot, user, mail("read at once by a person")[0])
        await asyncio.to_thread(mark_all_read)
        assert len(await p.wait_for(lambda cs: len(cs) == 3)) == 3
    finally:
        await p.daemon.stop()


async def test_uidvalidity_change_rescans_the_folder_and_dedupe_keeps_one_case_each(
        tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    first, _ = mail("before the folder was recreated")
    second, _ = mail("after the folder was recreated")

    def recreate(raws: list[bytes], delete: bool) -> None:
        c = dovecot.client(user)
        try:
            if delete:
                c.select("INBOX")
                assert c.delete("Support")[0] == "OK"
            assert c.create("Support")[0] == "OK"
            for raw in raws:
                assert c.append("Support", None, None, raw)[0] == "OK"
        finally:
            c.logout()

    await asyncio.to_thread(recreate, [first], False)
    settings = settings_for("local-sqlite", tmp_path, mailboxes=[mailbox(dovecot, user, folder="Support")])
    p = await start_pipeline(settings)
    try:
        await p.wait_for(lambda cs: len(cs) == 1)
        await until(lambda: watcher(p).status.last_uid == 1, what="watermark")
        old_validity = watcher(p).status.uidvalidity
    finally:
        await p.daemon.stop()
    assert old_validity is not None  # Dovecot's UIDVALIDITY is a time in seconds: the recreated folder's is later
    await until(lambda: time.time() >= old_validity + 1, what="the next second")
    await asyncio.to_thread(recreate, [first, second], True)
    p = await start_pipeline(settings)
    try:
        cases = await p.wait_for(lambda cs: len(cs) == 2)
        w = watcher(p)
        await until(lambda: w.status.last_uid == 2, what="rescan")
        await p.wait_idle()
        assert w.status.uidvalidity != old_validity
        assert sorted(c["Subject"] for c in await p.cases()) == sorted(c["Subject"] for c in cases)
        assert len(await p.cases()) == 2  # the first mail came again and was recognised
    finally:
        await p.daemon.stop()


# -- failures stay in their mailbox -----------------------------------------------------------------
async def test_lost_connection_reconnects_with_back_off_and_goes_on(tmp_path: Path, dovecot: Dovecot) -> None:
    user = dovecot.new_user()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=[mailbox(dovecot, user)]))
    try:
        w = watcher(p)
        await until(lambda: w.status.state == "idle", what="IDLE")
        kicked = await asyncio.to_thread(subprocess.run, ["doveadm", "-c", str(dovecot.config), "kick", user],
                                         capture_output=True, text=True, check=False)
        assert kicked.returncode == 0, kicked.stderr
        await until(lambda: w.status.reconnects >= 1, what="reconnect")
        assert w.status.last_error and "connection lost" in w.status.last_error
        await until(lambda: w.status.state == "idle", what="IDLE again")
        await deliver(dovecot, user, mail("after the reconnect")[0])
        assert len(await p.wait_for(lambda cs: len(cs) == 1)) == 1
    finally:
        await p.daemon.stop()


def _toml(data_dir: Path, boxes: list[dict[str, Any]]) -> str:
    lines = [f'data_dir = "{data_dir}"']
    for b in boxes:
        lines.append("[[mailboxes]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in b.items()]
    return "\n".join(lines) + "\n"


async def test_a_mailbox_with_a_wrong_password_degrades_readyz_and_the_others_still_work(
        tmp_path: Path, private_dovecot: Dovecot) -> None:
    dv = private_dovecot
    good, bad = dv.new_user(), dv.new_user()
    await deliver(dv, good, mail("for the good mailbox")[0])
    await deliver(dv, bad, mail("for the bad mailbox")[0])
    boxes = [mailbox(dv, good, "good"), mailbox(dv, bad, "bad", password="wrong")]
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=boxes))
    try:
        await p.wait_for(lambda cs: len(cs) == 1)
        b = watcher(p, "bad")
        await until(lambda: b.status.state == "auth_failed", what="login refused")
        assert b.status.auth_failures >= 1 and "AUTHENTICATIONFAILED" in (b.status.last_error or "")
        status, body = await readyz(p)
        assert status == 200 and body["status"] == "degraded"
        assert body["mailboxes"]["good"]["healthy"] is True
        assert body["mailboxes"]["bad"]["healthy"] is False and body["mailboxes"]["bad"]["state"] == "auth_failed"
        await deliver(dv, good, mail("still flowing")[0])
        assert len(await p.wait_for(lambda cs: len(cs) == 2)) == 2

        config = tmp_path / "casegate.toml"
        config.write_text(_toml(p.settings.data_path.resolve(), boxes))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")}
        out = await asyncio.to_thread(subprocess.run, [CASEGATE, "mailboxes", "status", "--json", "-c", str(config)],
                                      capture_output=True, text=True, env=env, check=True, timeout=30)
        rows = {r["name"]: r for r in json.loads(out.stdout)}
        assert rows["good"]["connected"] is True and rows["good"]["last_uid"] == 2 and rows["good"]["fetched"] == 2
        assert rows["good"]["daemon_running"] is True
        assert rows["bad"]["connected"] is False and rows["bad"]["auth_failures"] >= 1
        assert "AUTHENTICATIONFAILED" in rows["bad"]["last_error"]
        table = await asyncio.to_thread(subprocess.run, [CASEGATE, "mailboxes", "status", "-c", str(config)],
                                        capture_output=True, text=True, env=env, check=True, timeout=30)
        assert "auth_failed" in table.stdout and "good" in table.stdout
    finally:
        await p.daemon.stop()


async def test_xoauth2_token_is_accepted_and_a_rejected_token_fails_fast_then_a_refreshed_one_works(
        tmp_path: Path, private_dovecot: Dovecot) -> None:
    dv = private_dovecot
    good, bad = dv.new_user(), dv.new_user()
    await deliver(dv, good, mail("oauth mailbox")[0])
    await deliver(dv, bad, mail("waits for a token")[0])
    token_file = tmp_path / "token"
    token_file.write_text("expired-token\n")
    printer = f"echo {dv.issue_token(good)}"
    boxes = [mailbox(dv, good, "oauth", auth="xoauth2", password="", token_command=printer),
             mailbox(dv, bad, "expired", auth="xoauth2", password="", token_file=str(token_file),
                     login_timeout=10)]
    started = time.monotonic()
    p = await start_pipeline(settings_for("local-sqlite", tmp_path, mailboxes=boxes))
    try:
        await p.wait_for(lambda cs: len(cs) == 1)
        assert watcher(p, "oauth").status.connected
        b = watcher(p, "expired")
        await until(lambda: b.status.auth_failures >= 1, timeout=9, what="rejected token reported")
        assert time.monotonic() - started < 9  # answered, not the 10 s login timeout (aioimaplib alone hangs)
        assert b.status.state == "auth_failed" and "401" in (b.status.last_error or ""), b.status.last_error
        figures = await p.metrics()  # the metric an operator alerts on
        assert figures[("casegate_imap_auth_failures_total", (("mailbox", "expired"),))] >= 1
        assert figures[("casegate_imap_connected", (("mailbox", "expired"),))] == 0
        assert figures[("casegate_imap_connected", (("mailbox", "oauth"),))] == 1
        assert figures[("casegate_imap_fetched_total", (("mailbox", "oauth"),))] >= 1
        token_file.write_text(dv.issue_token(bad))  # the operator refreshes the token
        assert len(await p.wait_for(lambda cs: len(cs) == 2, timeout=30)) == 2
        assert b.status.connected
    finally:
        await p.daemon.stop()


# -- configuration ----------------------------------------------------------------------------------
def test_a_mailbox_routing_address_must_be_a_routing_address(tmp_path: Path) -> None:
    path = tmp_path / "casegate.toml"
    path.write_text(_toml(tmp_path, [{"name": "sales", "host": "imap.example.com", "username": "u",
                                      "password": "p", "routing_address": "sales@example.com"}]))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert "mailboxes[0].routing_address" in text and "sales@example.com" in text and "[[routing]]" in text
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEGATE_")}
    run = subprocess.run([CASEGATE, "mailboxes", "status", "-c", str(path)], capture_output=True, text=True,
                         env=env, check=False, timeout=30)
    assert run.returncode == 2 and "mailboxes[0].routing_address" in run.stderr


@pytest.mark.parametrize(("entry", "message"), [
    ({"password": "p", "password_file": "/x"}, "exactly one of password or password_file"),
    ({"auth": "xoauth2"}, "exactly one of token_command or token_file"),
    ({"password": "p", "after_fetch": "move"}, "needs move_to"),
    ({"password": "p", "idle_renew": 1800}, "idle_renew"),
])
def test_mailbox_settings_errors_name_the_key(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    path = tmp_path / "casegate.toml"
    path.write_text(_toml(tmp_path, [{"name": "m", "host": "h", "username": "u",
                                      "routing_address": "support@localhost", **entry}]))
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "mailboxes[0]" in str(info.value) and message in str(info.value)
