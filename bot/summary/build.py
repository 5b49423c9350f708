"""Daily and weekly summaries: what they contain, built in one go on the writer thread.

A daily summary covers one local day up to the moment it is built (the *cutoff*: the send
time, or the day's end for a past day), and compares each key figure with the same window a
week earlier: the same weekday, up to the same wall-clock time. A 20:00 summary is never
held against a whole day. A weekly summary covers Monday–Sunday (local) and compares with
the week before.

Hours are local wall-clock hours, 24 of them, whatever the day's length: RIA's dates are
local times without an offset, so the two 03:00–04:00 hours of the day the clocks go back
cannot be told apart in RIA's data anyway; their calls share the 03 bucket, and on the day
the clocks go forward the 03 bucket stays empty. The summary says so on those days.

The summary is built (and its chart drawn) once, when it is queued; the outbox row carries
the finished texts and the PNG, so every target gets the same figures, a retry sends what
was built, and the dispatcher needs nothing but the payload.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlite_utils

from bot.delivery import names
from handlers.chat.periods import Period, period_of
from storage import summary as sql
from storage.outbox import OutboxItem
from storage.stats import MissedReport, PeriodStats, missed_report, period_stats

DAILY, WEEKLY = "daily", "weekly"
KINDS = (DAILY, WEEKLY)
WAITING_LIMIT = 10  # missed callers listed one by one; the others are counted
TOP_CARS = 5
BUSIEST = 3  # busiest hours named in the text


@dataclass(frozen=True)
class Bucket:
    """Calls in one hour of the day, or one day."""

    total: int = 0
    answered: int = 0
    missed: int = 0

    @property
    def other(self) -> int:
        return self.total - self.answered - self.missed

    def __add__(self, other: Bucket) -> Bucket:
        return Bucket(
            self.total + other.total, self.answered + other.answered, self.missed + other.missed
        )


@dataclass(frozen=True)
class ClockChange:
    """A day on which the clocks moved: `hour` happened twice (back) or not at all."""

    day: date
    hour: int
    back: bool  # True: the hour repeated (25-hour day); False: it was skipped (23 hours)


@dataclass(frozen=True)
class Summary:
    kind: str  # daily | weekly
    period: Period
    cutoff: int  # UTC epoch: calls before this count (period.end once the period is over)
    stats: PeriodStats
    before_period: Period  # a week earlier
    before_cutoff: int
    before: PeriodStats
    missed: MissedReport  # callers who missed in the window; waiting = not reached since
    hours: tuple[Bucket, ...]  # 24, by local wall-clock hour
    days: tuple[tuple[date, Bucket], ...]  # every day of the period, in order
    clock_changes: tuple[ClockChange, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return self.cutoff >= self.period.end

    @property
    def key(self) -> str:
        """'daily:2026-11-28', 'weekly:2026-11-23' (the Monday): the outbox key's core."""
        return f"{self.kind}:{self.period.first_day.isoformat()}"

    @property
    def filename(self) -> str:
        if self.kind == WEEKLY:
            return f"summary-week-{self.period.first_day.isoformat()}.png"
        return f"summary-{self.period.first_day.isoformat()}.png"

    def busiest(self, n: int = BUSIEST) -> list[tuple[int, Bucket]]:
        """The `n` hours with most calls, busiest first (earlier hour on a tie)."""
        ranked = sorted(enumerate(self.hours), key=lambda hb: (-hb[1].total, hb[0]))
        return [(hour, b) for hour, b in ranked[:n] if b.total]


# ---- periods ------------------------------------------------------------------------------


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def period_for(kind: str, day: date, tz: ZoneInfo) -> Period:
    """The local day, or the Monday–Sunday week that holds `day`."""
    if kind == DAILY:
        return period_of(day.isoformat(), day, day, tz)
    if kind == WEEKLY:
        first = monday_of(day)
        return period_of(f"week:{first.isoformat()}", first, first + timedelta(days=6), tz)
    raise ValueError(f"unknown summary kind {kind!r}")


