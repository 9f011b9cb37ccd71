"""API requests counted for `/limits` and the `Sforce-Limit-Info: api-usage=<used>/<max>` header that
Salesforce clients read (simple-salesforce keeps it as `api_usage`). Counted per process and per UTC
day, and not enforced: under `casegate run` each process counts its own share, so the figures are a
lower bound of the whole daemon's use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

LIMITS: dict[str, int] = {
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyStreamingApiEvents": 1_000_000,
    "SingleEmail": 5_000,
    "MassEmail": 5_000,
    "HourlyODataCallout": 10_000,
    "ConcurrentSyncApexCalls": 10,
}
"""The other limits Salesforce lists, reported as plausible constants, all remaining: casegate has no
such API to use them up."""


class Usage:
    """Requests this process answered today (UTC) against `daily_max`."""

    def __init__(self, daily_max: int, today: Callable[[], date] = lambda: datetime.now(UTC).date()):
        self.daily_max = daily_max
        self.today = today
        self.day = today()
        self.used = 0

    def count(self) -> int:
        """One more request; returns today's count."""
        day = self.today()
        if day != self.day:
            self.day, self.used = day, 0
        self.used += 1
        return self.used

    def header(self) -> str:
        return f"api-usage={self.used}/{self.daily_max}"

    def limits(self) -> dict[str, Any]:
        """The `/limits` resource: each limit's Max and Remaining."""
        body: dict[str, Any] = {"DailyApiRequests": {"Max": self.daily_max,
                                                     "Remaining": max(0, self.daily_max - self.used)}}
        body.update({name: {"Max": n, "Remaining": n} for name, n in LIMITS.items()})
        return body
