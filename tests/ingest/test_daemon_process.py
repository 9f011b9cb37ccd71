"""`casegate` as an operator runs it: a real process on the embedded default, driven over SMTP and
read back through its own CLI; SIGTERM drains and exits 0; kill -9 loses nothing acknowledged."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.pipeline import mail

CASEGATE = str(Path(sys.executable).parent / "casegate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(admin_port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> None:
    """Until the process answers /readyz on its admin port with 200; fails with its log if it dies or
    takes too long."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("not ready: " + log.read_text(errors="replace")[-2000:])


class Proc:
    def __init__(self, folder: Path):
        self.folder = folder
        self.smtp, self.http, self.admin = _free_port(), _free_port(), _free_port()
        self.env = {**os.environ, "CASEGATE_SMTP__PORT": str(self.smtp), "CASEGATE_HTTP__PORT": str(self.http),
                    "CASEGATE_ADMIN__PORT": str(self.admin)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.folder / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([CASEGATE, "run"], cwd=self.folder, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(self.admin, self.proc, self.folder / "daemon.log")

    def tail(self) -> str:
        return (self.folder / "daemon.log").read_text(errors="replace")[-2000:]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        rc = self.proc.wait(30)
        self.log.close()
        return rc

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CASEGATE, *args], cwd=self.folder, env=self.env, capture_output=True, text=True,
                              timeout=60)

    def cases(self) -> list[dict[str, Any]]:
        r = self.cli("cases", "list", "--json", "--limit", "100000")  # every case, not the first page of 50
        assert r.returncode == 0, r.stderr
        out: list[dict[str, Any]] = json.loads(r.stdout)
        return out

    def wait_cases(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        cases = self.cases()
        while len(cases) < n and time.monotonic() < end:
            time.sleep(0.2)
            cases = self.cases()
        return cases


def _send(port: int, raw: bytes, client: smtplib.SMTP | None = None) -> int:
    s = client or smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.sendmail("ada@example.org", ["support@localhost"], raw)
        return 250
    except smtplib.SMTPResponseException as e:
        return e.smtp_code
    finally:
        if client is None:
            s.quit()


def test_cli_shows_cases_with_salesforce_fields_messages_and_feed(proc: Proc) -> None:
    raw, first = mail("Printer on fire", "It burns.")
    assert _send(proc.smtp, raw) == 250
    assert _send(proc.smtp, mail("Re: Printer on fire", "More.", in_reply_to=first)[0]) == 250
    cases = proc.wait_cases(1)
    assert len(cases) == 1
    for field in ("Id", "CaseNumber", "Subject", "Status", "Origin", "Priority", "OwnerId", "ContactId",
                  "ParentId", "IsClosed", "ClosedDate", "Description", "SuppliedEmail", "CreatedDate"):
        assert field in cases[0]
    end = time.monotonic() + 20
    while True:
        r = proc.cli("cases", "show", "00001000", "--json")
        assert r.returncode == 0, r.stderr
        if len(json.loads(r.stdout)["EmailMessages"]) == 2 or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert next(m["MessageIdentifier"] for m in shown["EmailMessages"]) == first
    assert len(shown["EmailMessages"]) == 2 and shown["Feed"]
    table = proc.cli("cases", "list")
    assert "00001000" in table.stdout and "Printer on fire" in table.stdout
    text = proc.cli("cases", "show", "00001000")
    assert "Timeline:" in text.stdout and first in text.stdout
    missing = proc.cli("cases", "show", "00009999")
    assert missing.returncode == 1 and "no case with CaseNumber 00009999" in missing.stderr


def test_sigterm_drains_accepted_mail_and_exits_0(proc: Proc) -> None:
    client = smtplib.SMTP("127.0.0.1", proc.smtp, timeout=30)
    for i in range(30):
        assert _send(proc.smtp, mail(f"before shutdown {i}", sender=f"c{i}@example.org")[0], client) == 250
    client.quit()
    assert proc.stop(signal.SIGTERM) == 0
    log = (proc.folder / "daemon.log").read_text()
    assert '"daemon.stopped"' in log
    events = [json.loads(line) for line in log.splitlines()]  # every line is a JSON object
    accepted = [e for e in events if e["event"] == "smtp.accepted"]
    assert len(accepted) == 30 and all(e["channel"] == "email" and e["external_id"] for e in accepted)
    placed = [e for e in events if e["event"] == "worker.message"]
    assert {e["case_number"] for e in placed} == {f"{n:08d}" for n in range(1000, 1030)}
    assert len(proc.cases()) == 30  # everything acknowledged was committed before exit


def test_kill_9_loses_nothing_that_was_acknowledged(proc: Proc) -> None:
    client = smtplib.SMTP("127.0.0.1", proc.smtp, timeout=30)
    acked = sum(_send(proc.smtp, mail(f"crash {i}", sender=f"c{i % 7}@example.org")[0], client) == 250
                for i in range(60))
    client.close()
    proc.stop(signal.SIGKILL)  # no chance to drain or commit
    assert acked == 60
    proc.start()  # same folder: the bus log and the store are as the crash left them
    cases = proc.wait_cases(60)
    assert len(cases) == 60
    assert sorted(int(c["CaseNumber"]) for c in cases) == list(range(1000, 1060))
    assert proc.stop() == 0


def test_bad_configuration_stops_the_daemon_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "casegate.toml"
    cfg.write_text('[smtp]\nport = "twenty-five"\n[store]\nurll = "x"\n')
    r = subprocess.run([CASEGATE, "run", "--config", str(cfg)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2
    assert "smtp.port" in r.stderr and "store.urll: unknown key" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run([CASEGATE, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                       env={**os.environ, "CASEGATE_BUS__DRIVER": "rabbit"})
    assert r.returncode == 2 and "bus.driver (from CASEGATE_BUS__DRIVER)" in r.stderr


def test_dlq_commands_through_the_cli(proc: Proc) -> None:
    listed = proc.cli("dlq", "list")
    assert listed.returncode == 0 and "(0 dead letters waiting)" in listed.stdout, listed.stderr
    as_json = proc.cli("dlq", "list", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout) == []
    replayed = proc.cli("dlq", "replay")
    assert replayed.returncode == 0 and "replayed 0 dead letters onto casegate.in" in replayed.stdout


def test_a_port_in_use_stops_the_daemon_with_exit_2_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([CASEGATE, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                           env={**os.environ, "CASEGATE_SMTP__PORT": str(port), "CASEGATE_HTTP__PORT": "0",
                                "CASEGATE_ADMIN__PORT": "0"})
    assert r.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (smtp.host / smtp.port)" in r.stderr
    assert "Traceback" not in r.stderr
