"""Working hours at delivery (issue 13): alerts routed in `digest` mode outside opening
hours wait in the outbox until the next opening, then go out as one message ("While you
were closed: N missed callers", a callback button per caller).

The hours are a process-wide setting, like the managers' names: the configuration loader
calls `set_hours` at start and on reload; without a file (or without [hours]) nothing is
ever held, so env-only setups deliver exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Protocol
from zoneinfo import ZoneInfo


class _HoursLike(Protocol):
    @property
    def days(self) -> Mapping[int, tuple[tuple[clock_time, clock_time], ...]]: ...
    @property
    def holidays(self) -> frozenset[date]: ...

    def is_open(self, moment: datetime) -> bool: ...

    def next_opening(self, moment: datetime) -> datetime: ...


_hours: _HoursLike | None = None
_tz: ZoneInfo = ZoneInfo("UTC")

DIGEST_TEXT = {
    "en": "While you were closed: {count} missed callers",
    "uk": "Поки ви були зачинені: пропущених абонентів — {count}",
}


def set_hours(hours: _HoursLike | None, tz: ZoneInfo) -> None:
    """The global [hours] (None: always open) in the local TIMEZONE."""
    global _hours, _tz
    _hours, _tz = hours, tz


def opening_at(now: float) -> float:
    """When held digest alerts may go: `now` while open (or without hours), else the next
    opening (wall clock seconds)."""
    if _hours is None:
        return now
    moment = datetime.fromtimestamp(now, _tz)
    if _hours.is_open(moment):
        return now
    return _hours.next_opening(moment).timestamp()


def active() -> bool:
    """Whether opening hours are configured (reminders then count open time only)."""
    return _hours is not None


def open_seconds(start: float, end: float) -> float:
    """Seconds of [start, end] (wall clock) during opening hours; without hours, all of it.
    Reminders (CALLBACK_WITHIN_MINUTES) count these: a call missed at 18:55 before a 19:00
    closing is due 10 open minutes later, at 09:10 the next opening day."""
    if _hours is None or end <= start:
        return max(end - start, 0.0)
    total = 0.0
    day = datetime.fromtimestamp(start, _tz).date()
    last = datetime.fromtimestamp(end, _tz).date()
    while day <= last:
        if day not in _hours.holidays:
            for a, b in _hours.days.get(day.weekday(), ()):
                opens = datetime.combine(day, a, tzinfo=_tz).timestamp()
                closes = (
                    datetime.combine(day + timedelta(days=1), clock_time(0), tzinfo=_tz)
                    if b == clock_time.max  # 24:00
                    else datetime.combine(day, b, tzinfo=_tz)
                ).timestamp()
                total += max(0.0, min(end, closes) - max(start, opens))
        day += timedelta(days=1)
    return total


def digest_title(lang: str, count: int) -> str:
    return DIGEST_TEXT.get(lang, DIGEST_TEXT["en"]).format(count=count)


__all__ = ["DIGEST_TEXT", "active", "digest_title", "open_seconds", "opening_at", "set_hours"]
