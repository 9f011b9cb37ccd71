"""Settings: the embedded defaults, the TOML file, `CASEGATE_*` overrides winning over the file, and
errors that name the key and the reason (in the library and through the real `casegate` command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from casegate.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "casegate.example.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CASEGATE_* variable of the caller (CI sets some) leaks in; relative paths resolve in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("CASEGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "casegate.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def problems_of(path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


# -- defaults ---------------------------------------------------------------------------------------
def test_defaults_are_the_embedded_deployment(tmp_path: Path) -> None:
    s = load_settings()
    assert s.data_dir == "casegate-data" and s.log_level == "info"
    assert s.store.url == ""
    assert s.store_url == f"sqlite+aiosqlite:///{(tmp_path / 'casegate-data' / 'cases.db').resolve()}"
    assert s.auto_migrate is True
    assert s.bus.driver == "local" and s.bus.topic == "casegate.in" and s.bus.dead_letter_topic == "casegate.dead"
    assert s.bus_path == Path("casegate-data") / "bus.db"
    assert s.blob_path == Path("casegate-data") / "blobs"
    assert (s.smtp.enabled, s.smtp.host, s.smtp.port) == (True, "127.0.0.1", 2525)
    assert (s.http.enabled, s.http.host, s.http.port) == (True, "127.0.0.1", 8080)
    assert [r.address for r in s.routing] == ["support@localhost"]
    assert (s.routing[0].origin, s.routing[0].priority, s.routing[0].owner) == ("Email", "Medium", None)
    assert s.rules.default_owner == "queue:Support" and s.rules.assignment == [] and s.rules.reopen_status == "Working"
    assert s.threading.secret == "" and s.worker.batch_size == 500


def test_postgres_is_never_migrated_implicitly() -> None:
    s = Settings(store={"url": "postgresql+asyncpg://u@h/db"})
    assert s.auto_migrate is False
    assert Settings(store={"url": "postgresql+asyncpg://u@h/db", "auto_migrate": True}).auto_migrate is True


def test_the_example_file_loads_and_shows_the_defaults() -> None:
    assert load_settings(EXAMPLE) == load_settings()


def test_the_attachment_cap_comes_from_the_mail_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().mail.max_attachments == 100
    assert "\n[mail]\n" in EXAMPLE.read_text() and load_settings(EXAMPLE).mail.max_attachments == 100
    path = write(tmp_path, "[mail]\nmax_attachments = 5\n")
    assert load_settings(path).mail.max_attachments == 5
    monkeypatch.setenv("CASEGATE_MAIL__MAX_ATTACHMENTS", "0")  # 0: no part is stored, the raw original keeps all
    assert load_settings(path).mail.max_attachments == 0


# -- the file ---------------------------------------------------------------------------------------
def test_values_come_from_the_toml_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
data_dir = "/srv/casegate"
log_level = "debug"

[store]
url = "postgresql+asyncpg://casegate:secret@db.internal:5432/casegate"
pool_size = 12

[bus]
driver = "kafka"

[bus.kafka]
bootstrap_servers = "kafka-1:9092,kafka-2:9092"
client_id = "cg-test"

[smtp]
port = 2626

[[routing]]
address = "Support@Example.com"
origin = "Web"
priority = "High"
owner = "queue:Tier 1"

[[routing]]
address = "billing@example.com"

[rules]
default_owner = "user:lead@example.com"
reopen_status = "Escalated"

[[rules.assignment]]
name = "billing"
subject_contains = ["invoice", "refund"]
owner = "queue:Billing"
""")
    s = load_settings(path)
    assert (s.data_dir, s.log_level) == ("/srv/casegate", "debug")
    assert s.store_url == "postgresql+asyncpg://casegate:secret@db.internal:5432/casegate"
    assert s.store.pool_size == 12 and s.auto_migrate is False
    assert s.bus.driver == "kafka"
    assert (s.bus.kafka.bootstrap_servers, s.bus.kafka.client_id) == ("kafka-1:9092,kafka-2:9092", "cg-test")
    assert s.bus.kafka.group_id == "casegate-worker"  # untouched keys keep their default
    assert s.smtp.port == 2626 and s.smtp.host == "127.0.0.1"
    assert [(r.address, r.origin, r.priority, r.owner) for r in s.routing] == [
        ("support@example.com", "Web", "High", "queue:Tier 1"),  # addresses are normalised to lower case
        ("billing@example.com", "Email", "Medium", None),
    ]
    assert s.rules.default_owner == "user:lead@example.com" and s.rules.reopen_status == "Escalated"
    assert [(e.name, e.subject_contains, e.owner) for e in s.rules.assignment] == [
        ("billing", ["invoice", "refund"], "queue:Billing")]


