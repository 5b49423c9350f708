"""The PERIOD argument of `/stats` and `/missed`: words or dates to a range of local days.

A day's bounds are its local midnights, taken from zoneinfo, never "start + 86400": in
Europe/Kyiv the day the clocks go forward lasts 23 hours and the day they go back 25.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS = 366  # a year, leap or not: enough for any report, and bounds the query's work

# Words, English and Ukrainian, to the canonical key.
_WORDS = {
    "today": "today",
    "сьогодні": "today",
    "yesterday": "yesterday",
    "вчора": "yesterday",
    "week": "week",
    "тиждень": "week",
    "month": "month",
    "місяць": "month",
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# how the bot writes dates in Ukrainian (28.11.2026): what people copy back into a command
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", re.ASCII)


class PeriodError(ValueError):
    """A PERIOD the user got wrong. `key` names the message (bot/i18n), `text` is their input."""

    def __init__(self, key: str, text: str) -> None:
        super().__init__(f"{key}: {text!r}")
        self.key = key
        self.text = text


@dataclass(frozen=True)
class Period:
    key: str  # "today", "week", ..., "2026-11-28" or "2026-11-01..2026-11-28" (ISO whatever
    # the spelling typed: 28.11.2026 too)
    first_day: date
    last_day: date  # inclusive
    start: int  # UTC epoch of first_day 00:00 local
    end: int  # UTC epoch of the day after last_day, 00:00 local (exclusive)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def local_midnight(day: date, tz: ZoneInfo) -> int:
    """UTC epoch of the first moment of `day` in `tz`.

    fold=0 picks the earlier instant when midnight happens twice, and when a zone skips
    midnight itself the instant it maps to is the day's first one; either way the day
    starts there.
    """
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp())


def period_of(key: str, first_day: date, last_day: date, tz: ZoneInfo) -> Period:
    return Period(
        key=key,
        first_day=first_day,
        last_day=last_day,
        start=local_midnight(first_day, tz),
        end=local_midnight(last_day + timedelta(days=1), tz),
    )


def today_in(now: datetime, tz: ZoneInfo) -> date:
    """The local date of `now`; a naive `now` is taken as already local."""
    return now.date() if now.tzinfo is None else now.astimezone(tz).date()


def parse_period(text: str | None, *, now: datetime, tz: ZoneInfo) -> Period:
    """Parse a PERIOD; raises PeriodError (a ValueError) with a message key on bad input."""
    raw = (text or "").strip()
    word = raw.lower()
    today = today_in(now, tz)
    if not word:
        word = "today"
    key = _WORDS.get(word)
    if key == "today":
        return period_of(key, today, today, tz)
    if key == "yesterday":
        day = today - timedelta(days=1)
        return period_of(key, day, day, tz)
    if key == "week":
        return period_of(key, today - timedelta(days=6), today, tz)
    if key == "month":
        return period_of(key, today.replace(day=1), today, tz)

    first_text, sep, last_text = word.partition("..")
    first = _parse_date(first_text.strip(), raw)
    last = _parse_date(last_text.strip(), raw) if sep else first
    if last < first:
        raise PeriodError("period_reversed", raw)
    if (last - first).days + 1 > MAX_DAYS:
        raise PeriodError("period_too_long", raw)
    if last > today:
        raise PeriodError("period_in_future", raw)
    key = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
    return period_of(key, first, last, tz)


def parse_day(text: str) -> date:
    """'2026-11-28' or '28.11.2026' to a date; ValueError (saying what is accepted) if not.

    For every place a single date is typed in: chat commands here, the CLI's --from/--to.
    """
    try:
        return _parse_date(text.strip(), text)
    except PeriodError as exc:
        if exc.key == "bad_date":
            raise ValueError(f"there is no such date: {text!r}") from None
        raise ValueError(f"{text!r} is not a date (use YYYY-MM-DD or DD.MM.YYYY)") from None


def _parse_date(text: str, raw: str) -> date:
    # fullmatch first: date.fromisoformat also takes "20261128" and "2026-W48-6"
    dotted = _DOTTED_DATE.fullmatch(text)
    try:
        if dotted:
            day, month, year = (int(g) for g in dotted.groups())
            return date(year, month, day)
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        raise PeriodError("bad_date", raw) from None
    raise PeriodError("bad_period", raw)