def week_earlier(moment: int, tz: ZoneInfo) -> int:
    """The same local wall-clock time 7 days before (not 7 × 86400 s: DST)."""
    local = datetime.fromtimestamp(moment, tz).replace(tzinfo=None) - timedelta(days=7)
    return int(local.replace(tzinfo=tz).timestamp())


def clock_changes(period: Period, tz: ZoneInfo) -> tuple[ClockChange, ...]:
    """The days of `period` that were 23 or 25 hours long, and which hour it concerned."""
    changes = []
    for i in range(period.days):
        day = period.first_day + timedelta(days=i)
        one = period_of(day.isoformat(), day, day, tz)
        length = one.end - one.start
        if length == 24 * 3600 or length % 3600:
            continue  # an ordinary day (or a half-hour shift, which no hour bucket shows)
        seen = [datetime.fromtimestamp(t, tz).hour for t in range(one.start, one.end, 3600)]
        if length > 24 * 3600:
            hour = next(h for i, h in enumerate(seen) if h in seen[:i])
            changes.append(ClockChange(day, hour, back=True))
        else:
            hour = min(set(range(24)) - set(seen))
            changes.append(ClockChange(day, hour, back=False))
    return tuple(changes)


# ---- building -----------------------------------------------------------------------------


def build(
    db: sqlite_utils.Database,
    kind: str,
    day: date,
    tz: ZoneInfo,
    *,
    now: float,
    waiting_limit: int = WAITING_LIMIT,
    within_s: float | None = None,  # the callback promise; None: no callback figures
    scope: tuple[str, str] | None = None,  # (channel, chat): only the calls routed to it
) -> Summary:
    """Everything a summary shows, for the period that holds `day`, as of `now`.

    Read-only and quick (storage/stats walks indexes; see bench/summary_bench.py): run it
    on the writer thread with `await store.run(build, ...)`.
    """
    period = period_for(kind, day, tz)
    cutoff = max(period.start, min(int(now), period.end))
    before_period = period_for(kind, period.first_day - timedelta(days=7), tz)
    before_cutoff = before_period.end if cutoff >= period.end else week_earlier(cutoff, tz)
    before_cutoff = max(before_period.start, min(before_cutoff, before_period.end))

    # one line per named manager ([[manager]], issue 13), however many lines she has
    stats = period_stats(
        db,
        period.start,
        cutoff,
        top=TOP_CARS,
        within_s=within_s,
        scope=scope,
        group=names.canonical,
    )
    before = period_stats(db, before_period.start, before_cutoff, top=0, scope=scope)
    missed = missed_report(db, period.start, cutoff, limit=waiting_limit, scope=scope)

    hours = [Bucket()] * 24
    days = {period.first_day + timedelta(days=i): Bucket() for i in range(period.days)}
    for slot in sql.slots(db, period.start, cutoff, scope):
        local = datetime.fromtimestamp(slot.start, tz)
        bucket = Bucket(slot.total, slot.answered, slot.missed)
        hours[local.hour] += bucket
        days[local.date()] += bucket
    return Summary(
        kind=kind,
        period=period,
        cutoff=cutoff,
        stats=stats,
        before_period=before_period,
        before_cutoff=before_cutoff,
        before=before,
        missed=missed,
        hours=tuple(hours),
        days=tuple(days.items()),
        clock_changes=clock_changes(period, tz),
    )


# ---- the outbox payload -------------------------------------------------------------------


def payload(summary: Summary, texts: dict[str, str], png: bytes | None) -> dict[str, Any]:
    """What an outbox row carries: a text per format, and the chart (base64) if drawn."""
    data: dict[str, Any] = {
        "summary": summary.kind,
        "first_day": summary.period.first_day.isoformat(),
    }
    data.update(texts)
    if png is not None:
        data["png"] = base64.b64encode(png).decode("ascii")
        data["filename"] = summary.filename
    return data


def payload_image(item: OutboxItem) -> tuple[bytes, str] | None:
    """(PNG, file name) of a summary row that has a chart; None for everything else."""
    if item.kind != "summary":
        return None
    encoded = item.payload.get("png")
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None  # a damaged picture must not stop the text from going out
    return png, str(item.payload.get("filename") or "summary.png")
