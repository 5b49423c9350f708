"""The [hours] table of the configuration file (bot/config_file.py): days, spans, holidays,
after_hours; and the error type both modules raise (key path + what is wrong)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, time
from typing import Any

from handlers.routing import DAYS, Hours
from storage.routes import Mode

MODES: tuple[Mode, ...] = ("normal", "silent", "digest")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")

Key = tuple[str | int, ...]


class Bad(Exception):
    def __init__(self, key: Key, what: str) -> None:
        super().__init__(what)
        self.key = key
        self.what = what


def strings(value: Any, key: Key) -> tuple[str, ...]:
    values = [value] if isinstance(value, str | int) and not isinstance(value, bool) else value
    if not isinstance(values, list) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in values
    ):
        raise Bad(key, "expects a string or a list of strings")
    out = tuple(str(v).strip() for v in values)
    if not out or not all(out):
        raise Bad(key, "is empty")
    return out


def parse_hours(t: Mapping[str, Any], key: Key) -> Hours:
    days: dict[int, tuple[tuple[time, time], ...]] = {}
    holidays: set[date] = set()
    after: Mode = "normal"
    for name, value in t.items():
        here = (*key, name)
        if name == "holidays":
            for text in strings(value, here) if value != [] else ():
                try:
                    holidays.add(date.fromisoformat(text))
                except ValueError:
                    raise Bad(here, f'"{text}" is not a date (YYYY-MM-DD)') from None
        elif name == "after_hours":
            if value not in MODES:
                raise Bad(here, f'"{value}" is not one of: {", ".join(MODES)}')
            after = value
        else:
            for day in _days(name, here):
                days[day] = _spans(value, here)
    return Hours(days, frozenset(holidays), after)


def _days(name: str, key: Key) -> list[int]:
    first, dash, last = name.partition("-")
    if first not in DAYS or (dash and last not in DAYS):
        raise Bad(
            key,
            "unknown key (expected a day or range of days: mon tue wed thu fri sat sun, "
            "e.g. mon-fri; holidays; after_hours)",
        )
    a, b = DAYS.index(first), DAYS.index(last) if dash else DAYS.index(first)
    if b < a:
        raise Bad(key, f"{name}: the range runs backwards (write e.g. mon-fri)")
    return list(range(a, b + 1))


def _spans(value: Any, key: Key) -> tuple[tuple[time, time], ...]:
    if not isinstance(value, str):
        raise Bad(key, 'expects opening hours as text, e.g. "09:00-19:00" or "closed"')
    if value.strip().lower() in ("", "closed"):
        return ()
    spans = []
    for part in value.split(","):
        m = _SPAN.match(part.strip())
        bad = f'"{part.strip()}" is not a time range (HH:MM-HH:MM, e.g. 09:00-19:00)'
        if not m:
            raise Bad(key, bad)
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise Bad(key, bad)
        start = time(h1, m1)
        end = time.max if h2 == 24 else time(h2, m2)
        if end <= start:
            raise Bad(
                key, f'"{part.strip()}": closes before it opens (overnight: split it in two days)'
            )
        spans.append((start, end))
    return tuple(spans)