def test_casegate_config_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[http]\nport = 9999\n")
    monkeypatch.setenv("CASEGATE_CONFIG", str(path))
    assert load_settings().http.port == 9999


# -- the environment --------------------------------------------------------------------------------
def test_environment_overrides_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, """
[store]
url = "sqlite+aiosqlite:///from-file.db"

[bus.kafka]
bootstrap_servers = "file-host:9092"
client_id = "from-file"

[smtp]
port = 2626
""")
    monkeypatch.setenv("CASEGATE_STORE__URL", "postgresql+asyncpg://env@db/env")
    monkeypatch.setenv("CASEGATE_BUS__KAFKA__BOOTSTRAP_SERVERS", "env-1:9092,env-2:9092")
    monkeypatch.setenv("CASEGATE_LOG_LEVEL", "error")
    s = load_settings(path)
    assert s.store.url == "postgresql+asyncpg://env@db/env"
    assert s.bus.kafka.bootstrap_servers == "env-1:9092,env-2:9092"
    assert s.log_level == "error"
    # the rest of the file's sections survive a nested override
    assert s.bus.kafka.client_id == "from-file"
    assert s.smtp.port == 2626


def test_environment_works_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEGATE_SMTP__PORT", "2600")
    monkeypatch.setenv("CASEGATE_BUS__DRIVER", "kafka")
    s = load_settings()
    assert s.smtp.port == 2600 and s.bus.driver == "kafka"


def test_a_good_environment_value_replaces_a_bad_file_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[smtp]\nport = "abc"\n')
    monkeypatch.setenv("CASEGATE_SMTP__PORT", "2600")
    assert load_settings(path).smtp.port == 2600


# -- errors name the key and the reason -------------------------------------------------------------
def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, "[smtp]\nprot = 25\n"))
    assert "smtp.prot: unknown key" in msg


def test_unknown_top_level_key_and_section(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, 'colour = "blue"\n[smpt]\nport = 25\n'))
    assert "colour: unknown key" in msg and "smpt: unknown key" in msg


def test_bad_value_in_the_file(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, '[smtp]\nport = "abc"\n'))
    assert "smtp.port: " in msg and "valid integer" in msg and "'abc'" in msg
    assert "CASEGATE_SMTP__PORT" not in msg  # the value came from the file, not the environment


def test_out_of_range_value_in_the_file(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, "[http]\nport = 70000\n"))
    assert "http.port: " in msg and "65535" in msg


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, '[smtp]\nport = "abc"\nprot = 1\n[bus]\ndriver = "rabbit"\n'))
    assert "smtp.port: " in msg and "smtp.prot: unknown key" in msg and "bus.driver: " in msg


def test_bad_value_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEGATE_SMTP__PORT", "abc")
    msg = problems_of()
    assert "smtp.port (from CASEGATE_SMTP__PORT): " in msg and "valid integer" in msg and "'abc'" in msg


def test_bad_nested_value_from_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEGATE_BUS__KAFKA__REQUEST_TIMEOUT_MS", "soon")
    msg = problems_of()
    assert "bus.kafka.request_timeout_ms (from CASEGATE_BUS__KAFKA__REQUEST_TIMEOUT_MS): " in msg


def test_bad_store_url_names_the_key(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, '[store]\nurl = "mysql://x@y/z"\n'))
    assert "store.url: " in msg and "sqlite+aiosqlite://" in msg


def test_bad_regex_names_the_assignment_entry(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, """
[[rules.assignment]]
name = "broken"
owner = "queue:Billing"
subject_regex = "(unclosed"
"""))
    assert "rules.assignment[0].subject_regex: " in msg and "invalid regular expression" in msg


def test_bad_regex_in_a_later_entry_names_its_index(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, """
[[rules.assignment]]
name = "fine"
owner = "queue:Billing"

[[rules.assignment]]
name = "broken"
owner = "queue:Billing"
description_regex = "[a-"
"""))
    assert "rules.assignment[1].description_regex: " in msg and "rules.assignment[0]" not in msg


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[rules]\ndefault_owner = "Support"\n', "rules.default_owner"),
        ('[[routing]]\naddress = "support@localhost"\nowner = "team:Support"\n', "routing[0].owner"),
        ('[[rules.assignment]]\nname = "x"\nowner = "Billing"\n', "rules.assignment[0].owner"),
        ('[[rules.assignment]]\nname = "x"\nowner = "queue:"\n', "rules.assignment[0].owner"),
    ],
)
def test_owner_needs_the_queue_or_user_prefix(tmp_path: Path, toml: str, key: str) -> None:
    msg = problems_of(write(tmp_path, toml))
    assert f"{key}: " in msg and "pattern" in msg


