"""The RIA poller's defects (issue 10, items 15-18; issue 15, items 14 and 16): the quota's pace
for small quotas, requests recorded in the future, the backoff's overflow, permanent answers,
chained retries, the summary's background poll at shutdown, early summaries, the DST gap.

A simulated clock drives the real poller against the fake RIA over a real database.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.summary import chart
from bot.summary.build import DAILY
from bot.summary.schedule import Due, SummaryScheduler, due, local_at
from handlers.ria.poller import HOURLY_CAP, check_budget, hour_start
from storage import ria_requests
from storage.db import Store, connect
from storage.outbox import OutboxItem, Target
from tests.conftest import RIA_KEY, RIA_USER, PollerRig, SimClock, poller_rig
from tests.fakes.ria import KYIV, FakeRia
from tests.test_summary import call, load

UTC = ZoneInfo("UTC")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[PollerRig]:
    async with poller_rig(tmp_path, datetime(2026, 11, 15, 12, 30, tzinfo=KYIV)) as rig:
        yield rig


def count_requests(db: Any) -> int:
    return int(db.conn.execute("SELECT COUNT(*) FROM ria_requests").fetchone()[0])


def month_end(start: datetime) -> datetime:
    return (start.replace(tzinfo=None) + timedelta(days=32)).replace(day=1, tzinfo=KYIV)


def check_spread(made: list[float], quota: int, polls: int, first: datetime) -> None:
    """What "the quota lasts the month" means, for the request times of one month."""
    local = [datetime.fromtimestamp(t, KYIV) for t in made]
    last_day = month_end(first) - timedelta(days=1)
    per_hour = Counter(m.strftime("%d %H") for m in local)
    assert max(per_hour.values()) <= HOURLY_CAP
    assert len(made) <= quota
    # nothing wasted: every poll the month has room for was made (no over-throttling)
    assert len(made) == min(quota, polls), (quota, polls, len(made))
    before_last_day = sum(m < last_day for m in local)
    assert before_last_day < quota, f"quota {quota} spent before the last day"
    assert any(m.date() == last_day.date() for m in local), "no request on the last day"


# ---- item 15: the pace spreads any quota over the whole month -----------------------------


MARCH = datetime(2026, 3, 1, tzinfo=KYIV)  # 31 days, one of them 23 hours long
DECEMBER = datetime(2026, 12, 1, tzinfo=KYIV)  # 31 plain days


@pytest.mark.parametrize(
    ("quota", "interval", "first"),
    [(q, i, MARCH) for q in (30, 100, 1000) for i in (1, 15, 60)]
    + [(q, 60, DECEMBER) for q in (30, 100, 1000)],
    ids=lambda v: f"{v:%B}" if isinstance(v, datetime) else str(v),
)
def test_the_budget_leaves_requests_for_the_last_day(
    tmp_path: Path, quota: int, interval: int, first: datetime
) -> None:
    """check_budget minute by simulated minute, as the poller asks it before each request."""
    db = connect(str(tmp_path / "budget.db"))
    db.conn.execute("PRAGMA synchronous = OFF")  # a month of minutes: no fsync per request
    now, end = first.timestamp(), month_end(first).timestamp()
    made: list[float] = []
    polls = 0
    while now < end:
        polls += 1
        if check_budget(db, now, KYIV, quota).allowed:
            ria_requests.record(db, at=now, purpose="poll", status=200, error=None)
            made.append(now)
        now += interval * 60
    db.conn.close()
    check_spread(made, quota, polls, first)


@pytest.mark.parametrize(("quota", "interval"), [(30, 60), (100, 15), (1000, 60)])
async def test_the_poller_over_a_31_day_month(env: PollerRig, quota: int, interval: int) -> None:
    """The whole poller against the fake RIA (which enforces RIA's limits) for March."""
    clock, ria, _, make = env
    clock.now, end = MARCH.timestamp(), month_end(MARCH).timestamp()
    poller = make(interval=interval, quota=quota)
    made: list[float] = []
    polls = 0
    while clock.now < end:
        polls += 1
        if await poller.poll_once() is not None:
            made.append(clock.now)
        clock.now += interval * 60
    check_spread(made, quota, polls, MARCH)
    assert ria.request_count == len(made) and ria.rate_limited == 0


async def test_the_hourly_cap_holds_when_the_pace_has_room(
    env: PollerRig,
) -> None:
    """Mid-month with nothing used, the pace would allow hundreds: RIA's 30 an hour wins."""
    clock, ria, _, make = env
    clock.now = datetime(2026, 11, 15, 13, 0, tzinfo=KYIV).timestamp()
    poller = make(interval=1, quota=1000)
    per_hour: Counter[int] = Counter()
    for _ in range(120):
        if await poller.poll_once() is not None:
            per_hour[datetime.fromtimestamp(clock.now, KYIV).hour] += 1
        clock.now += 60
    assert list(per_hour.values()) == [HOURLY_CAP, HOURLY_CAP]
    assert ria.rate_limited == 0


# ---- item 16: requests recorded in the future ------------------------------------------


async def test_requests_recorded_in_the_future_do_not_block_polling(
    env: PollerRig,
) -> None:
    clock, ria, store, make = env
    ahead = clock.now + 2 * 3600  # a clock that was two hours ahead (and next week)
    for i in range(HOURLY_CAP):
        await store.run(ria_requests.record, at=ahead + i, purpose="poll", status=200, error=None)
    for i in range(1000):
        await store.run(
            ria_requests.record, at=ahead + 7 * 86400 + i, purpose="poll", status=200, error=None
        )
    poller = make()
    assert await poller.poll_once() == 0  # asked RIA, which had nothing new
    assert ria.request_count == 1
    budget = await store.run(check_budget, clock.now, KYIV, 1000)
    assert (budget.used_hour, budget.used_month) == (1, 1)


# ---- item 17: backoff, permanent answers, chained retries -------------------------------


async def test_the_backoff_never_overflows(env: PollerRig) -> None:
    _, ria, _, make = env
    poller = make(interval=60)
    poller.failures = 5000  # as after weeks of an outage
    ria.fail_next(1, status=502)
    assert await poller.poll_once() is None
    assert poller.failures == 5001
    assert poller.retry_delay() == 30 * 60  # the cap: half the interval


@pytest.mark.parametrize(
    ("answer", "setting"),
    [("https", "RIA_API_URL must start with https://"), ("404", "check RIA_API_URL")],
)
async def test_permanent_answers_are_logged_once_and_not_retried(
    env: PollerRig,
    caplog: pytest.LogCaptureFixture,
    answer: str,
    setting: str,
) -> None:
    clock, ria, store, make = env
    caplog.set_level(logging.INFO, "handlers.ria.poller")
    if answer == "https":
        ria.fail_next(3, status=400)  # the gateway's HTTPS_REQUIRED
        poller = make(interval=60)
    else:
        poller = make(interval=60, url=ria.url + "/wrong/prefix")  # NOT_FOUND
    for _ in range(3):
        assert await poller.poll_and_retry(sleep=clock.sleep) is None
        assert poller.retry_delay() is None
        clock.now += 3600  # the normal interval
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    assert setting in errors[0] and "next try in 60 min" in errors[0]
    # one request per scheduled poll, no backoff retries in between
    assert await store.run(count_requests) == 3
    if answer == "https":
        assert await poller.poll_once() == 0  # fixed: it works, and says so
        assert "RIA answers again" in caplog.text


async def test_a_refused_key_names_ria_api_key(
    env: PollerRig, caplog: pytest.LogCaptureFixture
) -> None:
    clock, ria, _, make = env
    ria.api_key = "another-key-" + "x" * 28
    poller = make()
    assert await poller.poll_and_retry(sleep=clock.sleep) is None
    assert ria.request_count == 1 and poller.retry_delay() is None
    assert "RIA_API_KEY" in caplog.text and "API_KEY_INVALID" in caplog.text


async def test_a_retry_chains_until_ria_answers(env: PollerRig) -> None:
    clock, ria, _, make = env
    poller = make(interval=60)
    started = clock.now
    ria.fail_next(3, status=502)
    assert await poller.poll_and_retry(sleep=clock.sleep) == 0
    asked = [round((r["clock"] - started) / 60) for r in ria.requests]
    assert asked == [0, 1, 3, 7]  # a retry after each failed retry, the delay doubling
    assert poller.failures == 0 and poller.retry_delay() is None


async def test_the_retry_chain_ends_before_the_next_scheduled_poll(
    env: PollerRig,
) -> None:
    clock, ria, _, make = env
    poller = make(interval=60)
    started = clock.now
    ria.mode = "down_500"
    assert await poller.poll_and_retry(sleep=clock.sleep) is None
    asked = [round((r["clock"] - started) / 60) for r in ria.requests]
    assert asked == [0, 1, 3, 7, 15, 31]
    assert clock.now < started + 3600
    # the next scheduled poll fails too: its retry waits the capped delay, once
    clock.now = started + 3600
    assert await poller.poll_and_retry(sleep=clock.sleep) is None
    assert [round((r["clock"] - started) / 60) for r in ria.requests[6:]] == [60, 90]


async def test_a_retry_chain_stays_within_the_budget(
    env: PollerRig,
) -> None:
    clock, ria, store, make = env
    clock.now = hour_start(clock.now) + 3300  # late in the hour: its spread allows all 30
    for i in range(HOURLY_CAP - 2):  # this hour's requests, all but two
        await store.run(
            ria_requests.record, at=clock.now - 60 - i, purpose="poll", status=200, error=None
        )
    poller = make(interval=60)
    ria.mode = "down_500"
    assert await poller.poll_and_retry(sleep=clock.sleep) is None
    assert ria.request_count == 2  # the poll and one retry; then the hour's budget said no
    assert poller.retry_delay() is None


# ---- item 18: the summary's background poll is cancelled at shutdown ---------------------


async def test_closing_the_summaries_ends_their_background_poll(
    env: PollerRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, ria, store, make = env
    monkeypatch.setattr(chart, "available", lambda: False)
    ria.mode = "hang"  # RIA never answers: the reconciliation outlives its 0.2 s wait
    poller = make(timeout=60)
    clock.now = datetime(2026, 11, 25, 20, 0, tzinfo=KYIV).timestamp()
    summaries = SummaryScheduler(
        store,
        targets=[Target("console", "stdout")],
        tz=KYIV,
        lang="en",
        summary_time=clock_time(20, 0),
        weekly=False,
        submit=lambda items: None,
        poller=poller,
        clock=clock,
        reconcile_timeout=0.2,
    )
    assert len(await summaries.tick()) == 1
    [task] = list(summaries._background)
    assert not task.done()
    await asyncio.wait_for(summaries.close(), 5)
    assert task.cancelled() and not summaries._background
    # the request it made is on the books (it counts against the budget), before the store
    # closes: nothing is left to write to it afterwards
    assert await store.run(count_requests) == 1


# ---- issue 15, item 14: an early SUMMARY_TIME reports the day that has just ended --------


def test_an_early_summary_time_covers_the_previous_day() -> None:
    def at(when: clock_time, *moment: int) -> list[Due]:
        return due(datetime(*moment, tzinfo=KYIV), summary_time=when, weekly=False, tz=KYIV)  # type: ignore[misc]

    assert at(clock_time(0, 0), 2026, 11, 26, 0, 0) == [Due(DAILY, date(2026, 11, 25))]
    assert at(clock_time(0, 0), 2026, 11, 26, 23, 59) == [Due(DAILY, date(2026, 11, 25))]
    assert at(clock_time(5, 59), 2026, 11, 26, 5, 58) == []
    assert at(clock_time(5, 59), 2026, 11, 26, 5, 59) == [Due(DAILY, date(2026, 11, 25))]
    # from 06:00 on, the day itself, as before
    assert at(clock_time(6, 0), 2026, 11, 26, 6, 0) == [Due(DAILY, date(2026, 11, 26))]


async def test_a_midnight_summary_has_the_whole_day_before(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    await store.open()
    try:
        await store.run(
            load,
            [
                call(1, "2026-11-25 09:00:00", "ANSWER"),
                call(2, "2026-11-25 23:59:00", "NOANSWER"),
            ],
        )
        clock = SimClock(datetime(2026, 11, 26, 0, 0, 5, tzinfo=KYIV))
        queued: list[OutboxItem] = []
        summaries = SummaryScheduler(
            store,
            targets=[Target("console", "stdout")],
            tz=KYIV,
            lang="en",
            summary_time=clock_time(0, 0),
            weekly=False,
            submit=queued.extend,
            clock=clock,
        )
        [item] = await summaries.tick()
        assert item.dedup_key == "summary:daily:2026-11-25:console:stdout"
        text = item.payload["text"]
        assert text.startswith("📊 Daily summary: Wed 2026-11-25\n"), text
        assert "Calls: 2" in text
    finally:
        await store.close()


async def test_summary_time_midnight_through_the_cli(services, tmp_path: Path) -> None:
    now = datetime.now(KYIV)
    if (now.hour, now.minute) in ((23, 59), (0, 0)):
        await asyncio.sleep(120)  # not across midnight: "yesterday" must not move under us
        now = datetime.now(KYIV)
    yesterday = now.date() - timedelta(days=1)
    db = connect(str(tmp_path / "calls.db"))
    load(
        db, [call(5, f"{yesterday} 12:00:00", "NOANSWER"), call(6, f"{now:%F} 00:00:30", "ANSWER")]
    )
    db.conn.close()
    service = await services(SUMMARY_TIME="00:00", SUMMARY_WEEKLY="off", LANGUAGE="en")
    for _ in range(200):
        if "Daily summary" in service.stdout():
            break
        await asyncio.sleep(0.05)
    assert await service.stop() == 0
    out = service.stdout()
    assert f"📊 Daily summary: {yesterday:%a %Y-%m-%d}\n" in out, out
    assert "Calls: 1" in out
    with sqlite3.connect(tmp_path / "calls.db") as conn:
        keys = [k for (k,) in conn.execute("SELECT dedup_key FROM outbox WHERE kind='summary'")]
    assert keys == [f"summary:daily:{yesterday}:console:stdout"]


# ---- issue 15, item 16: a time the clocks skip runs at the end of the gap -----------------


def test_a_skipped_time_runs_at_the_end_of_the_gap_however_now_is_given() -> None:
    # 2026-03-29 in Kyiv: 03:00 EET becomes 04:00 EEST (01:00 UTC)
    end_of_gap = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert local_at(date(2026, 3, 29), clock_time(3, 30), KYIV) == end_of_gap
    assert local_at(date(2026, 3, 29), clock_time(3, 0), KYIV) == end_of_gap
    assert local_at(date(2026, 3, 29), clock_time(2, 59), KYIV) == datetime(
        2026, 3, 29, 0, 59, tzinfo=UTC
    )
    seven = clock_time(7, 30)  # a daily summary for the day itself, at an ordinary time
    for zone in (UTC, KYIV):  # the scheduler passes Kyiv time; tests may pass UTC
        just_before = (end_of_gap - timedelta(seconds=1)).astimezone(zone)
        assert due(just_before, summary_time=clock_time(3, 30), weekly=False, tz=KYIV) == []
        at_end = end_of_gap.astimezone(zone)
        assert due(at_end, summary_time=clock_time(3, 30), weekly=False, tz=KYIV) == [
            Due(DAILY, date(2026, 3, 28))
        ]
        assert due(at_end, summary_time=seven, weekly=False, tz=KYIV) == []


# ---- item 17 through the CLI: a wrong RIA_API_URL is named once -------------------------


async def test_a_wrong_ria_api_url_is_named_once_through_the_cli(services) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url + "/api",  # a wrong path: RIA answers 404
            RIA_POLL_INTERVAL_MINUTES="0.02",
        )
        db = service.env["DATABASE_PATH"]
        for _ in range(200):  # wait for three polls on the books
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT COUNT(*) FROM ria_requests").fetchone()[0] >= 3:
                    break
            await asyncio.sleep(0.1)
        assert await service.stop() == 0
    err = service.stderr()
    lines = [line for line in err.splitlines() if "RIA_API_URL" in line]
    assert len(lines) == 1, err
    assert "HTTP 404" in lines[0] or "NOT_FOUND" in lines[0]
    assert RIA_KEY not in err
