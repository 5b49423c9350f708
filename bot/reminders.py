"""The reminder job (issue 12): an alert still open CALLBACK_WITHIN_MINUTES after its call
gets one reminder, a reply to the alert.

storage's due_reminders finds them and queues each once ever (the dedup key is the alert
message), so this job only has to run often enough and hand what is new to the dispatcher,
as the summaries do. Rows queued while the service was down are picked up by the
dispatcher at start like any pending row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot import hours
from storage.db import Store
from storage.outbox import OutboxItem
from storage.resolutions import due_reminders

log = logging.getLogger(__name__)

MAX_INTERVAL_S = 30.0  # a reminder is at most this late
MIN_INTERVAL_S = 0.5
# calls older than this are never reminded of, when ALERT_MAX_AGE_MINUTES does not say (0)
# or says less than the promise plus a margin: a restart after a long outage must not
# flood the chat with reminders of yesterday
MARGIN_S = 600.0
# with opening hours (issue 13) the promise counts open time only, so a call missed before
# closing is due after the next opening: look this far back (a long weekend, a holiday)
HOURS_LOOKBACK_S = 8 * 86400.0


class Reminders:
    def __init__(
        self,
        store: Store,
        *,
        submit: Callable[[list[OutboxItem]], None],
        within_s: float,
        alert_max_age_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.submit = submit
        self.within_s = within_s
        self.max_age_s = max(alert_max_age_s, within_s + MARGIN_S)
        self.clock = clock
        self.failed = False

    @property
    def enabled(self) -> bool:
        return self.within_s > 0

    @property
    def interval_s(self) -> float:
        """Often enough that a reminder is late by at most a third of the promise (30 s)."""
        return min(MAX_INTERVAL_S, max(self.within_s / 3, MIN_INTERVAL_S))

    async def run_once(self) -> int:
        """Queue the reminders now due and hand them to the dispatcher; how many."""
        now = self.clock()
        try:
            if hours.active():
                # both the promise and the age limit in open time: a call of last night is
                # not "too old" at 09:00, and not yet due at 09:00 either; the hours of the
                # route that sent the alert (its payload's "hours"), else the global [hours]
                def due(started: float, key: str | None) -> bool:
                    open_s = hours.open_seconds(started, now, key)
                    return self.within_s <= open_s <= self.max_age_s

                items = await self.store.run(
                    due_reminders, now, self.within_s, HOURS_LOOKBACK_S, due
                )
            else:
                items = await self.store.run(due_reminders, now, self.within_s, self.max_age_s)
        except asyncio.CancelledError:
            return 0  # stopping: the next start finds them
        except Exception as exc:
            if not self.failed:  # once per outage, not every few seconds
                log.error("reminders: could not look for open alerts: %s", exc)
            self.failed = True
            return 0
        if self.failed:
            log.info("reminders: working again")
            self.failed = False
        if items:
            log.info("reminders: %d alert(s) still open after the promise", len(items))
            self.submit(items)
        return len(items)

    def schedule(self, scheduler: AsyncIOScheduler, now: datetime) -> None:
        if not self.enabled:
            log.info("reminders are off (CALLBACK_WITHIN_MINUTES=0)")
            return
        scheduler.add_job(
            self.run_once,
            "interval",
            seconds=self.interval_s,
            id="reminders",
            next_run_time=now + timedelta(seconds=1),
            max_instances=1,
            coalesce=True,
        )
