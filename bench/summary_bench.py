"""How long a day's summary takes to build from a database of 1,000,000 calls.

    python -m bench.summary_bench [--calls N] [--days D] [--runs R]

Generates the database under a temporary directory (the real schema and migrations; rows
bulk-loaded in one transaction with the indexes and the prev_caller_at trigger created
afterwards, which is what the trigger would have computed row by row), then times, on one
long-lived connection as in the service:

- build: every query of the daily summary (the day, the same window a week before, missed
  callers, quarter-hour slots) and its text in the three formats. Target ≤ 200 ms.
- build + chart: the same and the PNG. Target ≤ 1 s. matplotlib's import (~0.5 s, once per
  process) is in the first run only and reported apart, as "first chart".

Figures are medians of `runs` runs. `main()` prints a table and returns them as a dict.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

TZ = ZoneInfo("Europe/Kyiv")
DAY = date(2026, 11, 25)  # a Wednesday: the day summarised, the last day of the history
MISSED = ("NOANSWER", "CANCEL", "BUSY")
# RIA's statuses in a plausible mix: most calls answered, a sixth or so missed
STATUSES = (
    ("ANSWER", 0.70),
    ("NOANSWER", 0.15),
    ("CANCEL", 0.08),
    ("BUSY", 0.05),
    ("FAILED", 0.015),
    ("CONGESTION", 0.005),
)
MAKES = [f"Make{i:02d}" for i in range(40)]
MODELS_PER_MAKE = 10
MANAGERS = [f"050{i:07d}" for i in range(25)]
CALLERS = 300_000  # repeat callers: ~3 calls each over the history
TARGET_BUILD_S = 0.200
TARGET_CHART_S = 1.0


def _hour_weights() -> list[float]:
    # a dealer's day: quiet at night, peaks late morning and mid-afternoon
    return [0.2] * 7 + [2, 5, 9, 10, 9, 7, 8, 9, 8, 6, 4, 2, 1, 0.5] + [0.3] * 3


def _rows(calls: int, days: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    statuses = [s for s, _ in STATUSES]
    status_weights = [w for _, w in STATUSES]
    hour_weights = _hour_weights()
    manager_weights = [1 / (i + 1) ** 0.7 for i in range(len(MANAGERS))]  # a few busy ones
    first = DAY - timedelta(days=days - 1)
    status_draw = rng.choices(statuses, status_weights, k=calls)
    hour_draw = rng.choices(range(24), hour_weights, k=calls)
    manager_draw = rng.choices(MANAGERS, manager_weights, k=calls)
    for call_id in range(1, calls + 1):
        day = first + timedelta(days=rng.randrange(days))
        local = datetime(day.year, day.month, day.day, hour_draw[call_id - 1])
        local += timedelta(seconds=rng.randrange(3600))
        status = status_draw[call_id - 1]
        caller = f"067{rng.randrange(CALLERS):07d}"
        roll = rng.random()
        marka = model = None
        if roll < 0.90:
            make = rng.randrange(len(MAKES))
            marka = MAKES[make]
            if roll < 0.85:
                model = f"Model{make:02d}{rng.randrange(MODELS_PER_MAKE)}"
        answered = status == "ANSWER"
        yield (
            call_id,
            int(local.replace(tzinfo=TZ).timestamp()),
            local.isoformat(timespec="seconds"),
            status,
            int(status in MISSED),
            caller,
            "+380" + caller[1:],
            manager_draw[call_id - 1],
            "0730946407",
            rng.randrange(20, 600) if answered else 0,
            rng.randrange(0, 60),
            "https://track.ria.com/call_link/x.wav" if answered else "",
            marka,
            model,
            f'{{"call_id": {call_id}, "caller_phone": "{caller}", "status": "{status}"}}',
            "webhook",
            local.timestamp(),
        )


def generate(path: Path, calls: int, days: int, seed: int = 1) -> float:
    """Create the database at `path`; returns the seconds it took."""
    from storage.db import connect

    started = time.perf_counter()
    db = connect(path)
    conn = db.conn
    conn.execute("PRAGMA synchronous = OFF")  # a throwaway database: no fsync per step
    # indexes and the trigger afterwards: building an index once beats maintaining it
    deferred = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'calls'"
        " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
    ).fetchall()
    for kind, name, _ in deferred:
        conn.execute(f"DROP {kind.upper()} {name}")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO calls (call_id, started_at, local_date, status, missed, caller_phone,"
        " caller_e164, destination_phone, phone, duration, waiting, link, marka, model, raw,"
        " source, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        _rows(calls, days, seed),
    )
    # what the trigger keeps: each caller's previous call (as migration 2 backfills it)
    conn.execute(
        "UPDATE calls SET prev_caller_at = p.prev FROM (SELECT call_id, LAG(started_at) OVER"
        " (PARTITION BY caller_e164 ORDER BY started_at, call_id) AS prev FROM calls"
        " WHERE caller_e164 != '') AS p WHERE calls.call_id = p.call_id"
    )
    for _, _, sql in deferred:
        conn.execute(sql)
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - started


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """(first run, median of the others, last result), in seconds."""
    times = []
    result = None
    for _ in range(runs + 1):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times[0], statistics.median(times[1:]), result


def measure(path: Path, runs: int) -> dict[str, Any]:
    from bot.delivery.render import FORMATS
    from bot.summary import chart
    from bot.summary import text as summary_text
    from bot.summary.build import DAILY, WEEKLY, build
    from storage.db import connect

    db: sqlite_utils.Database = connect(path)
    end_of_day = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), TZ).timestamp()
    at_20 = datetime(DAY.year, DAY.month, DAY.day, 20, tzinfo=TZ).timestamp()

    def daily(now: float = end_of_day) -> Any:
        s = build(db, DAILY, DAY, TZ, now=now)
        for fmt in FORMATS:
            summary_text.text(s, fmt, "uk", TZ)
        return s

    def daily_with_chart() -> bytes:
        return chart.draw(summary_text.chart_data(daily(), "uk", TZ))

    def weekly() -> Any:
        s = build(db, WEEKLY, DAY - timedelta(days=7), TZ, now=end_of_day)
        for fmt in FORMATS:
            summary_text.text(s, fmt, "uk", TZ)
        return s

    first_build, build_s, s = _time(daily, runs)
    _, build_20_s, _ = _time(lambda: daily(at_20), runs)
    _, weekly_s, _ = _time(weekly, runs)
    first_chart, chart_s, png = _time(daily_with_chart, runs)
    total = db.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    db.conn.close()
    return {
        "calls_in_db": total,
        "calls_in_day": s.stats.total,
        "build_ms": round(build_s * 1000, 1),
        "build_first_ms": round(first_build * 1000, 1),
        "build_at_20_00_ms": round(build_20_s * 1000, 1),
        "weekly_build_ms": round(weekly_s * 1000, 1),
        "build_with_chart_ms": round(chart_s * 1000, 1),
        "first_chart_ms": round(first_chart * 1000, 1),
        "png_bytes": len(png),
        "runs": runs,
        "target_build_ms": TARGET_BUILD_S * 1000,
        "target_with_chart_ms": TARGET_CHART_S * 1000,
        "ok": build_s <= TARGET_BUILD_S and chart_s <= TARGET_CHART_S,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m bench.summary_bench", description=__doc__)
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--days", type=int, default=365, help="history the calls spread over")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="summary-bench-") as tmp:
        path = Path(tmp) / "calls.db"
        gen_s = generate(path, args.calls, args.days)
        size_mb = path.stat().st_size / 1e6
        figures = {"generate_s": round(gen_s, 1), "db_mb": round(size_mb)}
        figures |= measure(path, args.runs)
    rows = [
        ("database", f"{figures['calls_in_db']:,} calls, {figures['db_mb']} MB", ""),
        ("generated in", f"{figures['generate_s']} s", ""),
        ("calls in the day", f"{figures['calls_in_day']:,}", ""),
        ("daily summary, no chart", f"{figures['build_ms']} ms", "≤ 200 ms"),
        ("  first run", f"{figures['build_first_ms']} ms", ""),
        ("  as of 20:00", f"{figures['build_at_20_00_ms']} ms", ""),
        ("weekly summary, no chart", f"{figures['weekly_build_ms']} ms", ""),
        ("daily summary + chart", f"{figures['build_with_chart_ms']} ms", "≤ 1000 ms"),
        ("  first chart (imports matplotlib)", f"{figures['first_chart_ms']} ms", ""),
    ]
    print(f"summary benchmark (median of {args.runs} runs)")
    for name, value, target in rows:
        print(f"  {name:<36} {value:>26}  {target}")
    print(f"  {'within targets':<36} {'yes' if figures['ok'] else 'NO':>26}")
    if args.json:
        print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
