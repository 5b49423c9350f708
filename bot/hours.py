"""Working hours at delivery (issue 13): alerts routed in `digest` mode outside opening
hours wait in the outbox until the next opening, then go out as one message ("While you
were closed: N missed callers", a callback button per caller).

The hours are a process-wide setting, like the managers' names: the configuration loader
calls `set_hours` at start and on reload; without a file (or without [hours]) nothing is
ever held, so env-only setups deliver exactly as before.

Which hours apply to an alert: a route with hours of its own marks the outbox rows it
makes with those hours' key (payload "hours", see bot/route_hours.py); such a row is held
until, and reminded of by, that route's hours. Every other row (the defaults, a route
that inherits, a manager's personal copy) follows the global [hours]. A key the current
file no longer has (the route's hours changed, then SIGHUP) falls back to the global ones.
"""

from __future__ import annotations

import hashlib
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
_by_key: dict[str, _HoursLike] = {}  # the routes' own hours, by hours_key

DIGEST_TEXT = {
    "en": "While you were closed: {count} missed callers",
    "uk": "Поки ви були зачинені: пропущених абонентів — {count}",
}


def hours_key(hours: _HoursLike) -> str:
    """A short name for a set of opening hours that stays the same across reloads as long
    as the hours do (the days' spans and the holidays; after_hours decides at ingest)."""
    spans = sorted((day, tuple(spans)) for day, spans in hours.days.items())
    text = repr((spans, sorted(hours.holidays)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def set_hours(
    hours: _HoursLike | None, tz: ZoneInfo, routes: Mapping[str, _HoursLike] | None = None
) -> None:
    """The global [hours] (None: always open) in the local TIMEZONE, and the routes' own
    hours by hours_key (one assignment each: a worker never sees half of a reload)."""
    global _hours, _tz, _by_key
    _hours, _tz, _by_key = hours, tz, dict(routes or {})


def _of(key: object) -> _HoursLike | None:
    """The hours a row follows: its route's (payload "hours"), else the global ones."""
    if isinstance(key, str) and key in _by_key:
        return _by_key[key]
    return _hours


def opening_at(now: float, key: object = None) -> float:
    """When held digest alerts may go: `now` while open (or without hours), else the next
    opening (wall clock seconds) of the row's hours (`key`: its payload's "hours")."""
    hours = _of(key)
    if hours is None:
        return now
    moment = datetime.fromtimestamp(now, _tz)
    if hours.is_open(moment):
        return now
    return hours.next_opening(moment).timestamp()


def active() -> bool:
    """Whether any opening hours are configured, global or a route's (reminders then
    count open time only)."""
    return _hours is not None or bool(_by_key)


def open_seconds(start: float, end: float, key: object = None) -> float:
    """Seconds of [start, end] (wall clock) during the opening hours a row follows (`key`:
    its payload's "hours"; else the global ones); without hours, all of it. Reminders
    (CALLBACK_WITHIN_MINUTES) count these: a call missed at 18:55 before a 19:00 closing
    is due 10 open minutes later, at 09:10 the next opening day."""
    hours = _of(key)
    if hours is None or end <= start:
        return max(end - start, 0.0)
    total = 0.0
    day = datetime.fromtimestamp(start, _tz).date()
    last = datetime.fromtimestamp(end, _tz).date()
    while day <= last:
        if day not in hours.holidays:
            for a, b in hours.days.get(day.weekday(), ()):
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


__all__ = [
    "DIGEST_TEXT",
    "active",
    "digest_title",
    "hours_key",
    "open_seconds",
    "opening_at",
    "set_hours",
]
