"""The calls of a time range as plain rows, for `ria-calls-bot export` (CSV/JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

# what an accountant or a CRM needs of a call, in this order; `raw` and bookkeeping stay
COLUMNS = [
    "call_id",
    "started_at",
    "status",
    "missed",
    "caller_e164",
    "destination_phone",
    "phone",
    "duration",
    "waiting",
    "marka",
    "model",
    "price",
    "link",
]


def calls_between(
    db: sqlite_utils.Database, start: int, end: int, *, missed_only: bool = False
) -> Iterator[dict[str, Any]]:
    """Calls with start <= started_at < end (UTC epoch seconds), oldest first, one dict per
    call, read lazily (a year of calls never sits in memory at once). The range is a walk
    over calls_started_at; with `missed_only`, over the partial index calls_missed."""
    where = "started_at >= :start AND started_at < :end"
    if missed_only:
        where += " AND missed = 1"
    return db.table("calls").rows_where(
        where,
        {"start": start, "end": end},
        select=", ".join(COLUMNS),
        order_by="started_at, call_id",
    )
