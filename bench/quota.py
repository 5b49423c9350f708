"""Row 6: the RIA API quota. A whole simulated month of polling, in seconds of real time.

The poller, the fake RIA and the intake share an injected clock that the loop moves forward
one poll interval at a time, as APScheduler's interval job would (first poll at start, then
every interval). Everything else is real: the poller's budget checks against the requests it
recorded in SQLite, aiohttp requests over loopback to the fake, which counts them against
RIA's own limits (30 an hour, 1,000 a month) and answers 429 past them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bench.report import Row
from handlers.intake import Intake
from handlers.ria.api import RiaClient
from handlers.ria.poller import HOURLY_CAP, RiaPoller, requests_per_month
from storage.db import Store
from storage.outbox import Target
from tests.fakes.ria import DEFAULT_API_KEY, DEFAULT_USER_ID, FakeRia

TZ = ZoneInfo("Europe/Kyiv")
DEFAULT_INTERVAL_MIN = 60.0  # RIA_POLL_INTERVAL_MINUTES' default
DEFAULT_QUOTA = 1000  # RIA_MONTHLY_QUOTA's default
MONTH_TARGET = 744  # 31 days x 24 hours


@dataclass
class Params:
    days: float = 31.0  # January: a 31-day month with no DST change in Kyiv
    low_interval_min: float = 1.0  # "set too low"
    low_days: float = 31.0


class SimClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def month_start(year: int) -> float:
    return datetime(year, 1, 1, tzinfo=TZ).timestamp()


async def simulate(
    workdir: Path, *, interval_min: float, days: float, start: float
) -> dict[str, Any]:
    """Poll every `interval_min` for `days` simulated days; what the fake RIA saw."""
    clock = SimClock(start)
    os.makedirs(workdir, exist_ok=True)
    store = Store(workdir / "calls.db")
    await store.open()
    started = time.monotonic()
    polls = 0
    try:
        async with (
            FakeRia(clock=clock) as ria,
            aiohttp.ClientSession() as session,
        ):
            client = RiaClient(
                session, base_url=ria.url, api_key=DEFAULT_API_KEY, user_id=str(DEFAULT_USER_ID)
            )
            intake = Intake(
                store,
                targets=[Target("console", "stdout")],
                missed_statuses=("NOANSWER", "CANCEL", "BUSY"),
                clock=clock,
            )
            poller = RiaPoller(
                client,
                store,
                intake,
                tz=TZ,
                interval_minutes=interval_min,
                monthly_quota=DEFAULT_QUOTA,
                alert_max_age_s=7200,
                clock=clock,
            )
            end = start + days * 86400
            while clock.now < end:
                await poller.poll_once()
                polls += 1
                clock.now += interval_min * 60
            at = sorted(float(r["clock"]) for r in ria.requests)
            rate_limited = ria.rate_limited
    finally:
        await store.close()
    per_clock_hour = Counter(int(t // 3600) for t in at)
    return {
        "interval_min": interval_min,
        "days": days,
        "polls": polls,
        "requests": len(at),
        "rate_limited": rate_limited,
        "max_clock_hour": max(per_clock_hour.values(), default=0),
        "max_any_60_min": _max_in_window(at, 3600.0),
        "seconds": round(time.monotonic() - started, 1),
    }


def _max_in_window(times: list[float], window: float) -> int:
    """Most events in any half-open window [t, t + window) (times sorted)."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    start = month_start(datetime.now(TZ).year)
    return {
        "default": await simulate(
            workdir / "quota-default",
            interval_min=DEFAULT_INTERVAL_MIN,
            days=params.days,
            start=start,
        ),
        "too_low": await simulate(
            workdir / "quota-low",
            interval_min=params.low_interval_min,
            days=params.low_days,
            start=start,
        ),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    d, low = result["default"], result["too_low"]
    return [
        Row(
            6,
            f"RIA requests in a {d['days']:g}-day month, default interval",
            f"{d['requests']}",
            f"≤ {MONTH_TARGET}",
            met=d["requests"] <= MONTH_TARGET,
            note=(
                f"{d['polls']} polls every {d['interval_min']:g} min on a simulated clock; "
                f"{d['rate_limited']} × 429 from the fake RIA; most in one hour: "
                f"{d['max_clock_hour']}; formula says {requests_per_month(d['interval_min'])}"
            ),
        ),
        Row(
            6,
            f"most RIA requests in one hour, interval {low['interval_min']:g} min",
            f"{low['max_clock_hour']}",
            f"≤ {HOURLY_CAP}",
            met=low["max_clock_hour"] <= HOURLY_CAP and low["rate_limited"] == 0,
            note=(
                f"per clock hour (RIA's); {low['max_any_60_min']} in the worst sliding "
                f"60 min; {low['requests']} requests in {low['days']:g} days "
                f"(quota {DEFAULT_QUOTA}), {low['rate_limited']} × 429"
            ),
        ),
    ]
