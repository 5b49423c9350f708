"""Row 4: /stats month and the daily summary on a year of history (1,000,000 calls).

The clock is pinned to 23:59 on the last day of the latest complete month, so `month` is
always a whole month (the most calls it can cover, ~85k) and the day is a whole day, and the
figures do not drift with the date the bench runs on. Each figure is the median of
`repeats` runs through the same code the service runs (the Store's writer thread, then the
renderer), after one run that warms SQLite's page cache; the first run is kept too.
"""

from __future__ import annotations

import importlib
import inspect
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.gen_calls import generate
from bench.report import Row, fmt_ms
from bot import render
from handlers import commands
from handlers.periods import parse_period
from storage.db import Store
from storage.stats import missed_report, period_stats

TZ = ZoneInfo("Europe/Kyiv")
LANG = "uk"
MONTH_TARGET_MS = 50.0
DAILY_TARGET_MS = 200.0
CHART_TARGET_MS = 1000.0


@dataclass
class Params:
    calls: int = 1_000_000
    days: int = 365
    repeats: int = 10
    summary_bench: bool = True  # run bench/summary_bench.py when it exists


def pinned_now(today: datetime) -> datetime:
    """23:59:59 on the last day of the month before `today`'s."""
    last_day = today.replace(day=1) - timedelta(days=1)
    return last_day.replace(hour=23, minute=59, second=59, microsecond=0)


async def _timed(repeats: int, fn: Any) -> dict[str, float]:
    """The first (cold) run, then the median and max of `repeats` more, in ms."""
    runs: list[float] = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        await fn()
        runs.append((time.perf_counter() - started) * 1000)
    warm = runs[1:] or runs
    return {
        "first_ms": round(runs[0], 2),
        "median_ms": round(statistics.median(warm), 2),
        "max_ms": round(max(warm), 2),
    }


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    now = pinned_now(datetime.now(TZ))
    path = workdir / "stats" / "calls.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    made = generate(path, calls=params.calls, days=params.days, end=now.replace(tzinfo=None), tz=TZ)
    store = Store(path)
    await store.open()
    try:
        month = parse_period("month", now=now, tz=TZ)
        day = parse_period("today", now=now, tz=TZ)

        async def stats_month() -> None:
            reply = await commands.answer("stats", "month", store=store, tz=TZ, now=now)
            render.reply(reply, "html", LANG, TZ)

        async def daily() -> None:
            # what the daily summary reads (until bench/summary_bench.py times the real one)
            stats = await store.run(period_stats, day.start, day.end, top=commands.TOP_CARS)
            missed = await store.run(missed_report, day.start, day.end)
            render.reply(commands.StatsReply(day, stats), "html", LANG, TZ)
            render.reply(
                commands.MissedReply(day, missed.callers, missed.waiting, missed.reached),
                "html",
                LANG,
                TZ,
            )

        month_calls = (await store.run(period_stats, month.start, month.end)).total
        day_calls = (await store.run(period_stats, day.start, day.end)).total
        result: dict[str, Any] = {
            "database": made,
            "now": now.isoformat(),
            "month_calls": month_calls,
            "day_calls": day_calls,
            "stats_month": await _timed(params.repeats, stats_month),
            "daily_summary": await _timed(params.repeats, daily),
        }
    finally:
        await store.close()
    result["summary_bench"] = await run_summary_bench() if params.summary_bench else None
    return result


async def run_summary_bench() -> dict[str, Any] | None:
    """bench/summary_bench.py (the daily summary with its chart), when it exists: its
    main() returns a dict of figures."""
    try:
        module = importlib.import_module("bench.summary_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.summary_bench":
            raise
        return None
    result = module.main()
    if inspect.isawaitable(result):
        result = await result
    return dict(result)


def _chart_ms(summary: dict[str, Any] | None) -> float | None:
    """The chart's time from summary_bench's figures: a key naming the chart, in ms or s."""
    if not summary:
        return None
    for key, value in summary.items():
        if "chart" in key and isinstance(value, int | float):
            if key.endswith("_ms"):
                return float(value)
            if key.endswith("_s"):
                return float(value) * 1000
    return None


def rows(result: dict[str, Any]) -> list[Row]:
    db = result["database"]
    month, daily = result["stats_month"], result["daily_summary"]
    size = f"{db['calls']:,} calls over {db['days']} days ({db['size_mb']:.0f} MB)"
    out = [
        Row(
            4,
            "`/stats month`",
            fmt_ms(month["median_ms"]),
            f"≤ {MONTH_TARGET_MS:.0f} ms",
            met=month["median_ms"] <= MONTH_TARGET_MS,
            note=(
                f"{size}; a whole month ({result['month_calls']:,} calls); answer + render, "
                f"median of warm runs (first {fmt_ms(month['first_ms'])}, "
                f"max {fmt_ms(month['max_ms'])})"
            ),
        ),
        Row(
            4,
            "daily summary (figures)",
            fmt_ms(daily["median_ms"]),
            f"≤ {DAILY_TARGET_MS:.0f} ms",
            met=daily["median_ms"] <= DAILY_TARGET_MS,
            note=(
                f"period_stats + missed_report for a whole day ({result['day_calls']:,} "
                f"calls), rendered; first {fmt_ms(daily['first_ms'])}"
            ),
        ),
    ]
    chart = _chart_ms(result.get("summary_bench"))
    if chart is None:
        out.append(
            Row(
                4,
                "daily summary chart",
                "pending",
                f"≤ {CHART_TARGET_MS / 1000:.0f} s",
                note="bench/summary_bench.py (the summary feature) is not there yet",
            )
        )
    else:
        out.append(
            Row(
                4,
                "daily summary chart",
                fmt_ms(chart),
                f"≤ {CHART_TARGET_MS / 1000:.0f} s",
                met=chart <= CHART_TARGET_MS,
                note="bench/summary_bench.py",
            )
        )
    return out
