"""The safety net: ask RIA's calls_stat for yesterday..today on a schedule, within budget.

RIA's free package allows 30 requests an hour and 1,000 a month, and blocks the key for the
rest of the hour when it is exceeded, so every request is counted in the database (it
survives restarts) and checked against three limits before it is made: RIA's hourly cap, the
monthly quota, and a pace that spreads the quota over the month so it never runs out early.
"""

from __future__ import annotations

import logging
import math
import time
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from handlers.intake import Intake
from handlers.ria_api import RiaApiError, RiaClient
from handlers.ria_records import parse_records
from storage import rejected, ria_requests
from storage.db import Store

log = logging.getLogger(__name__)

HOURLY_CAP = 30  # RIA's own limit per clock hour
PACE_SLACK = 24  # requests the pace may run ahead of an even spread (a day's worth at 60 min)


@dataclass
class Budget:
    """How many requests may be made now; `reason` says why not when none."""

    allowed: bool
    reason: str = ""
    used_hour: int = 0
    used_month: int = 0


def month_start(now: float, tz: ZoneInfo) -> float:
    local = datetime.fromtimestamp(now, tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def hour_start(now: float) -> float:
    # RIA's hour is the clock hour; every zone we care about is whole-hour offset from UTC
    return now - now % 3600


def check_budget(db: Any, now: float, tz: ZoneInfo, monthly_quota: int) -> Budget:
    used_hour = ria_requests.count_since(db, hour_start(now))
    start = month_start(now, tz)
    used_month = ria_requests.count_since(db, start)
    budget = Budget(True, used_hour=used_hour, used_month=used_month)
    if used_hour >= HOURLY_CAP:
        budget.allowed, budget.reason = False, f"{used_hour} requests this hour (RIA allows 30)"
    elif used_month >= monthly_quota:
        budget.allowed, budget.reason = False, f"monthly quota of {monthly_quota} spent"
    else:
        local = datetime.fromtimestamp(now, tz)
        seconds_in_month = monthrange(local.year, local.month)[1] * 86400
        pace = monthly_quota * (now - start) / seconds_in_month + PACE_SLACK
        if used_month >= pace:
            budget.allowed = False
            budget.reason = f"{used_month} requests this month is ahead of the quota's pace"
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
    ) -> None:
        self.client = client
        self.store = store
        self.intake = intake
        self.tz = tz
        self.interval_minutes = interval_minutes
        self.monthly_quota = monthly_quota
        self.alert_max_age_s = alert_max_age_s
        self.clock = clock
        self.paused_until = 0.0
        self.failures = 0
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._bad_key_logged = False

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
        budget = await self.store.run(check_budget, now, self.tz, self.monthly_quota)
        if not budget.allowed:
            raise BudgetExceeded(budget.reason)
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
            await self.store.run(
                ria_requests.record, at=now, purpose=purpose, status=status, error=error
            )

    async def poll_once(self) -> int | None:
        """Reconcile yesterday..today. Returns new calls stored, or None if nothing was asked."""
        today = datetime.fromtimestamp(self.clock(), self.tz).date()
        try:
            records = await self.fetch(today - timedelta(days=1), today, purpose="poll")
        except BudgetExceeded as exc:
            log.info("poller: skipped, %s", exc)
            return None
        except RiaApiError as exc:
            self._on_error(exc)
            return None
        return await self._store(records)

    async def _store(self, records: list[Any]) -> int:
        calls, bad = parse_records(records, self.tz)
        for record, reason in bad:
            await self.store.run(
                rejected.keep,
                body=repr(record).encode(),
                reason=reason,
                source="poll",
                content_type=None,
                received_at=self.clock(),
            )
        result = await self.intake.accept(
            calls, source="poll", alert_max_age_s=self.alert_max_age_s
        )
        self.failures, self.last_ok, self.last_error = 0, self.clock(), None
        log.info(
            "poller: %d call(s) from RIA, %d new, %d alert(s) queued",
            len(calls),
            result.accepted,
            len(result.alerts),
        )
        return result.accepted

    def _on_error(self, exc: RiaApiError) -> None:
        self.last_error = str(exc)
        if exc.bad_key:
            if not self._bad_key_logged:
                self._bad_key_logged = True
                log.error(
                    "poller: RIA refused the API key (%s): check RIA_API_KEY and RIA_USER_ID; "
                    "the webhook keeps working",
                    exc.code or f"HTTP {exc.status}",
                )
            return
        if exc.rate_limited:
            log.warning("poller: RIA's rate limit reached; paused until the next hour")
            return
        self.failures += 1
        log.warning("poller: %s (attempt %d); will retry with backoff", exc, self.failures)

    def retry_delay(self) -> float | None:
        """Seconds until a retry after a transient failure, or None for no extra retry."""
        if not self.failures:
            return None
        return min(60.0 * 2 ** (self.failures - 1), self.interval_minutes * 60 / 2)


class BudgetExceeded(Exception):
    """The request would break RIA's limits or the quota; nothing was sent."""
