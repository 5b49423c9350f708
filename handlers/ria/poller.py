"""The safety net: ask RIA's calls_stat for yesterday..today on a schedule, within budget.

RIA's free package allows 30 requests an hour and 1,000 a month, and blocks the key for the
rest of the hour when it is exceeded, so every request is counted in the database (it
survives restarts) and checked against three limits before it is made: RIA's hourly cap, the
monthly quota, and a pace that spreads the quota over the month so it never runs out early.

The pace: by a moment `t` into a month of length `T`, at most `quota * (t / T + lead)`
requests, where the lead is half a day's share of the quota. The slack is proportional to the
quota, so a quota of 30 lasts the month as well as one of 1,000 does, and the last half day's
share is still there on the last day.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from calendar import monthrange
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handlers import metrics
from handlers.backoff import backoff
from handlers.intake import Intake
from handlers.ria.api import RiaApiError, RiaClient
from handlers.ria.records import parse_records
from storage import rejected, ria_requests
from storage.db import Store

log = logging.getLogger(__name__)

HOURLY_CAP = 30  # RIA's own limit per clock hour
# scheduled polls spread the hour's 30 over the hour, this many ahead of an even spread:
# at RIA_POLL_INTERVAL_MINUTES=1 a poll every minute until the hour's 30 were gone left the
# rest of the hour without a safety net (the 30-minute soak saw calls wait 17 minutes); now
# a poll every two minutes, and room for a retry. A larger lead spends the 30 earlier and
# leaves twice as many minutes at the hour's end without a poll
HOUR_LEAD = 2
PACE_LEAD_DAYS = 0.5  # the pace runs half a day's share of the quota ahead of an even spread
RETRY_BASE_S = 60.0  # the first retry after a transient failure


@dataclass
class Ingested:
    """What one answer from RIA gave: usable calls, new ones, unusable records kept."""

    calls: int
    new: int
    unusable: int
    alerts: int


@dataclass
class Budget:
    """How many requests may be made now; `reason` says why not when none."""

    allowed: bool
    reason: str = ""
    used_hour: int = 0
    used_month: int = 0
    routine: bool = False  # held back only to spread the hour's requests: not worth a log line


def hour_start(now: float) -> float:
    # RIA's hour is the clock hour; every zone we care about is whole-hour offset from UTC
    return now - now % 3600


def month_bounds(now: float, tz: ZoneInfo) -> tuple[float, float]:
    """The local month holding `now`, as epoch seconds [start, end): its real length, so a
    month with a clock change is an hour shorter or longer."""
    local = datetime.fromtimestamp(now, tz)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first.replace(tzinfo=None) + timedelta(days=32)).replace(day=1)
    return first.timestamp(), following.replace(tzinfo=tz).timestamp()


@dataclass(frozen=True)
class Pace:
    """The quota spread over one local month: `allows(t)` requests by epoch second `t`."""

    start: float
    end: float
    days: int
    quota: int

    @classmethod
    def at(cls, now: float, tz: ZoneInfo, monthly_quota: int) -> Pace:
        start, end = month_bounds(now, tz)
        local = datetime.fromtimestamp(now, tz)
        return cls(start, end, monthrange(local.year, local.month)[1], monthly_quota)

    def allows(self, now: float) -> float:
        """A fraction: request number `used + 1` may go when it is at most this."""
        elapsed = (now - self.start) / (self.end - self.start)
        return self.quota * (elapsed + PACE_LEAD_DAYS / self.days)

    def next_at(self, used: int) -> float:
        """When request number `used + 1` may go (epoch seconds)."""
        share = (used + 1) / self.quota - PACE_LEAD_DAYS / self.days
        return self.start + max(share, 0.0) * (self.end - self.start)


def check_budget(
    db: Any,
    now: float,
    tz: ZoneInfo,
    monthly_quota: int,
    account: str | None = None,
    *,
    spread_hour: bool = False,
) -> Budget:
    """`account`'s budget (None: the RIA_* account): each account its own 30/hour and quota.
    `spread_hour` (scheduled polls; not backfill, which needs its requests in a row): also
    at most HOUR_LEAD ahead of the hour's 30 spread evenly over it."""
    pace = Pace.at(now, tz, monthly_quota)
    # only requests up to now: rows from a clock that was ahead must not block polling
    used_hour = ria_requests.count_between(db, hour_start(now), now, account)
    used_month = ria_requests.count_between(db, pace.start, now, account)
    budget = Budget(True, used_hour=used_hour, used_month=used_month)
    if used_hour >= HOURLY_CAP:
        budget.allowed, budget.reason = False, f"{used_hour} requests this hour (RIA allows 30)"
    elif spread_hour and used_hour >= HOURLY_CAP * (now - hour_start(now)) / 3600 + HOUR_LEAD:
        budget.allowed, budget.routine = False, True
        budget.reason = f"{used_hour} requests this hour: spread over the hour (RIA allows 30)"
    elif used_month >= monthly_quota:
        budget.allowed, budget.reason = False, f"monthly quota of {monthly_quota} spent"
    elif used_month + 1 > pace.allows(now):
        budget.allowed = False
        next_at = datetime.fromtimestamp(pace.next_at(used_month), tz)
        budget.reason = (
            f"{used_month} of {monthly_quota} requests used this month; to last the month, "
            f"the next is at {next_at:%Y-%m-%d %H:%M}"
        )
    return budget


