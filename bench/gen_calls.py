"""A year of calls for the stats row, made fast and shaped like a dealer's real traffic.

The database is made by storage.db.connect, so it has the real schema, migrations and
indexes. Calls are generated day by day in time order and inserted with one executemany in
one transaction. Migration 2's trigger would keep `prev_caller_at` (the caller's previous
call) but costs two index look-ups per insert (it took 2.5 of every 3.5 s here), so the
transaction drops it, fills the column itself from the same rule (the caller's latest call by
(started_at, call_id), which time order makes the last one seen), and re-creates the trigger
from its own stored SQL before it commits: the schema is left exactly as the service's.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from storage.db import connect

STATUSES = ["ANSWER", "NOANSWER", "CANCEL", "BUSY", "FAILED", "CONGESTION"]
STATUS_WEIGHTS = [68, 16, 9, 5, 1, 1]
MISSED = frozenset({"NOANSWER", "CANCEL", "BUSY"})  # the default MISSED_STATUSES

MANAGERS = [f"07313756{n:02d}" for n in range(8)]
MANAGER_WEIGHTS = [30, 20, 15, 10, 10, 7, 5, 3]
TRACKING = [f"07309464{n:02d}" for n in range(40)]

CARS: list[tuple[str | None, int, str | None, int]] = [
    (marka, 10 + i, model, 100 + 10 * i + j)
    for i, (marka, models) in enumerate(
        [
            ("Toyota", ["Camry", "RAV4", "Land Cruiser Prado", "Corolla"]),
            ("Volkswagen", ["Passat", "Tiguan", "Golf", "Touareg"]),
            ("Skoda", ["Octavia", "Superb", "Kodiaq"]),
            ("BMW", ["X5", "5 Series", "3 Series"]),
            ("Mercedes-Benz", ["E-Class", "GLE", "C-Class"]),
            ("Hyundai", ["Tucson", "Santa Fe"]),
            ("Kia", ["Sportage", "Ceed"]),
            ("Renault", ["Megane", "Duster"]),
            ("Audi", ["A6", "Q7"]),
            ("Nissan", ["Qashqai", "Leaf"]),
            ("Acura", ["MDX", ""]),  # "" : a make without a model, labelled "Acura"
        ]
    )
    for j, model in enumerate(models)
]
CARS.append((None, 0, None, 0))  # RIA sends no car for calls to a dealer's general number
CAR_WEIGHTS = [max(1, 40 - i * 1.3) for i in range(len(CARS) - 1)] + [60]

# local hour of day: a dealer's phones ring in business hours
HOUR_WEIGHTS = [
    1,
    1,
    1,
    1,
    1,
    2,
    5,
    15,
    50,
    90,
    100,
    100,
    95,
    90,
    95,
    95,
    90,
    80,
    60,
    40,
    25,
    12,
    5,
    2,
]
WEEKDAY_WEIGHTS = [1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.3]  # Monday first

CALLERS = 300_000  # distinct callers over the year; a few call often (a squared draw)

_INSERT = """
INSERT INTO calls (call_id, started_at, local_date, status, caller_phone, caller_e164,
    destination_phone, phone, duration, waiting, link, marka, marka_id, model, model_id,
    price, missed, raw, source, received_at, prev_caller_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
TRIGGER = "calls_prev_caller"


def _days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def _rows(calls: int, days: int, end: datetime, tz: ZoneInfo, seed: int) -> Iterator[tuple]:
    rng = random.Random(seed)
    first = (end - timedelta(days=days - 1)).date()
    day_list = _days(first, days)
    weights = [WEEKDAY_WEIGHTS[d.weekday()] for d in day_list]
    total_weight = sum(weights)
    call_id = 50_000_000
    made = 0
    last_call: dict[str, int] = {}  # caller -> started_at of their latest call so far
    for index, day in enumerate(day_list):
        # the last day gets whatever rounding left, so the total is exact
        n = calls - made if index == days - 1 else round(calls * weights[index] / total_weight)
        n = max(0, min(n, calls - made))
        made += n
        hours = rng.choices(range(24), HOUR_WEIGHTS, k=n)
        moments = sorted(
            datetime(day.year, day.month, day.day, h, rng.randrange(60), rng.randrange(60))
            for h in hours
        )
        statuses = rng.choices(STATUSES, STATUS_WEIGHTS, k=n)
        managers = rng.choices(MANAGERS, MANAGER_WEIGHTS, k=n)
        cars = rng.choices(CARS, CAR_WEIGHTS, k=n)
        for local, status, manager, car in zip(moments, statuses, managers, cars, strict=True):
            call_id += 1
            started_at = int(local.replace(tzinfo=tz).timestamp())
            caller = f"067{int(CALLERS * rng.random() ** 2):07d}"
            e164 = "+38" + caller
            prev_caller_at = last_call.get(e164)
            last_call[e164] = started_at
            answered = status == "ANSWER"
            duration = rng.randrange(15, 600) if answered else 0
            waiting = rng.randrange(3, 40) if answered else rng.randrange(5, 90)
            marka, marka_id, model, model_id = car
            stamp = local.isoformat(timespec="seconds")
            tracking = TRACKING[call_id % len(TRACKING)]
            link = (
                f"https://track.ria.com/call_link/{call_id:x}/{local:%Y/%m/%d}/"
                f"38{manager}=38{caller}={local:%H-%M-%S}.wav"
                if answered
                else ""
            )
            raw: dict[str, Any] = {
                "call_id": call_id,
                "caller_phone": caller,
                "date": stamp,
                "destination_phone": manager,
                "duration": duration,
                "link": link,
                "marka": marka,
                "marka_id": marka_id,
                "model": model,
                "model_id": model_id,
                "phone": tracking,
                "price": 0,
                "status": status,
                "waighting": waiting,
            }
            yield (
                call_id,
                started_at,
                stamp,
                status,
                caller,
                e164,
                manager,
                tracking,
                duration,
                waiting,
                link,
                marka,
                marka_id or None,
                model or None,
                model_id or None,
                0,
                int(status in MISSED),
                json.dumps(raw, ensure_ascii=False),
                "webhook",
                started_at + 5.0,
                prev_caller_at,
            )


PRESS_SHARE = 0.65  # a missed call after which a manager presses "called back" (if in time)
_INSERT_RESOLUTION = "INSERT INTO resolutions VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def _resolutions(conn: Any, seed: int) -> Iterator[tuple]:
    """Resolutions as the service makes them, so /stats and /missed time the resolved path:
    after a missed call a manager may press the button (30 s .. ~2 days later), unless the
    caller calls again first; a press, or a later answered call of the same caller, resolves
    all their open missed calls at once (same resolved_at). About 70 % end up resolved."""
    rng = random.Random(seed + 1)
    rows = conn.execute(
        "SELECT caller_e164, started_at, call_id, missed FROM calls"
        " WHERE caller_e164 IS NOT NULL ORDER BY caller_e164, started_at, call_id"
    ).fetchall()
    open_ids: list[int] = []
    for i, (caller, started, call_id, missed) in enumerate(rows):
        if i and rows[i - 1][0] != caller:
            open_ids = []
        if not missed:
            for open_id in open_ids:
                yield (open_id, float(started), "answered", None, None, call_id, None, None)
            open_ids = []
            continue
        open_ids.append(call_id)
        if rng.random() >= PRESS_SHARE:
            continue
        delay = rng.choice([rng.uniform(30, 900), rng.uniform(900, 7200), rng.uniform(7200, 2e5)])
        after = rows[i + 1] if i + 1 < len(rows) else None
        if after is None or after[0] != caller or started + delay < after[1]:
            for open_id in open_ids:
                yield (open_id, started + delay, "button", "Bench", "telegram:1", None, None, None)
            open_ids = []


def generate(
    path: Path,
    *,
    calls: int,
    days: int = 365,
    end: datetime,
    tz: ZoneInfo,
    seed: int = 20261128,
) -> dict[str, Any]:
    """Write `calls` calls over the `days` days up to `end` (a local time) into a new
    database at `path`; returns how long it took and how big it is."""
    started = time.monotonic()
    db = connect(path)
    conn = db.conn
    # a big page cache for the load only: the random-order indexes (by caller, by manager)
    # otherwise spill to disk over and over as they grow past SQLite's default 2 MB
    conn.execute("PRAGMA cache_size = -1048576")
    try:
        (trigger_sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (TRIGGER,)
        ).fetchone()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"DROP TRIGGER {TRIGGER}")
        conn.executemany(_INSERT, _rows(calls, days, end, tz, seed))
        conn.execute(trigger_sql)
        conn.executemany(_INSERT_RESOLUTION, _resolutions(conn, seed))
        conn.execute("COMMIT")
        count = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        resolved = conn.execute("SELECT COUNT(*) FROM resolutions").fetchone()[0]
        missed = conn.execute("SELECT COUNT(*) FROM calls WHERE missed = 1").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {
        "calls": count,
        "resolved_share": round(resolved / missed, 3) if missed else 0.0,
        "days": days,
        "seconds": round(time.monotonic() - started, 1),
        "size_mb": round(path.stat().st_size / 1024 / 1024, 1),
    }
