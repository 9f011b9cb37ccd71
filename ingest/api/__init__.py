"""A Salesforce-compatible REST API over the case store, on the public HTTP port, so that Salesforce
clients (simple-salesforce, jsforce, the Salesforce CLI, integration platforms) work against casegate:

    GET    /services/data                                versions [{"label", "url", "version"}] (no token)
    GET    /services/data/vNN.N/                         the resources of a version
    GET    …/sobjects                                    global describe
    GET    …/sobjects/{obj}[/describe]                   basic information / describe
    POST   …/sobjects/{obj}/                             create (201); Sforce-Auto-Assign: FALSE honoured
    GET    …/sobjects/{obj}/{id}[?fields=…]              read; PATCH update (204); DELETE (204)
    PATCH  …/sobjects/{obj}/{extField}/{value}           upsert (201 created, 200 updated, 300 several)
    GET    …/query?q=SOQL, …/queryAll?q=, …/query/{loc}  SOQL (casegate.store.soql), 2,000 records a page
    POST   …/composite                                   up to 25 subrequests, @{ref.field}, allOrNone
    POST   …/composite/sobjects (also PATCH, DELETE)     up to 200 records, allOrNone
    GET    …/limits                                      DailyApiRequests and the like
    POST   /services/oauth2/token                        client_credentials and refresh_token grants

Every resource of a version needs `Authorization: Bearer <token>` (ingest/api/auth.py); errors are
Salesforce's JSON arrays (ingest/api/errors.py); everything a client sends is bounded
(ingest/api/body.py; a request line over 8,190 bytes is refused by aiohttp's parser with 400).
Modules: `mount.py` (the sub-application, its error middleware), `routes.py` (the resource table),
`sobjects.py`, `composite.py`, `sobject_collections.py`, `query.py`, `oauth.py` (resources),
`operations.py` (record operations on casegate.store.records), `journal.py` (undoing an all-or-none
request), `context.py`, `usage.py`."""

from __future__ import annotations

from casegate.ingest.api.mount import mount_api

__all__ = ["mount_api"]
