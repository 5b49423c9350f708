"""Row 4: /stats month and the daily summary on a year of history (1,000,000 calls).

The clock is pinned to 23:59 on the last day of the latest complete month, so `month` is
always a whole month (the most calls it can cover, ~85k) and the day is a whole day, and the
figures do not drift with the date the bench runs on. Each figure is the median of
`repeats` runs through the same code the service runs (the Store's writer thread, then the
renderer), after one run that warms SQLite's page cache; the first run is kept too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.gen_calls import generate
from bench.report import Row, fmt_ms
from bot.delivery import render
from handlers.chat import commands
from handlers.chat.periods import parse_period
from storage.db import Store
from storage.missed import open_callers
from storage.stats import period_stats

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
    summary_args: list[str] = field(default_factory=list)  # its own defaults: 1M calls


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
            missed = await store.run(open_callers, day.start, day.end)
            render.reply(commands.StatsReply(day, stats), "html", LANG, TZ)
            render.reply(
                commands.MissedReply(day, missed.callers, missed.waiting, missed.resolved),
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
    summary = await run_summary_bench(params.summary_args) if params.summary_bench else None
    result["summary_bench"] = summary
    return result


async def run_summary_bench(args: list[str]) -> dict[str, Any] | None:
    """bench/summary_bench.py (the real daily summary, with its chart) when it exists.

    Its main(argv) makes its own database, prints its own table (kept here, not printed:
    the bench prints one table) and returns its figures as a dict.
    """
    try:
        module = importlib.import_module("bench.summary_bench")
    except ModuleNotFoundError as exc:
        if exc.name != "bench.summary_bench":
            raise
        return None
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # in a thread: it is synchronous and takes a while, and the loop has nothing to do
        figures = await asyncio.to_thread(module.main, args)
    return {**dict(figures), "printed": printed.getvalue()}


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
                f"{size}, {db.get('resolved_share', 0.0):.0%} of the missed calls resolved "
                "(button presses, answered later); "
                f"a whole month ({result['month_calls']:,} calls); answer + render, "
                f"median of warm runs (first {fmt_ms(month['first_ms'])}, "
                f"max {fmt_ms(month['max_ms'])})"
            ),
        )
    ]
    summary = result.get("summary_bench")
    if summary is None:
        # until the summary feature's own benchmark exists: what the summary will read
        return [
            *out,
            Row(
                4,
                "daily summary (figures only)",
                fmt_ms(daily["median_ms"]),
                f"≤ {DAILY_TARGET_MS:.0f} ms",
                met=daily["median_ms"] <= DAILY_TARGET_MS,
                note=(
                    f"period_stats + open_callers for a whole day ({result['day_calls']:,} "
                    f"calls), rendered; first {fmt_ms(daily['first_ms'])}"
                ),
            ),
            Row(
                4,
                "daily summary chart",
                "pending",
                f"≤ {CHART_TARGET_MS / 1000:.0f} s",
                note="bench/summary_bench.py (the summary feature) is not there yet",
            ),
        ]
    their_db = (
        f"bench/summary_bench.py on its own {summary['calls_in_db']:,}-call database, "
        f"median of {summary['runs']}"
    )
    return [
        *out,
        Row(
            4,
            "daily summary",
            fmt_ms(summary["build_ms"]),
            f"≤ {DAILY_TARGET_MS:.0f} ms",
            met=summary["build_ms"] <= DAILY_TARGET_MS,
            note=(
                f"{their_db}: every query of the summary ({summary['calls_in_day']:,} calls "
                f"that day) and its text in 3 formats; first {fmt_ms(summary['build_first_ms'])}"
            ),
        ),
        Row(
            4,
            "daily summary with its chart",
            fmt_ms(summary["build_with_chart_ms"]),
            f"≤ {CHART_TARGET_MS / 1000:.0f} s",
            met=summary["build_with_chart_ms"] <= CHART_TARGET_MS,
            note=(
                "the same and the PNG; the first, which imports matplotlib: "
                f"{fmt_ms(summary['first_chart_ms'])}"
            ),
        ),
    ]
