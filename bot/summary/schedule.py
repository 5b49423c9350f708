"""When summaries go out, exactly once each, whatever restarts happen in between.

Each summary has one outbox row per target with the dedup key
`summary:<daily|weekly>:<day>:<target>` (the day, or the Monday of the week reported), so
queueing it twice is a no-op. Rather than a cron job at SUMMARY_TIME, which fires once and
is lost if the service is down (or the event loop busy, or the clock jumps), a tick runs at
the start of every minute and at start-up and asks: which summaries should exist by now,
today? Those not in the outbox yet are built and queued. So a restart after the summary
went out sends nothing, and a service that was down at SUMMARY_TIME sends it when it comes
back, the same day (the weekly one: the same Monday). A summary missed for a whole day is
not sent late: yesterday's figures at lunchtime would be noise, and the next one comes.

A SUMMARY_TIME before EARLY_SUMMARY (06:00, before any day's first call could be in), such
as 00:00, reports the day that has just ended rather than the one just begun.

Before a summary is built, the poller reconciles with RIA (when polling is on), so calls
whose webhook was lost are in it. That wait is bounded: a slow RIA delays the summary by
RECONCILE_TIMEOUT_S at most, never cancels it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.delivery.render import FORMATS
from bot.summary import chart
from bot.summary import text as summary_text
from bot.summary.build import DAILY, WEEKLY, Summary, build, payload
from storage import outbox
from storage.db import Store
from storage.outbox import OutboxItem, Target
from storage.summary import existing_keys

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.config import Settings
    from handlers.ria.poller import RiaPoller

log = logging.getLogger(__name__)

WEEKLY_AT = clock_time(9, 0)  # Monday, local: the start of the working week
# a daily summary due before this reports the previous day: the new one has barely begun
EARLY_SUMMARY = clock_time(6, 0)
RECONCILE_TIMEOUT_S = 30.0
FRESH_POLL_S = 120.0  # a poll this recent is reconciliation enough
# at most one reconciliation this often: should queueing fail after it (and be retried each
# minute), RIA's quota is not spent a request a minute
RECONCILE_EVERY_S = 15 * 60.0
DEFAULT_PROMISE_S = 15 * 60.0  # CALLBACK_WITHIN_MINUTES's default


@dataclass(frozen=True)
class Due:
    """A summary that should exist by now: the day, or the Monday of the week reported."""

    kind: str
    day: date

    def key(self, target: Target) -> str:
        return f"summary:{self.kind}:{self.day.isoformat()}:{target}"


def local_at(day: date, when: clock_time, tz: ZoneInfo) -> datetime:
    """`when` on `day` in `tz`. A time the clocks skip (03:30 the day they go forward from
    03:00 to 04:00) falls at the end of the gap, 04:00, the first moment after it; a time
    that happens twice counts at its first occurrence."""
    wall = datetime.combine(day, when)
    moment = wall.replace(tzinfo=tz)  # fold=0: the first occurrence of a repeated time
    if _wall(moment.timestamp(), tz) == wall:
        return moment
    # in a gap: fold=1 reads it with the offset after the change (an instant before the gap,
    # whose wall time is earlier), fold=0 with the offset before (an instant after the gap);
    # the gap's end is the first instant between them whose wall time is not earlier
    before = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    after = math.ceil(moment.timestamp())
    while after - before > 1:
        middle = (before + after) // 2
        if _wall(middle, tz) >= wall:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, tz)


def _wall(timestamp: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(timestamp, tz).replace(tzinfo=None)


def due(now: datetime, *, summary_time: clock_time | None, weekly: bool, tz: ZoneInfo) -> list[Due]:
    """The summaries that should have gone out by `now` (aware), today only."""
    today = now.astimezone(tz).date()
    # compare instants: two datetimes with the same tzinfo compare by wall time, which would
    # put a skipped or repeated time somewhere else
    at = now.timestamp()
    wanted = []
    if summary_time is not None and at >= local_at(today, summary_time, tz).timestamp():
        early = summary_time < EARLY_SUMMARY
        wanted.append(Due(DAILY, today - timedelta(days=1) if early else today))
    if weekly and today.weekday() == 0 and at >= local_at(today, WEEKLY_AT, tz).timestamp():
        wanted.append(Due(WEEKLY, today - timedelta(days=7)))
    return wanted


def promise_s(settings: Settings) -> float:
    """The callback promise the figures measure against, in seconds: CALLBACK_WITHIN_MINUTES,
    or its default (15 min) when it is 0 (no reminders; "within the promise" still means
    something to the team)."""
    return (settings.callback_within_minutes * 60) or DEFAULT_PROMISE_S


async def draw_chart(s: Summary, lang: str, tz: ZoneInfo) -> bytes | None:
    """The PNG, or None: no calls, no matplotlib, or drawing failed (the text still goes)."""
    if s.stats.total == 0 or not chart.available():
        return None
    try:
        # CPU-bound for ~0.1 s (more with the import of matplotlib), so off the loop, and in
        # a child process: in ours matplotlib (+34 MB) would stay resident for good
        return await chart.draw_isolated(summary_text.chart_data(s, lang, tz))
    except Exception:
        log.exception("summary: drawing the chart failed; sending the text alone")
        return None


async def summary_items(
    store: Store,
    kind: str,
    day: date,
    *,
    targets: Sequence[Target],
    key: Callable[[Target], str],
    tz: ZoneInfo,
    lang: str,
    now: float,
    with_chart: bool = True,
    within_s: float | None = None,  # the callback promise: the callback figures (issue 12)
    scope: tuple[str, str] | None = None,  # a route's chat: its calls only (issue 13)
) -> tuple[Summary, list[OutboxItem]]:
    """Build the summary once and make one outbox item per target (not yet inserted)."""
    s = await store.run(build, kind, day, tz, now=now, within_s=within_s, scope=scope)
    texts = {fmt: summary_text.text(s, fmt, lang, tz) for fmt in FORMATS}
    png = await draw_chart(s, lang, tz) if with_chart else None
    data = payload(s, texts, png)
    items = [
        OutboxItem(
            dedup_key=key(target),
            kind="summary",
            target=target,
            created_at=now,
            next_attempt_at=now,
            payload=data,
        )
        for target in targets
    ]
    return s, items


class SummaryScheduler:
    def __init__(
        self,
        store: Store,
        *,
        targets: Sequence[Target],
        tz: ZoneInfo,
        lang: str,
        summary_time: clock_time | None,
        weekly: bool,
        submit: Callable[[list[OutboxItem]], None],
        poller: RiaPoller | None = None,
        clock: Callable[[], float] = time.time,
        reconcile_timeout: float = RECONCILE_TIMEOUT_S,
        within_s: float | None = None,
        routed: Callable[[], Iterable[Target]] = tuple,
    ) -> None:
        self.within_s = within_s
        # the chats only a route sends to (issue 13): each gets its own summary over the
        # calls routed to it; asked at every tick, so a SIGHUP reload counts at once
        self.routed = routed
        self.store = store
        self.targets = list(targets)
        self.tz = tz
        self.lang = lang
        self.summary_time = summary_time
        self.weekly = weekly
        self.submit = submit
        self.poller = poller
        self.clock = clock
        self.reconcile_timeout = reconcile_timeout
        self._done: set[str] = set()  # keys known to be in the outbox: no query each minute
        self._background: set[asyncio.Task[Any]] = set()
        self._reconciled_at: float | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: Store,
        *,
        submit: Callable[[list[OutboxItem]], None],
        poller: RiaPoller | None,
        routed: Callable[[], Iterable[Target]] = tuple,
    ) -> SummaryScheduler:
        return cls(
            store,
            targets=settings.alert_targets(),
            tz=settings.tz,
            lang=settings.language,
            summary_time=settings.summary_time,
            weekly=settings.summary_weekly,
            submit=submit,
            poller=poller,
            within_s=promise_s(settings),
            routed=routed,
        )

    @property
    def enabled(self) -> bool:
        return self.summary_time is not None or self.weekly

    def schedule(self, scheduler: AsyncIOScheduler) -> None:
        """Tick now (the catch-up after downtime) and at the start of every minute."""
        if not self.enabled:
            log.info("summaries are off (SUMMARY_TIME empty, SUMMARY_WEEKLY=off)")
            return
        scheduler.add_job(
            self.tick,
            "cron",
            second=0,
            id="summaries",
            next_run_time=datetime.now(self.tz),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=30,
        )
        parts = []
        if self.summary_time is not None:
            parts.append(f"daily at {self.summary_time:%H:%M}")
        if self.summary_time is not None and self.summary_time < EARLY_SUMMARY:
            parts[-1] += " (for the day before)"
        if self.weekly:
            parts.append(f"weekly on Monday at {WEEKLY_AT:%H:%M}")
        log.info("summaries: %s (%s)", ", ".join(parts), self.tz.key)

    async def tick(self) -> list[OutboxItem]:
        """Queue every summary that is due and not in the outbox yet; returns the new rows."""
        try:
            return await self._tick()
        except Exception:
            # the next minute tries again; nothing is half-queued (one transaction)
            log.exception("summary: could not queue; retrying in a minute")
            return []

    async def _tick(self) -> list[OutboxItem]:
        now = datetime.fromtimestamp(self.clock(), self.tz)
        wanted = due(now, summary_time=self.summary_time, weekly=self.weekly, tz=self.tz)
        routed = [t for t in self.routed() if t not in self.targets]
        keys = [d.key(t) for d in wanted for t in [*self.targets, *routed]]
        if all(k in self._done for k in keys):
            return []
        self._done |= await self.store.run(existing_keys, keys)
        # (due, scope, targets): the main chats together over every call, a routed chat alone
        groups: list[tuple[tuple[str, str] | None, list[Target]]] = [(None, self.targets)]
        groups += [((t.channel, t.id), [t]) for t in routed]
        todo = [
            (d, scope, [t for t in targets if d.key(t) not in self._done])
            for d in wanted
            for scope, targets in groups
        ]
        todo = [(d, scope, targets) for d, scope, targets in todo if targets]
        if not todo:
            return []
        await self.reconcile()
        queued: list[OutboxItem] = []
        for d, scope, targets in todo:
            s, items = await summary_items(
                self.store,
                d.kind,
                d.day,
                targets=targets,
                key=d.key,
                tz=self.tz,
                lang=self.lang,
                now=self.clock(),
                within_s=self.within_s,
                scope=scope,
            )
            new = await self.store.run(outbox.enqueue, items)
            self._done.update(item.dedup_key for item in items)
            log.info(
                "summary %s queued for %d target(s): %d call(s)%s",
                s.key,
                len(new),
                s.stats.total,
                "" if "png" in items[0].payload else ", no chart",
            )
            self.submit(new)
            queued += new
        return queued

    async def close(self) -> None:
        """Cancel a reconciliation still running in the background and wait for it to end,
        so nothing touches the HTTP session or the database after they are closed."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        # a cancelled poll still records the request it made (that is its budget)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._background.difference_update(tasks)

    async def reconcile(self) -> None:
        """Let the poller fetch what the webhook may have missed, for a bounded time."""
        poller = self.poller
        if poller is None:
            return
        now = self.clock()
        if poller.last_ok is not None and now - poller.last_ok < FRESH_POLL_S:
            return
        if self._reconciled_at is not None and now - self._reconciled_at < RECONCILE_EVERY_S:
            return
        self._reconciled_at = now
        # not cancelled on timeout: the poll finishes in the background and stores its calls
        task = asyncio.create_task(poller.poll_once(), name="summary reconcile")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        done, _ = await asyncio.wait({task}, timeout=self.reconcile_timeout)
        if not done:
            log.warning(
                "summary: RIA did not answer within %.0f s; building the summary without it",
                self.reconcile_timeout,
            )
