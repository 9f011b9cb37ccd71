"""The case store: typed models, Alembic migrations, and the case service that is the only writer of
cases, messages and the timeline (used by the worker and, later, the REST API)."""
