"""The process's Prometheus metrics, served as text at `GET /metrics` on the admin listener ([admin],
loopback by default; never on the public webhook port).

Each casegate process keeps its own figures (scrape every process: ingest, worker, or one that runs
both). Labels are bounded by configuration: channel names, mailbox names, SMTP reply codes, HTTP
statuses, route templates (never raw paths), listener names, worker outcomes. The registry is
casegate's own, so only these figures and the process's CPU, memory and descriptors are exported."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ACCEPTED = Counter("casegate_ingest_accepted", "Messages durably on the bus, by channel.", ["channel"],
                   registry=REGISTRY)
HANDOFF_FAILURES = Counter("casegate_ingest_handoff_failures", "Hand-offs refused because the bus or the blob "
                           "store failed; the sender was told to retry. stage: bus or blobs.", ["stage"],
                           registry=REGISTRY)
PUBLISH_SECONDS = Histogram("casegate_ingest_publish_seconds", "Time from publish to the bus confirming "
                            "the write.", buckets=_LATENCY, registry=REGISTRY)
SMTP_REFUSED = Counter("casegate_smtp_refused", "SMTP commands refused by casegate, by reply code (550 not "
                       "a routing address, 452 too many recipients, 451 hand-off failed, 421 shutting down).", ["code"],
                       registry=REGISTRY)
WEBHOOK_REJECTED = Counter("casegate_webhook_rejected", "Webhook requests refused, by channel and HTTP status "
                           "(401/403 signature, 400 malformed, 413 too large, 429 rate limit, 503 retry).",
                           ["channel", "status"], registry=REGISTRY)
IMAP_FETCHED = Counter("casegate_imap_fetched", "Mails handed off from each IMAP mailbox.", ["mailbox"],
                       registry=REGISTRY)
IMAP_AUTH_FAILURES = Counter("casegate_imap_auth_failures", "Logins the IMAP server refused (wrong password, "
                             "rejected or expired XOAUTH2 token), by mailbox.", ["mailbox"], registry=REGISTRY)
IMAP_RECONNECTS = Counter("casegate_imap_reconnects", "IMAP connections lost or refused for other reasons, "
                          "by mailbox.", ["mailbox"], registry=REGISTRY)
IMAP_CONNECTED = Gauge("casegate_imap_connected", "1 while the mailbox's watcher is logged in.", ["mailbox"],
                       registry=REGISTRY)
WORKER_MESSAGES = Counter("casegate_worker_messages", "Messages the worker committed, by channel and outcome "
                          "(created, threaded, duplicate, suppressed, pending …).", ["channel", "outcome"],
                          registry=REGISTRY)
WORKER_DEAD_LETTERED = Counter("casegate_worker_dead_lettered", "Records sent to the dead-letter topic.",
                               registry=REGISTRY)
WORKER_RETRIES = Counter("casegate_worker_retries", "Batches retried after a temporary bus or store failure.",
                         registry=REGISTRY)
WORKER_BATCH_SECONDS = Histogram("casegate_worker_batch_seconds", "Time to put one batch in the case store.",
                                 buckets=_LATENCY, registry=REGISTRY)
OUTBOUND_MAIL = Counter("casegate_outbound_mail", "Outbound mails (acknowledgements, notices) by result: sent, "
                        "retry (relay failed, tried again later), failed (given up).", ["result"],
                        registry=REGISTRY)

HTTP_RESPONSES = Counter("casegate_http_responses", "Responses of the public HTTP listener by route (the matched "
                         "route's template, or \"unmatched\") and status, 500s of failed handlers included.",
                         ["route", "status"], registry=REGISTRY)
CONNECTIONS_OPEN = Gauge("casegate_connections_open", "Connections open on each listener (smtp, http, admin).",
                         ["listener"], registry=REGISTRY)
CONNECTIONS_LIMIT = Gauge("casegate_connections_limit", "Each listener's cap on open connections (sized from "
                          "the open-file limit when \"auto\").", ["listener"], registry=REGISTRY)
CONNECTIONS_REFUSED = Counter("casegate_connections_refused", "Connections refused at once (SMTP 421, HTTP 503) "
                              "because the listener (reason=listener) or the client's address (reason=per_ip) "
                              "was at its cap.", ["listener", "reason"], registry=REGISTRY)
HEADER_TIMEOUTS = Counter("casegate_http_header_timeouts", "HTTP connections closed because the request headers "
                          "did not arrive within http.header_timeout.", ["listener"], registry=REGISTRY)
ACCEPT_FAILURES = Counter("casegate_accept_failures", "accept() failures of a listening socket for want of a "
                          "resource (EMFILE, ENFILE, ENOBUFS, ENOMEM).", ["listener"], registry=REGISTRY)


@functools.cache
def accepted(channel: str) -> Counter:
    """`ACCEPTED.labels(channel)`, looked up once per channel (`labels` takes a lock and builds its key on
    every call: three times the cost of the increment)."""
    return ACCEPTED.labels(channel)


def exposition() -> tuple[bytes, str]:
    """The metrics as Prometheus text, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
