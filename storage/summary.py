"""The SQL behind the daily and weekly summaries that storage/stats does not already answer.

Calls are counted in 15-minute slots of UTC time. Every UTC offset in use is a whole number
of quarter hours, so a slot never straddles two local wall-clock hours (or days), and the
caller can map each slot to local time with zoneinfo: this module stays free of time zones,
like storage/stats, and the hours of a 23- or 25-hour day come out right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlite_utils

SLOT_S = 900

# A range of calls_started_at plus a lookup of status and missed per call: a day is a few
# thousand rows even for a busy dealer, well under a few milliseconds.
_SLOTS_SQL = """
SELECT started_at / 900 AS slot, COUNT(*), SUM(status = 'ANSWER'), SUM(missed)
FROM calls INDEXED BY calls_started_at
WHERE started_at >= :start AND started_at < :end
GROUP BY slot
"""


_ROUTED_TO = (
    "AND call_id IN (SELECT call_id FROM call_routes WHERE channel = :channel AND target = :target)"
)


@dataclass(frozen=True, order=True)
class Slot:
    """Calls that started in [start, start + SLOT_S)."""

    start: int  # UTC epoch seconds, a multiple of SLOT_S
    total: int
    answered: int
    missed: int


def slots(
    db: sqlite_utils.Database, start: int, end: int, scope: tuple[str, str] | None = None
) -> list[Slot]:
    """Non-empty 15-minute slots of calls with start <= started_at < end, in time order;
    with `scope` (channel, chat) only the calls routed to that chat (issue 13)."""
    sql = _SLOTS_SQL
    params: dict[str, object] = {"start": start, "end": end}
    if scope is not None:
        sql = sql.replace("GROUP BY", _ROUTED_TO + "\nGROUP BY")
        params |= {"channel": scope[0], "target": scope[1]}
    rows = db.conn.execute(sql, params)
    return sorted(
        Slot(slot * SLOT_S, total, answered or 0, missed or 0)
        for slot, total, answered, missed in rows
    )


def existing_keys(db: sqlite_utils.Database, keys: Iterable[str]) -> set[str]:
    """Which of these outbox dedup keys are already taken (whatever their state)."""
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for i in range(0, len(wanted), 500):  # SQLite's variable limit is 999 on old builds
        chunk = wanted[i : i + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.conn.execute(f"SELECT dedup_key FROM outbox WHERE dedup_key IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found
