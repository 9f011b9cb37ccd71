"""The distributed deployment as an operator runs it: PostgreSQL and Kafka configured only through
`CASEGATE_*` variables, `casegate db upgrade` once, then separate `--role ingest` and `--role worker`
processes."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import time
from pathlib import Path

from tests.ingest.test_daemon_process import CASEGATE, wait_ready
from tests.pipeline import mail
from tests.services import Tansu, free_port


def test_ingest_and_worker_processes_on_kafka_and_postgres(tmp_path: Path, tansu: Tansu, pg_db_url: str) -> None:
    tag = os.urandom(4).hex()
    env = {**os.environ, "CASEGATE_STORE__URL": pg_db_url, "CASEGATE_BUS__DRIVER": "kafka",
           "CASEGATE_BUS__TOPIC": f"dist-in-{tag}", "CASEGATE_BUS__DEAD_LETTER_TOPIC": f"dist-dead-{tag}",
           "CASEGATE_BUS__KAFKA__BOOTSTRAP_SERVERS": tansu.bootstrap,
           "CASEGATE_BUS__KAFKA__GROUP_ID": f"dist-{tag}", "CASEGATE_BUS__KAFKA__SESSION_TIMEOUT_MS": "3000",
           "CASEGATE_BUS__KAFKA__HEARTBEAT_INTERVAL_MS": "500", "CASEGATE_THREADING__SECRET": "s3cret",
           "CASEGATE_BLOBS__PATH": str(tmp_path / "shared-blobs")}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CASEGATE, *args], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)

    refused = run("run", "--role", "worker")  # PostgreSQL is never migrated implicitly
    assert refused.returncode == 2 and "casegate db upgrade" in refused.stderr
    upgraded = run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    procs = []
    try:
        ports = {}
        for role in ("worker", "ingest"):
            ports[role] = (free_port(), free_port(), free_port())
            log = tmp_path / f"{role}.log"
            with log.open("wb") as out:  # the child writes to its own copy of the descriptor
                p = subprocess.Popen([CASEGATE, "run", "--role", role], cwd=tmp_path, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**env, "CASEGATE_SMTP__PORT": str(ports[role][0]),
                                          "CASEGATE_HTTP__PORT": str(ports[role][1]),
                                          "CASEGATE_ADMIN__PORT": str(ports[role][2])})
            procs.append((p, log))
            wait_ready(ports[role][2], p, log)
        with socket.socket() as s:  # the worker role runs no SMTP server
            assert s.connect_ex(("127.0.0.1", ports["worker"][0])) != 0
        raw, first = mail("Distributed printer fire")
        client = smtplib.SMTP("127.0.0.1", ports["ingest"][0], timeout=30)
        client.sendmail("ada@example.org", ["support@localhost"], raw)
        client.sendmail("ada@example.org", ["support@localhost"], mail("Re: it", in_reply_to=first)[0])
        client.quit()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            shown = run("cases", "show", "00001000", "--json")
            if shown.returncode == 0 and len(json.loads(shown.stdout)["EmailMessages"]) == 2:
                break
            time.sleep(0.3)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["Subject"] == "Distributed printer fire"
        assert len(json.loads(shown.stdout)["EmailMessages"]) == 2
    finally:
        for p, _ in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p, log in procs:
            assert p.wait(40) == 0, log.read_text()[-2000:]

