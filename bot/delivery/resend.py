"""`ria-calls-bot resend --failed [--since DATE]`: give failed messages another try.

Failed rows go back to pending, due now and with a fresh day before they count as too old
(the dispatcher fails what waited longer than its max age). The service sends them when it
starts; one already running picks them up at its next start.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlite_utils

from storage.db import transaction


def resend_failed(db: sqlite_utils.Database, since: float | None) -> int:
    """Reset failed outbox rows created at or after `since` (epoch seconds; None: all) to
    pending; returns how many."""
    now = time.time()
    with transaction(db) as conn:
        cur = conn.execute(
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, created_at = ?,"
            " last_error = NULL WHERE state = 'failed' AND created_at >= ?",
            (now, now, since if since is not None else float("-inf")),
        )
        return cur.rowcount


async def run(database_path: str, since: date | None, tz: ZoneInfo) -> int:
    """The CLI command: reset, then say how many and when they go out."""
    from storage.db import Store

    store = Store(database_path, create=False)
    await store.open()
    start = None if since is None else datetime.combine(since, datetime.min.time(), tz)
    try:
        count = await store.run(resend_failed, None if start is None else start.timestamp())
    finally:
        await store.close()
    print(
        f"{count} failed message(s) set to go out again; the service sends them when it "
        "starts (restart it if it is running)"
    )
    return 0
