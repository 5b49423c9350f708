"""The RIA API requests we made: the poller's budget is counted from here, across restarts."""

from __future__ import annotations

import sqlite_utils


def record(
    db: sqlite_utils.Database,
    *,
    at: float,
    purpose: str,
    status: int | None,
    error: str | None,
    account: str | None = None,
) -> None:
    """One request, of `account` (an [[account]] name; None: the RIA_* account)."""
    row = {"at": at, "purpose": purpose, "status": status, "error": error, "account": account}
    db.table("ria_requests").insert(row)


def count_between(
    db: sqlite_utils.Database, since: float, until: float, account: str | None = None
) -> int:
    """Requests of `account` (None: the RIA_* account) made in [since, until]: each account
    has its own quota. Rows after `until` were recorded while the clock was ahead: they did
    not happen in this window, and counting them would block polling for as long as they
    lie in the future."""
    return db.table("ria_requests").count_where(
        "account IS ? AND at >= ? AND at <= ?", [account, since, until]
    )
