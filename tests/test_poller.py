"""The poller against the fake RIA with an injected clock: budget, pauses, errors, parsing."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from handlers.ria.api import RiaApiError
from handlers.ria.poller import (
    HOUR_LEAD,
    HOURLY_CAP,
    BudgetExceeded,
    hour_start,
    requests_per_month,
)
from tests.conftest import PollerRig, poller_rig
from tests.fakes.ria import KYIV, make_call


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[PollerRig]:
    # mid-month: the quota's pace leaves room for a burst of polls
    async with poller_rig(tmp_path, datetime(2026, 11, 15, 0, 30, tzinfo=KYIV)) as rig:
        yield rig


async def test_poll_stores_yesterday_and_today_and_alerts_only_fresh(setup: PollerRig) -> None:
    clock, ria, store, make = setup
    now = datetime.fromtimestamp(clock(), KYIV).replace(tzinfo=None)
    ria.add_calls(
        make_call(1, "NOANSWER", when=now - timedelta(minutes=10)),
        make_call(2, "BUSY", when=now - timedelta(hours=3)),  # older than 2 h: stored only
        make_call(3, "ANSWER", when=now - timedelta(hours=20)),  # yesterday
        make_call(4, "NOANSWER", when=now - timedelta(days=3)),  # outside the window
    )
    poller = make()
    assert await poller.poll_once() == 3
    params = ria.requests[-1]["params"]
    assert (params["from"], params["to"]) == ("2026-11-14", "2026-11-15")
    outbox = await store.run(
        lambda db: [r[0] for r in db.conn.execute("SELECT call_id FROM outbox")]
    )
    assert outbox == [1]
    assert await poller.poll_once() == 0  # nothing new the second time


async def test_never_more_than_30_an_hour_even_when_asked_every_minute(setup: PollerRig) -> None:
    clock, ria, _, make = setup
    poller = make(interval=1)
    per_hour: Counter[str] = Counter()
    for _ in range(3 * 60):  # three hours, a poll a minute
        if await poller.poll_once() is not None:
            per_hour[datetime.fromtimestamp(clock(), KYIV).strftime("%H")] += 1
        clock.now += 60
    assert max(per_hour.values()) == HOURLY_CAP
    assert ria.rate_limited == 0


async def test_monthly_quota_and_pace(setup: PollerRig) -> None:
    clock, _, _, make = setup
    clock.now = datetime(2026, 11, 1, 0, 0, tzinfo=KYIV).timestamp()
    poller = make(interval=60, quota=100)
    made = 0
    for _ in range(30 * 24):  # 30 days, hourly
        made += await poller.poll_once() is not None
        clock.now += 3600
    assert made <= 100
    assert 90 <= made  # spread over the month, not spent in the first days and then none
    assert requests_per_month(60) == 744


async def test_429_pauses_until_the_next_hour(setup: PollerRig) -> None:
    clock, ria, _, make = setup
    poller = make()
    ria.fail_next(1, status=429)
    assert await poller.poll_once() is None
    asked = ria.request_count
    clock.now += 600
    assert await poller.poll_once() is None  # still paused: nothing sent
    assert ria.request_count == asked
    clock.now += 3000  # past the top of the hour
    assert await poller.poll_once() == 0
    assert ria.request_count == asked + 1


async def test_errors_are_worded_without_the_key(setup: PollerRig) -> None:
    _, ria, _, make = setup
    poller = make(api_key="B" * 40)
    with pytest.raises(RiaApiError) as info:
        day = datetime(2026, 11, 15).date()
        await poller.fetch(day, day, purpose="check")
    assert info.value.bad_key and info.value.code == "API_KEY_INVALID"
    assert "B" * 40 not in str(info.value)
    good = make()
    ria.fail_next(1, status=502)
    assert await good.poll_once() is None
    assert good.failures == 1 and good.retry_delay() == 60
    assert "HTTP 502" in (good.last_error or "")
    ria.mode = "hang"
    assert await good.poll_once() is None
    assert good.last_error == "RIA API timed out" and good.retry_delay() == 120
    ria.mode = "ok"
    assert await good.poll_once() == 0
    assert good.failures == 0 and good.retry_delay() is None


async def test_budget_is_kept_across_restarts(setup: PollerRig) -> None:
    clock, ria, _, make = setup
    clock.now = hour_start(clock.now) + 3599  # the hour's end: its spread allows all 30
    for _ in range(HOURLY_CAP):
        assert await make().poll_once() is not None  # a new poller each time: a restart
    with pytest.raises(BudgetExceeded):
        day = datetime(2026, 11, 15).date()
        await make().fetch(day, day, purpose="poll")
    assert ria.request_count == HOURLY_CAP


async def test_polls_every_minute_spread_over_the_hour_leave_no_long_gap(
    setup: PollerRig,
) -> None:
    """RIA_POLL_INTERVAL_MINUTES=1 asks for 60 polls an hour, RIA allows 30: they are spread
    over the hour (a few ahead for retries), not spent in the first half and then none."""
    clock, ria, _, make = setup
    clock.now = hour_start(clock.now)
    poller = make(interval=1)
    asked: list[float] = []
    for _ in range(3 * 60):  # three hours of scheduled polls, a minute apart
        before = ria.request_count
        await poller.poll_once()
        if ria.request_count > before:
            asked.append(clock.now)
        clock.now += 60
    per_hour = Counter(hour_start(t) for t in asked)
    assert max(per_hour.values()) <= HOURLY_CAP, per_hour
    assert min(per_hour.values()) >= HOURLY_CAP - 1, per_hour  # the hour's 30, or nearly
    gaps = [b - a for a, b in itertools.pairwise(asked)]
    # every two minutes, and at the hour's end no longer than the lead's share of it
    assert Counter(gaps).most_common(1)[0][0] == 120, Counter(gaps)
    assert max(gaps) <= 60 * 2 * (HOUR_LEAD + 1), Counter(gaps)
    assert asked[:HOUR_LEAD] == [asked[0] + 60 * i for i in range(HOUR_LEAD)]  # the lead


async def test_backfill_is_not_spread_over_the_hour(setup: PollerRig) -> None:
    clock, ria, _, make = setup
    clock.now = hour_start(clock.now)  # the hour's start: a poll could make only HOUR_LEAD
    poller = make()
    day = datetime(2026, 11, 15).date()
    for _ in range(HOURLY_CAP):  # a backfill's requests come in a row
        await poller.fetch(day, day, purpose="backfill")
    assert ria.request_count == HOURLY_CAP
    with pytest.raises(BudgetExceeded):  # RIA's cap still holds
        await poller.fetch(day, day, purpose="backfill")


async def test_without_the_spread_polls_come_in_a_row_until_the_hours_30(
    setup: PollerRig,
) -> None:
    clock, ria, _, make = setup
    clock.now = hour_start(clock.now)  # where the spread would allow only HOUR_LEAD
    poller = make(interval=1, spread=False)  # RIA_POLL_SPREAD=off
    for _ in range(HOURLY_CAP + 5):
        await poller.poll_once()
        clock.now += 1
    assert ria.request_count == HOURLY_CAP  # RIA's cap still holds
