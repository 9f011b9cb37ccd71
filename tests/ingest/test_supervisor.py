"""`casegate run` without --role: a supervisor running one ingest process per CPU (sharing the SMTP
and HTTP ports) and one worker, driven as an operator would: real processes, real SMTP clients, its
own CLI, signals. A killed process comes back and mail keeps flowing; SIGTERM drains in order (every
mail answered 250 is a case) and exits 0; a process that cannot start stops it with exit 2."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ingest.test_daemon_process import CASEGATE, Proc
from tests.pipeline import mail


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Callable[..., Proc]]:
    """Start `casegate run` (the supervisor) in tmp_path with extra environment; killed at the end."""
    started: list[Proc] = []

    def start(**env: str) -> Proc:
        p = Proc(tmp_path)
        p.env.update(env)
        p.start()
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc is not None and p.proc.poll() is None:
            p.stop(signal.SIGKILL)


def children(p: Proc) -> dict[str, psutil.Process]:
    """The supervisor's processes by name (ingest-1 …, worker)."""
    assert p.proc is not None
    out = {}
    for child in psutil.Process(p.proc.pid).children():
        with_name = child.cmdline()
        if "--name" in with_name:
            out[with_name[with_name.index("--name") + 1]] = child
    return out


def events(p: Proc) -> list[dict[str, Any]]:
    """Every line the supervisor and its processes logged (each one a JSON object)."""
    return [json.loads(line) for line in (p.folder / "daemon.log").read_text().splitlines()]


