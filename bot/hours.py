"""Working hours at delivery (issue 13): alerts routed in `digest` mode outside opening
hours wait in the outbox until the next opening, then go out as one message ("While you
were closed: N missed callers", a callback button per caller).

The hours are a process-wide setting, like the managers' names: the configuration loader
calls `set_hours` at start and on reload; without a file (or without [hours]) nothing is
ever held, so env-only setups deliver exactly as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class _HoursLike(Protocol):
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


def digest_title(lang: str, count: int) -> str:
    return DIGEST_TEXT.get(lang, DIGEST_TEXT["en"]).format(count=count)


__all__ = ["DIGEST_TEXT", "digest_title", "opening_at", "set_hours"]