def requests_per_month(interval_minutes: float) -> int:
    return math.ceil(31 * 24 * 60 / interval_minutes)


class RiaPoller:
    def __init__(
        self,
        client: RiaClient,
        store: Store,
        intake: Intake,
        *,
        tz: ZoneInfo,
        interval_minutes: float,
        monthly_quota: int,
        alert_max_age_s: float,
        clock: Callable[[], float] = time.time,
        account: str | None = None,
        spread_hour: bool = True,
    ) -> None:
        # the [[account]] polled (issue 13; None: the RIA_* account): its own budget, and
        # every call it brings is stored as its
        self.account = account
        self.client = client
        self.store = store
        self.intake = intake
        self.tz = tz
        self.interval_minutes = interval_minutes
        self.spread_hour = spread_hour  # RIA_POLL_SPREAD
        self.monthly_quota = monthly_quota
        self.alert_max_age_s = alert_max_age_s
        self.clock = clock
        self.paused_until = 0.0
        self.failures = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._retry = False  # the last poll failed in a way worth retrying before the next
        self._permanent_logged: str | None = None  # the permanent answer already logged

    def warn_if_quota_too_small(self) -> None:
        needed = requests_per_month(self.interval_minutes)
        if needed > self.monthly_quota:
            log.warning(
                "RIA_POLL_INTERVAL_MINUTES=%g needs up to %d requests a month, more than "
                "RIA_MONTHLY_QUOTA=%d: the poller will pace itself and skip some runs",
                self.interval_minutes,
                needed,
                self.monthly_quota,
            )
        if self.interval_minutes < 2:
            log.warning(
                "RIA_POLL_INTERVAL_MINUTES=%g: RIA allows 30 requests an hour at most",
                self.interval_minutes,
            )

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "paused_until": self.paused_until or None,
        }

    async def fetch(self, day_from: date, day_to: date, *, purpose: str) -> list[Any]:
        """One budgeted request; records it whatever happens. Raises RiaApiError or
        BudgetExceeded."""
        now = self.clock()
        if now < self.paused_until:
            raise BudgetExceeded("paused after RIA's rate limit until the next hour")
        budget = await self.store.run(
            check_budget,
            now,
            self.tz,
            self.monthly_quota,
            self.account,
            spread_hour=self.spread_hour and purpose == "poll",
        )
        if not budget.allowed:
            raise BudgetExceeded(budget.reason, routine=budget.routine)
        status: int | None = 200
        error: str | None = None
        try:
            return await self.client.calls_stat(day_from, day_to)
        except RiaApiError as exc:
            status, error = exc.status, str(exc)
            if exc.rate_limited:
                self.paused_until = hour_start(self.clock()) + 3600
            raise
        finally:
            metrics.ria_request(status)
            await self.store.run(
                ria_requests.record,
                at=now,
                purpose=purpose,
                status=status,
                error=error,
                account=self.account,
            )

    async def poll_once(self) -> int | None:
        """Reconcile yesterday..today. Returns new calls stored, or None if nothing was asked."""
        today = datetime.fromtimestamp(self.clock(), self.tz).date()
        try:
            records = await self.fetch(today - timedelta(days=1), today, purpose="poll")
        except BudgetExceeded as exc:
            self._retry = False  # the budget decides; the next scheduled poll asks again
            # the account named when there are several (the RIA_* one's line as before)
            level = logging.DEBUG if exc.routine else logging.INFO
            log.log(level, "poller%s: skipped, %s", f" {self.account}" if self.account else "", exc)
            return None
        except RiaApiError as exc:
            self._on_error(exc)
            return None
        return await self._store(records)

    async def ingest(
        self, records: list[Any], *, source: str, alert_max_age_s: float | None = None
    ) -> Ingested:
        """Store what RIA answered: usable calls through the intake, every unusable record
        kept raw in `rejected_payloads` (as the webhook does), so nothing RIA sent is lost."""
        calls, bad = parse_records(records, self.tz)
        for record, reason in bad:
            await self.store.run(
                rejected.keep,
                body=repr(record).encode(),
                reason=reason,
                source=source,
                content_type=None,
                received_at=self.clock(),
            )
        max_age = self.alert_max_age_s if alert_max_age_s is None else alert_max_age_s
        result = await self.intake.accept(
            calls, source=source, alert_max_age_s=max_age, account=self.account
        )
        return Ingested(len(calls), result.accepted, len(bad), len(result.alerts))

    async def _store(self, records: list[Any]) -> int:
        got = await self.ingest(records, source="poll")
        self.failures, self.last_ok, self.last_error = 0, self.clock(), None
        self._retry = False
        if self._permanent_logged is not None:
            self._permanent_logged = None
            log.info("poller: RIA answers again")
        log.info(
            "poller: %d call(s) from RIA, %d new, %d alert(s) queued",
            got.calls,
            got.new,
            got.alerts,
        )
        return got.new

    def _on_error(self, exc: RiaApiError) -> None:
        self.last_error = str(exc)
        self._retry = False
        if exc.permanent:
            # the same answer comes until a setting changes: say which, once, and ask again
            # only at the normal interval (the operator may fix it without a restart of RIA)
            seen = f"{exc.status}:{exc.code}"
            if self._permanent_logged != seen:
                self._permanent_logged = seen
                what = "refused the API key" if exc.bad_key else "refused the request"
                log.error(
                    "poller: RIA %s (%s): %s; next try in %g min; the webhook keeps working",
                    what,
                    exc.code or f"HTTP {exc.status}",
                    exc.fix,
                    self.interval_minutes,
                )
            return
        if exc.rate_limited:
            log.warning("poller: RIA's rate limit reached; paused until the next hour")
            return
        self.failures += 1
        self._retry = True
        log.warning("poller: %s (attempt %d); will retry with backoff", exc, self.failures)

    def retry_delay(self) -> float | None:
        """Seconds until a retry after a transient failure, or None for no extra retry."""
        if not self._retry or not self.failures:
            return None
        # no jitter: one poller per process, and the chain must end before the next poll
        return backoff(
            self.failures - 1, base=RETRY_BASE_S, cap=self.interval_minutes * 60 / 2, jitter=0
        )

    async def poll_and_retry(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> int | None:
        """A scheduled poll. After a transient failure it retries with backoff, each retry
        chained to the one before, until one works, the budget says no (every retry is a
        budgeted `fetch`), or the next scheduled poll would come first: the chain ends before
        it, so the scheduler never finds this job still running."""
        started = self.clock()
        next_poll = started + self.interval_minutes * 60
        result = await self.poll_once()
        while (delay := self.retry_delay()) is not None:
            # a retry that could still be waiting for RIA when the next poll is due: leave it
            # to that poll
            if self.clock() + delay + (self.client.timeout.total or 0.0) >= next_poll:
                break
            await sleep(delay)
            result = await self.poll_once()
        return result


class BudgetExceeded(Exception):
    """The request would break RIA's limits or the quota; nothing was sent."""

    def __init__(self, reason: str, *, routine: bool = False) -> None:
        super().__init__(reason)
        self.routine = routine
