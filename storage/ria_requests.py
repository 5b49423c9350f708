"""The RIA API requests we made: the poller's budget is counted from here, across restarts."""

from __future__ import annotations

import sqlite_utils


def record(
    db: sqlite_utils.Database, *, at: float, purpose: str, status: int | None, error: str | None
) -> None:
    row = {"at": at, "purpose": purpose, "status": status, "error": error}
    db.table("ria_requests").insert(row)


def count_between(db: sqlite_utils.Database, since: float, until: float) -> int:
    """Requests made in [since, until]. Rows after `until` were recorded while the clock was
    ahead: they did not happen in this window, and counting them would block polling for as
    long as they lie in the future."""
    return db.table("ria_requests").count_where("at >= ? AND at <= ?", [since, until])
