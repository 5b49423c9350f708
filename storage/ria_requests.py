"""The RIA API requests we made: the poller's budget is counted from here, across restarts."""

from __future__ import annotations

import sqlite_utils


def record(
    db: sqlite_utils.Database, *, at: float, purpose: str, status: int | None, error: str | None
) -> None:
    db.conn.execute(
        "INSERT INTO ria_requests (at, purpose, status, error) VALUES (?, ?, ?, ?)",
        (at, purpose, status, error),
    )


def count_since(db: sqlite_utils.Database, since: float) -> int:
    return db.conn.execute("SELECT COUNT(*) FROM ria_requests WHERE at >= ?", (since,)).fetchone()[
        0
    ]
