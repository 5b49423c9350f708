"""Each [[account]]'s RIA budget (issue 13) as `check` and `status` print it: every account
counts its own requests against RIA's 30 an hour and its own monthly quota."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from handlers.ria.poller import HOURLY_CAP, check_budget
from handlers.routing import Account


def lines(db: Any, now: float, tz: ZoneInfo, accounts: Sequence[Account]) -> list[str]:
    """One line per account (and why its poller waits, when it does); runs on the database's
    thread (`db`: a sqlite_utils.Database)."""
    out: list[str] = []
    for account in accounts:
        quota = account.monthly_quota
        budget = check_budget(db, now, tz, quota, account.name)
        out.append(
            f"account {account.name}: this hour {budget.used_hour} of {HOURLY_CAP} used, "
            f"{max(HOURLY_CAP - budget.used_hour, 0)} left; this month {budget.used_month} of "
            f"{quota} used, {max(quota - budget.used_month, 0)} left"
        )
        if quota == 0:
            out.append("  monthly_quota = 0: never polled (webhook only)")
        elif not budget.allowed:
            out.append(f"  waiting: {budget.reason}")
    return out


__all__ = ["lines"]