def get(p: Proc, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{p.admin}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def readiness(p: Proc) -> tuple[int, dict[str, Any]]:
    status, text = get(p, "/readyz")
    body: dict[str, Any] = json.loads(text)
    return status, body


def metrics(p: Proc) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(p, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def send_over(port: int, subjects: list[str]) -> list[int]:
    """Each mail on a connection of its own (so the kernel spreads them over the ingest processes)."""
    codes = []
    for subject in subjects:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            try:
                s.sendmail("ada@example.org", ["support@localhost"], mail(subject, sender="c@example.org")[0])
                codes.append(250)
            except smtplib.SMTPResponseException as e:
                codes.append(e.smtp_code)
    return codes


def test_run_is_a_supervisor_of_one_worker_and_an_ingest_process_per_cpu(supervised: Callable[..., Proc]) -> None:
    p = supervised()
    cpus = len(os.sched_getaffinity(0))
    procs = children(p)
    assert sorted(procs) == sorted([f"ingest-{k}" for k in range(1, cpus + 1)] + ["worker"])
    assert all(c.cmdline()[c.cmdline().index("--role") + 1] == ("worker" if n == "worker" else "ingest")
               for n, c in procs.items())
    environ = {n: c.environ() for n, c in procs.items()}
    assert "CASEGATE_MAILBOXES" not in environ["ingest-1"]  # one process fetches the IMAP mailboxes
    assert all(environ[f"ingest-{k}"]["CASEGATE_MAILBOXES"] == "[]" for k in range(2, cpus + 1))
    assert environ["worker"]["CASEGATE_HTTP__ENABLED"] == "false"  # no share of the webhook connections
    status, body = readiness(p)
    assert status == 200 and body["status"] == "ready"
    assert body["processes"]["worker"]["checks"]["store"] == "ok"
    assert {n: body["processes"][n]["pid"] for n in procs} == {n: c.pid for n, c in procs.items()}

    subjects = [f"supervised {i}" for i in range(24)]
    assert send_over(p.smtp, subjects) == [250] * 24
    cases = p.wait_cases(24)
    assert sorted(c["Subject"] for c in cases) == sorted(subjects)
    seen = metrics(p)
    by_process = {dict(labels)["process"]: v for (name, labels), v in seen.items()
                  if name == "casegate_ingest_accepted_total"}
    assert sum(by_process.values()) == 24
    if cpus > 1:  # 24 connections hashed over the processes sharing the port: more than one took mail
        assert len(by_process) > 1, by_process
    assert seen[("casegate_worker_messages_total",
                 (("channel", "email"), ("outcome", "created"), ("process", "worker")))] == 24
    assert p.stop(signal.SIGTERM) == 0
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in procs.values())


def test_a_killed_process_is_restarted_and_mail_still_flows(supervised: Callable[..., Proc]) -> None:
    p = supervised(CASEGATE_RUN__PROCESSES="2")
    before = children(p)
    assert sorted(before) == ["ingest-1", "ingest-2", "worker"]

    before["ingest-1"].send_signal(signal.SIGKILL)
    before["ingest-1"].wait(10)  # its listening socket is gone with it
    assert send_over(p.smtp, ["while ingest-1 is down"]) == [250]  # ingest-2 holds the port meanwhile

    def back(name: str) -> bool:
        now = children(p).get(name)
        status, body = readiness(p)
        return (now is not None and now.pid != before[name].pid and status == 200 and body["status"] == "ready"
                and body["processes"][name]["restarts"] == 1)

    until(lambda: back("ingest-1"), what="ingest-1 restarted and ready")
    before["worker"].send_signal(signal.SIGKILL)
    before["worker"].wait(10)
    assert send_over(p.smtp, [f"while the worker is down {i}" for i in range(4)]) == [250] * 4  # on the bus
    until(lambda: back("worker"), what="the worker restarted and ready")
    assert send_over(p.smtp, [f"after the restarts {i}" for i in range(6)]) == [250] * 6
    cases = p.wait_cases(11)
    assert len(cases) == 11

    seen = metrics(p)
    for name in ("ingest-1", "worker"):
        assert seen[("casegate_supervisor_restarts_total", (("child", name), ("process", "supervisor")))] == 1
    exits = [e for e in events(p) if e["event"] == "supervisor.child_exited"]
    assert [(e["process"], e["signal"]) for e in exits] == [("ingest-1", "SIGKILL"), ("worker", "SIGKILL")]
    assert p.stop(signal.SIGTERM) == 0


def test_sigterm_with_mail_in_flight_makes_every_acknowledged_mail_a_case(supervised: Callable[..., Proc]) -> None:
    p = supervised(CASEGATE_RUN__PROCESSES="2")
    acked: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        i = 0
        try:
            with smtplib.SMTP("127.0.0.1", p.smtp, timeout=30) as s:
                while True:
                    subject = f"in flight {k}-{i}"
                    i += 1
                    try:
                        s.sendmail("ada@example.org", ["support@localhost"],
                                   mail(subject, sender=f"c{k}@example.org")[0])
                    except smtplib.SMTPResponseException as e:
                        with lock:
                            refused.append(f"{e.smtp_code} {subject}")
                        return
                    with lock:
                        acked.append(subject)
        except (OSError, smtplib.SMTPException):  # the listener closed: the daemon is going away
            return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    until(lambda: len(acked) >= 80, what="80 mails acknowledged")
    assert p.proc is not None
    os.kill(p.proc.pid, signal.SIGTERM)  # the supervisor only, as systemd's KillMode=mixed does
    assert p.proc.wait(60) == 0
    for t in threads:
        t.join(30)
    p.log.close()
    assert all(r.startswith("421") for r in refused), refused  # shutting down: never 451 or 5xx
    listed = p.cli("cases", "list", "--json", "--limit", "100000")  # the daemon is gone: from the store
    assert listed.returncode == 0, listed.stderr
    assert sorted(c["Subject"] for c in json.loads(listed.stdout)) == sorted(acked)
    stopped = [e["process"] for e in events(p) if e["event"] in ("supervisor.stopping", "daemon.stopped",
                                                                  "supervisor.stopped")]
    assert stopped[0] == "supervisor" and stopped[-2:] == ["worker", "supervisor"]  # ingest first, then the worker
    assert sorted(stopped[1:3]) == ["ingest-1", "ingest-2"]


def test_a_process_that_cannot_start_stops_the_supervisor_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    env = {**os.environ, "CASEGATE_ADMIN__PORT": "0", "CASEGATE_SMTP__PORT": "0", "CASEGATE_HTTP__PORT": "0"}
    r = subprocess.run([CASEGATE, "run"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={**env, "CASEGATE_RUN__PROCESSES": "none"})
    assert r.returncode == 2 and "run.processes (from CASEGATE_RUN__PROCESSES): " in r.stderr, r.stderr

    proc = subprocess.Popen([CASEGATE, "run"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**env, "CASEGATE_SMTP__MAX_CONNECTIONS": "1000000"})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("casegate: ") and "smtp.max_connections (1000000)" in last, err  # the process's own words
    assert "Traceback" not in err
    orphans = [q for q in psutil.process_iter(["cmdline"]) if (cmd := q.info["cmdline"] or [])
               and "--parent" in cmd and cmd[cmd.index("--parent") + 1] == str(proc.pid)]
    assert orphans == []
