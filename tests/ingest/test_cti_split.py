"""The CTI screen pop in a split deployment, as an operator runs it: an ingest process and a worker
process (`casegate run --role …`) sharing one public HTTP port (`http.reuse_port`), on the local bus with
SQLite and on Kafka with PostgreSQL. A call posted to the public port becomes a case; then the lookup
answers the caller's open cases on that port whichever process the kernel gives the request to — each
process's own /metrics shows it answered some of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ingest.test_cti import ANI, SECRET, TOKEN, event, signed
from tests.ingest.test_daemon_process import CASEGATE, wait_ready
from tests.services import free_port

LOOKUPS = 40
"""Requests on fresh connections: the chance that one process gets none of them is 2 in 2**40."""


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request on a new connection (urllib never keeps one alive): status and JSON body."""
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def lookups_answered(admin_port: int) -> float:
    """How many screen pops this process answered 200, from its own /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "casegate_http_responses_total" and s.labels == {"route": "/cti/lookup", "status": "200"})


class Split:
    """An ingest and a worker process of one deployment, on one public HTTP port."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder = folder
        self.http_port = free_port()
        self.env = {**{k: v for k, v in os.environ.items() if not k.upper().startswith("CASEGATE_")}, **env,
                    "CASEGATE_HTTP__PORT": str(self.http_port), "CASEGATE_HTTP__REUSE_PORT": "true",
                    "CASEGATE_CHANNELS__CTI__ENABLED": "true", "CASEGATE_CHANNELS__CTI__SECRET": SECRET,
                    "CASEGATE_CHANNELS__CTI__LOOKUP_TOKEN": TOKEN, "CASEGATE_THREADING__SECRET": "s3cret",
                    "CASEGATE_LOG_LEVEL": "warning"}
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        self.admin: dict[str, int] = {}

    def start(self, role: str) -> None:
        self.admin[role] = free_port()
        log = self.folder / f"{role}.log"
        with log.open("wb") as out:  # the child writes to its own copy of the descriptor
            proc = subprocess.Popen([CASEGATE, "run", "--role", role], cwd=self.folder, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**self.env, "CASEGATE_SMTP__PORT": str(free_port()),
                                         "CASEGATE_ADMIN__PORT": str(self.admin[role])})
        self.procs[role] = (proc, log)
        wait_ready(self.admin[role], proc, log)

    def stop(self) -> None:
        for proc, _ in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, log in self.procs.values():
            assert proc.wait(40) == 0, log.read_text(errors="replace")[-2000:]

    def lookup(self) -> tuple[int, Any]:
        return http(f"http://127.0.0.1:{self.http_port}/cti/lookup?ani={ANI.replace('+', '%2B')}",
                    headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture(params=["local-sqlite", "kafka-postgres"])
def split(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Split]:
    env: dict[str, str] = {}
    if request.param == "kafka-postgres":
        tag = os.urandom(4).hex()
        url: str = request.getfixturevalue("pg_db_url")
        env = {"CASEGATE_STORE__URL": url, "CASEGATE_BUS__DRIVER": "kafka",
               "CASEGATE_BUS__TOPIC": f"cti-in-{tag}", "CASEGATE_BUS__DEAD_LETTER_TOPIC": f"cti-dead-{tag}",
               "CASEGATE_BUS__KAFKA__BOOTSTRAP_SERVERS": request.getfixturevalue("tansu").bootstrap,
               "CASEGATE_BUS__KAFKA__GROUP_ID": f"cti-{tag}", "CASEGATE_BUS__KAFKA__SESSION_TIMEOUT_MS": "3000",
               "CASEGATE_BUS__KAFKA__HEARTBEAT_INTERVAL_MS": "500",
               "CASEGATE_BLOBS__PATH": str(tmp_path / "shared-blobs")}
    s = Split(tmp_path, env)
    if request.param == "kafka-postgres":
        upgraded = subprocess.run([CASEGATE, "db", "upgrade"], cwd=tmp_path, env=s.env, capture_output=True,
                                  text=True, timeout=60, check=False)
        assert upgraded.returncode == 0, upgraded.stderr
    try:
        yield s
    finally:
        s.stop()


def test_the_screen_pop_answers_on_the_shared_public_port_whichever_process_takes_it(split: Split) -> None:
    # the ingest process alone on the port takes the call (the worker role takes no call events) ...
    split.start("ingest")
    body = json.dumps(event("call-split")).encode()
    assert http(f"http://127.0.0.1:{split.http_port}/hooks/cti", body, signed(body)) == (200, {"accepted": 1})
    # ... then the worker joins the port and makes the case
    split.start("worker")
    end = time.monotonic() + 30
    status, found = split.lookup()
    while not (status == 200 and found["cases"]) and time.monotonic() < end:
        time.sleep(0.2)
        status, found = split.lookup()
    assert status == 200 and len(found["cases"]) == 1, found
    case_number = found["cases"][0]["CaseNumber"]
    assert [c["Phone"] for c in found["contacts"]] == [ANI]

    answers = [split.lookup() for _ in range(LOOKUPS)]
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    assert {tuple(c["CaseNumber"] for c in found["cases"]) for _, found in answers} == {(case_number,)}
    served = {role: lookups_answered(port) for role, port in split.admin.items()}
    assert served["ingest"] > 0 and served["worker"] > 0, served