def test_assignment_entry_needs_a_name_and_an_owner(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, '[[rules.assignment]]\nsubject_contains = ["x"]\n'))
    assert "rules.assignment[0].name: Field required" in msg and "rules.assignment[0].owner: Field required" in msg


def test_duplicate_routing_address(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, """
[[routing]]
address = "Support@Example.com"

[[routing]]
address = "support@example.com"
"""))
    assert "routing: " in msg and "listed twice" in msg and "support@example.com" in msg


def test_routing_address_must_be_an_email_address(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, '[[routing]]\naddress = "support"\n'))
    assert "routing[0].address: " in msg and "not an email address" in msg


def test_routing_policies_and_templates_are_checked(tmp_path: Path) -> None:
    msg = problems_of(write(tmp_path, """
[[routing]]
address = "support@example.com"
closed_case_policy = "reopen_forever"
reopen_within_days = -1
acknowledgement_subject = "Case $casenumber"
reject_notice_body = "costs $ 5"
"""))
    assert "routing[0].closed_case_policy: " in msg and "'reopen', 'reopen_within_days', 'new_case'" in msg
    assert "routing[0].reopen_within_days: " in msg
    assert "routing[0].acknowledgement_subject: " in msg and "unknown template field $casenumber" in msg
    assert "routing[0].reject_notice_body: " in msg and "lone '$'" in msg


def test_connection_limits_admin_listener_and_postmaster_defaults() -> None:
    s = load_settings()
    assert (s.smtp.max_connections, s.smtp.max_connections_per_ip, s.smtp.postmaster) == ("auto", 50, "")
    assert (s.http.max_connections, s.http.max_connections_per_ip) == ("auto", 128)
    assert (s.http.header_timeout, s.http.body_timeout, s.http.keepalive_timeout) == (10.0, 30.0, 75.0)
    assert (s.admin.enabled, s.admin.host, s.admin.port, s.admin.max_connections) == (True, "127.0.0.1", 9525, 32)
    assert s.postmaster_address == "support@localhost"  # the first routing address


def test_connection_caps_are_auto_or_a_positive_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(write(tmp_path, '[smtp]\nmax_connections = 500\n[http]\nmax_connections = "auto"\n'))
    assert (s.smtp.max_connections, s.http.max_connections) == (500, "auto")
    monkeypatch.setenv("CASEGATE_HTTP__MAX_CONNECTIONS", "700")
    assert load_settings().http.max_connections == 700
    msg = problems_of(write(tmp_path, '[smtp]\nmax_connections = "lots"\n[http]\nheader_timeout = 0\n'))
    assert "smtp.max_connections" in msg and "'auto'" in msg and "http.header_timeout: " in msg


def test_postmaster_must_be_a_routing_address(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, """
[smtp]
postmaster = "Billing@Example.com"

[[routing]]
address = "support@example.com"

[[routing]]
address = "billing@example.com"
"""))
    assert s.postmaster_address == "billing@example.com"
    msg = problems_of(write(tmp_path, '[smtp]\npostmaster = "root@example.com"\n'))
    assert "smtp.postmaster 'root@example.com' is not a [[routing]] address" in msg and "support@localhost" in msg


def test_tls_cert_without_key(tmp_path: Path) -> None:
    cert = write(tmp_path, "pem", "cert.pem")
    msg = problems_of(write(tmp_path, f'[smtp]\ntls_cert = "{cert}"\n'))
    assert "smtp: " in msg and "tls_cert and tls_key must be set together" in msg


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[smtp\nport = 25\n")
    msg = problems_of(path)
    assert f"config file {path} is not valid TOML" in msg


def test_missing_file(tmp_path: Path) -> None:
    msg = problems_of(tmp_path / "nowhere.toml")
    assert f"config file not found: {tmp_path / 'nowhere.toml'}" in msg


def test_missing_file_named_by_casegate_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEGATE_CONFIG", str(tmp_path / "gone.toml"))
    assert "config file not found" in problems_of()


def test_config_error_lists_its_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "[smtp]\nprot = 25\n"))
    assert info.value.problems == ["smtp.prot: unknown key"]
    assert str(info.value) == "invalid configuration:\n  smtp.prot: unknown key"


