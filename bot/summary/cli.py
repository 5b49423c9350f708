"""`ria-calls-bot summary [DATE|week] [--send] [--chart FILE]`: preview or send a summary.

Without --send nothing leaves the machine: the text is printed and, with --chart, the PNG
written. With --send the summary goes through the outbox to every alert target, like
`send-test`, under a key of its own: a preview sent by hand never stops the scheduled
summary of the same day from going out.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from bot.config import Settings
from bot.summary import chart
from bot.summary import text as summary_text
from bot.summary.build import DAILY, WEEKLY, build, monday_of, payload_image
from bot.summary.schedule import draw_chart, promise_s, summary_items
from storage import outbox
from storage.db import Store
from storage.outbox import Target

_TODAY = ("", "today", "сьогодні")
_YESTERDAY = ("yesterday", "вчора")
_WEEK = ("week", "тиждень")


class UsageError(ValueError):
    pass


def parse_when(text: str, today: date) -> tuple[str, date]:
    """(kind, day): a day, or the Monday of the last full Monday–Sunday week."""
    word = text.strip().lower()
    if word in _TODAY:
        return DAILY, today
    if word in _YESTERDAY:
        return DAILY, today - timedelta(days=1)
    if word in _WEEK:
        return WEEKLY, monday_of(today) - timedelta(days=7)
    from bot.cli import DATE_FORMATS
    from handlers.chat.periods import parse_day

    try:
        day = parse_day(word)
    except ValueError as exc:
        why = "there is no such date" if "no such date" in str(exc) else DATE_FORMATS
        raise UsageError(f'"{text}" is not today, yesterday, week or a date ({why})') from None
    if day > today:
        raise UsageError(f"{day} is in the future")
    return DAILY, day


async def run(
    settings: Settings,
    when: str,
    *,
    send: bool,
    chart_path: str | None,
    timeout: float = 30.0,
) -> int:
    s = settings
    now = time.time()
    try:
        kind, day = parse_when(when, datetime.fromtimestamp(now, s.tz).date())
    except UsageError as exc:
        print(f"summary: {exc}", file=sys.stderr)
        return 2
    # managers by name, as in the chat (issue 13); a bad routing file: numbers, and a note
    from bot.routing_setup import load_names

    if (problem := load_names(s)) is not None:
        print(f"summary: managers shown by number: {problem}", file=sys.stderr)
    # an existing database only (the CLI says so before): a summary of a new, empty one
    # would be a summary of nothing
    store = Store(s.database_path, create=False)
    await store.open()
    try:
        if send:
            return await _send(s, store, kind, day, now, chart_path, timeout)
        summary = await store.run(build, kind, day, s.tz, now=now, within_s=promise_s(s))
        print(summary_text.text(summary, "text", s.language, s.tz))
        if chart_path is None:
            return 0
        if summary.stats.total == 0:
            print("no calls: no chart drawn", file=sys.stderr)
            return 0
        if not chart.available():
            return 1
        png = await draw_chart(summary, s.language, s.tz)
        if png is None:
            return 1
        await asyncio.to_thread(Path(chart_path).write_bytes, png)
        print(f"chart: {chart_path}", file=sys.stderr)
        return 0
    finally:
        await store.close()


async def _send(
    s: Settings,
    store: Store,
    kind: str,
    day: date,
    now: float,
    chart_path: str | None,
    timeout: float,
) -> int:
    def key(target: Target) -> str:
        return f"summary:{kind}:{day.isoformat()}:manual:{now}:{target}"

    _, items = await summary_items(
        store,
        kind,
        day,
        targets=s.alert_targets(),
        key=key,
        tz=s.tz,
        lang=s.language,
        now=now,
        within_s=promise_s(s),
    )
    image = payload_image(items[0]) if items else None
    if chart_path is not None and image is not None:
        await asyncio.to_thread(Path(chart_path).write_bytes, image[0])
    items = await store.run(outbox.enqueue, items)
    from bot.check import deliver_now

    # now or not at all: a summary that turns up an hour later, or twice after the operator
    # sent it again, does more harm than none
    return await deliver_now(s, store, items, timeout)