# -- the real command -------------------------------------------------------------------------------
def run_casegate(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "casegate"
    assert exe.is_file(), f"the casegate script is not installed next to {sys.executable}"
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CASEGATE_")}
    return subprocess.run([str(exe), *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_cli_bad_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    write(tmp_path, "[smtp]\nprot = 25\n", "bad.toml")
    done = run_casegate(tmp_path, "run", "--config", "bad.toml")
    assert done.returncode == 2, done.stderr
    assert "smtp.prot" in done.stderr and "unknown key" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "casegate-data").exists()  # nothing was started


def test_cli_bad_environment_exits_2_naming_the_variable(tmp_path: Path) -> None:
    done = run_casegate(tmp_path, "run", env={"CASEGATE_SMTP__PORT": "abc"})
    assert done.returncode == 2, done.stderr
    assert "smtp.port (from CASEGATE_SMTP__PORT)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("content", [None, "[smtp\n"])
def test_cli_missing_or_broken_file_exits_2(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        write(tmp_path, content, "bad.toml")
    done = run_casegate(tmp_path, "run", "--config", "bad.toml")
    assert done.returncode == 2, done.stderr
    assert "bad.toml" in done.stderr and "Traceback" not in done.stderr


# -- values the store or the rules would only refuse later are refused at start ----------------------
LONG = "x" * 41
STARTUP_CHECKED = [
    ('[rules]\nreopen_status = "Wroking"\n', "rules.reopen_status", "unknown case status 'Wroking'"),
    ('[rules]\nreopen_status = "Closed"\n', "rules.reopen_status", "'Closed' is a closed status"),
    (f'[[routing]]\naddress = "support@localhost"\norigin = "{LONG}"\n', "routing[0].origin", "at most 40"),
    ('[[routing]]\naddress = "support@localhost"\npriority = ""\n', "routing[0].priority", "must not be empty"),
    (f'[[routing]]\naddress = "support@localhost"\ntype = "{LONG}"\n', "routing[0].type", "at most 40"),
    (f'[channels.chat]\norigin = "{LONG}"\n', "channels.chat.origin", "at most 40"),
    ('[channels.twilio]\npriority = "High\\n"\n', "channels.twilio.priority", "control characters"),
    (f'[[rules.assignment]]\nname = "x"\nowner = "queue:Support"\npriority = "{LONG}"\n',
     "rules.assignment[0].priority", "at most 40"),
    ('[channels.chat]\nowner = "user:bob"\n', "channels.chat.owner", "email address"),
    (f'[rules]\ndefault_owner = "queue:{"q" * 81}"\n', "rules.default_owner", "at most 80"),
    (f'[[routing]]\naddress = "support@localhost"\nowner = "user:{"u" * 120}@example.org"\n', "routing[0].owner",
     "at most 128"),
    ('[channels.cti]\ndefault_region = "ZZ"\n', "channels.cti.default_region", "not a region"),
    ('[channels.web_form]\ndefault_region = "UK"\n', "channels.web_form.default_region", "not a region"),
    ('[http]\npublic_base_url = "support.example.com"\n', "http.public_base_url", "http:// or https:// URL"),
    ('[http]\npublic_base_url = "https://support.example.com:99999"\n', "http.public_base_url", "port"),
    ('[outbound]\nhostname = "casegate host"\n', "outbound.hostname", "must be a host name"),
    ('[smtp]\nhostname = "<mx.example.com>"\n', "smtp.hostname", "must be a host name"),
    ("[mail]\nmax_attachments = -1\n", "mail.max_attachments", "greater than or equal to 0"),
]


@pytest.mark.parametrize(("toml", "key", "reason"), STARTUP_CHECKED, ids=[k for _, k, _ in STARTUP_CHECKED])
def test_values_only_used_later_are_checked_when_loading(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    msg = problems_of(write(tmp_path, toml))
    assert f"{key}: " in msg and reason in msg, msg


@pytest.mark.parametrize(("toml", "key", "reason"), STARTUP_CHECKED, ids=[k for _, k, _ in STARTUP_CHECKED])
def test_cli_run_exits_2_naming_a_value_only_used_later(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    write(tmp_path, toml, "bad.toml")
    ports = {"CASEGATE_SMTP__PORT": "0", "CASEGATE_HTTP__PORT": "0", "CASEGATE_ADMIN__PORT": "0"}
    done = run_casegate(tmp_path, "run", "--config", "bad.toml", env=ports)
    assert done.returncode == 2, done.stderr
    assert f"{key}: " in done.stderr and reason in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "casegate-data").exists()  # refused before anything was started


def test_the_values_that_are_fine_still_load(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, """
[http]
public_base_url = "https://support.example.com:8443/casegate"

[[routing]]
address = "support@example.com"
origin = "Email"
priority = "Urgent"
type = ""
owner = "user:Lead@Example.com"

[rules]
reopen_status = "On Hold"

[channels.cti]
default_region = "GB"
owner = "queue:Phones"
origin = ""
"""))
    assert s.rules.reopen_status == "On Hold" and s.routing[0].priority == "Urgent"
    assert (s.channels.cti.default_region, s.channels.cti.owner) == ("GB", "queue:Phones")
    for status in ("New", "Working", "On Hold", "Escalated"):
        assert Settings(rules={"reopen_status": status}).rules.reopen_status == status


# -- [case]: the picklists the API accepts, the statuses and what closing requires --------------------------
def test_case_values_default_to_the_status_model_the_worker_runs_on() -> None:
    case = Settings().case
    assert (case.open_statuses, case.closed_statuses) == (("New", "Working", "On Hold", "Escalated"), ("Closed",))
    assert [s.name for s in case.statuses if s.stops_clock] == ["On Hold"]
    assert (case.default_status, case.default_priority, case.priorities) == ("New", "Medium", ["High", "Medium", "Low"])
    assert case.close_requires == ["Reason", "Resolution"] and case.external_ids["Contact"] == ["Email"]


def test_case_values_come_from_the_file_and_other_settings_are_checked_against_them(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, """
[rules]
reopen_status = "In Progress"

[case]
statuses = [{name = "Open"}, {name = "In Progress"}, {name = "Waiting", stops_clock = true},
            {name = "Solved", closed = true}, {name = "Spam", closed = true}]
default_status = "Open"
merged_status = "Spam"
priorities = ["P1", "P2", "P3"]
default_priority = "P3"
close_requires = []
external_ids = {Contact = ["Email", "Phone"]}
"""))
    assert (s.case.open_statuses, s.case.closed_statuses) == (("Open", "In Progress", "Waiting"), ("Solved", "Spam"))
    assert (s.rules.reopen_status, s.case.merged_status, s.case.close_requires) == ("In Progress", "Spam", [])
    assert s.case.external_ids == {"Contact": ["Email", "Phone"]}


def test_case_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASEGATE_CASE__CLOSE_REQUIRES", '["Resolution"]')
    monkeypatch.setenv("CASEGATE_CASE__ORIGINS", '["Email", "Fax"]')
    s = load_settings()
    assert (s.case.close_requires, s.case.origins) == (["Resolution"], ["Email", "Fax"])


ONLY_TWO = '[case]\nstatuses = [{name = "New"}, {name = "Closed", closed = true}]\n'
CASE_CHECKED = [
    ('[case]\ndefault_status = "Closed"\n', "case.default_status", "'Closed' is a closed status"),
    ('[case]\ndefault_status = "Nwe"\n', "case.default_status", "unknown case status 'Nwe'"),
    ('[case]\nmerged_status = "Working"\n', "case.merged_status", "'Working' is an open status; a closed one"),
    ('[case]\nstatuses = [{name = "Open"}]\ndefault_status = "Open"\n', "case", "at least one open and one closed"),
    ('[case]\nstatuses = [{name = "Open"}, {name = "Done", closed = true, stops_clock = true}]\n'
     'default_status = "Open"\n', "case", "a closed status does not stop the clock: Done"),
    (ONLY_TWO, "rules.reopen_status", "unknown case status 'Working' (one of 'New')"),
    ('[case]\npriorities = ["High", "high"]\n', "case", "priorities: listed twice: High, high"),
    ('[case]\ndefault_priority = "Urgent"\n', "case", "default_priority 'Urgent' is not one of priorities"),
    ('[case]\ndefault_origin = "Fax"\n', "case", "default_origin 'Fax' is not one of origins"),
    (f'[case]\ntypes = ["{LONG}"]\n', "case.types[0]", "at most 40"),
    ('[case]\nstatuses = [{name = "New", closed = "maybe"}]\n', "case.statuses[0].closed", "valid boolean"),
    ('[case]\nclose_requires = ["Colour"]\n', "case", "Colour is not a case field closing can require"),
    ('[case]\nexternal_ids = {Contact = ["CreatedDate"]}\n', "case",
     "external_ids.Contact: CreatedDate is not a field Contact records can be found by"),
    ('[case]\nexternal_ids = {Case = ["Subject"]}\n', "case", "'Case' is not an object records are upserted by"),
]


@pytest.mark.parametrize(("toml", "key", "reason"), CASE_CHECKED, ids=[r for _, _, r in CASE_CHECKED])
def test_case_values_are_checked_when_loading(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    msg = problems_of(write(tmp_path, toml))
    assert f"{key}: " in msg and reason in msg, msg
