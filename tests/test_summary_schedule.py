"""When summaries are queued: the due times, exactly once per target, catch-up after downtime,
reconciliation with RIA first. An injected clock drives SummaryScheduler over a real database.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.summary import chart
from bot.summary.build import DAILY, WEEKLY
from bot.summary.schedule import Due, SummaryScheduler, due
from storage.calls import Call
from storage.db import Store
from storage.outbox import OutboxItem, Target
from tests.test_summary import call, load

KYIV = ZoneInfo("Europe/Kyiv")
TARGETS = [Target("telegram", "-1001234567890"), Target("console", "stdout")]
EIGHT_PM = clock_time(20, 0)


def kyiv(*args: int) -> datetime:
    return datetime(*args, tzinfo=KYIV)  # type: ignore[misc]


# ---- due(): a pure function of the time ------------------------------------------------


def test_daily_is_due_from_summary_time_until_midnight() -> None:
    def at(*args: int) -> list[Due]:
        return due(kyiv(*args), summary_time=EIGHT_PM, weekly=False, tz=KYIV)

    assert at(2026, 11, 25, 19, 59, 59) == []
    assert at(2026, 11, 25, 20, 0) == [Due(DAILY, date(2026, 11, 25))]
    assert at(2026, 11, 25, 23, 59, 59) == [Due(DAILY, date(2026, 11, 25))]
    assert at(2026, 11, 26, 0, 0) == []  # yesterday's is never sent late
    assert due(kyiv(2026, 11, 25, 21), summary_time=None, weekly=False, tz=KYIV) == []


def test_weekly_is_due_on_monday_from_nine() -> None:
    def at(*args: int) -> list[Due]:
        return due(kyiv(*args), summary_time=None, weekly=True, tz=KYIV)

    assert at(2026, 11, 30, 8, 59) == []  # Monday
    assert at(2026, 11, 30, 9, 0) == [Due(WEEKLY, date(2026, 11, 23))]  # last Mon–Sun
    assert at(2026, 11, 30, 23, 59) == [Due(WEEKLY, date(2026, 11, 23))]
    assert at(2026, 12, 1, 9, 0) == []  # Tuesday
    both = due(kyiv(2026, 11, 30, 20, 0), summary_time=EIGHT_PM, weekly=True, tz=KYIV)
    assert both == [Due(DAILY, date(2026, 11, 30)), Due(WEEKLY, date(2026, 11, 23))]


def test_due_times_on_dst_days() -> None:
    half_three = clock_time(3, 30)
    utc = ZoneInfo("UTC")

    def at(moment: datetime) -> list[Due]:
        return due(moment, summary_time=half_three, weekly=False, tz=KYIV)

    # 2026-03-29: 03:30 does not exist; it comes at the end of the gap, 04:00 EEST (01:00 UTC)
    assert at(datetime(2026, 3, 29, 0, 59, 59, tzinfo=utc)) == []
    # (a summary as early as 03:30 reports the day before: see EARLY_SUMMARY)
    assert at(datetime(2026, 3, 29, 1, 0, tzinfo=utc)) == [Due(DAILY, date(2026, 3, 28))]
    # 2026-10-25: 03:30 happens twice; the first (EEST, 00:30 UTC) counts
    assert at(datetime(2026, 10, 25, 0, 29, 59, tzinfo=utc)) == []
    assert at(datetime(2026, 10, 25, 0, 30, tzinfo=utc)) == [Due(DAILY, date(2026, 10, 24))]
    # Monday 09:00 the week after the spring change is 06:00 UTC, not 07:00
    weekly = due(datetime(2026, 3, 30, 6, 0, tzinfo=utc), summary_time=None, weekly=True, tz=KYIV)
    assert weekly == [Due(WEEKLY, date(2026, 3, 23))]


def test_keys_name_the_kind_the_day_and_the_target() -> None:
    assert Due(DAILY, date(2026, 11, 25)).key(TARGETS[0]) == (
        "summary:daily:2026-11-25:telegram:-1001234567890"
    )


# ---- SummaryScheduler with an injected clock --------------------------------------------


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment.timestamp()


class FakePoller:
    """Stands in for RiaPoller: `poll_once` stores the calls RIA would return."""

    def __init__(self, store: Store, calls: list[Call], delay: float = 0.0) -> None:
        self.store = store
        self.calls = calls
        self.delay = delay
        self.polls = 0
        self.last_ok: float | None = None

    async def poll_once(self) -> int:
        self.polls += 1
        await asyncio.sleep(self.delay)
        await self.store.run(load, self.calls)
        self.last_ok = time.time()
        return len(self.calls)


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    store = Store(tmp_path / "calls.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture(autouse=True)
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    # scheduling is about when and how often; test_summary_delivery draws the charts
    monkeypatch.setattr(chart, "available", lambda: False)


def scheduler(
    store: Store,
    clock: Clock,
    submitted: list[OutboxItem],
    *,
    targets: list[Target] = TARGETS,
    **kwargs: Any,
) -> SummaryScheduler:
    options: dict[str, Any] = {"summary_time": EIGHT_PM, "weekly": True, "lang": "en"}
    options.update(kwargs)
    return SummaryScheduler(
        store, targets=targets, tz=KYIV, submit=submitted.extend, clock=clock, **options
    )


async def outbox_rows(store: Store) -> list[tuple[str, str]]:
    rows = await store.run(
        lambda db: db.conn.execute("SELECT dedup_key, state FROM outbox ORDER BY id").fetchall()
    )
    return [tuple(r) for r in rows]


async def test_queued_once_per_target_at_summary_time_and_never_again(store: Store) -> None:
    await store.run(load, [call(1, "2026-11-25 10:00:00", "NOANSWER")])
    clock = Clock(kyiv(2026, 11, 25, 19, 59))
    submitted: list[OutboxItem] = []
    s = scheduler(store, clock, submitted)
    assert await s.tick() == []
    clock.set(kyiv(2026, 11, 25, 20, 0))
    queued = await s.tick()
    assert [i.dedup_key for i in queued] == [
        "summary:daily:2026-11-25:telegram:-1001234567890",
        "summary:daily:2026-11-25:console:stdout",
    ]
    assert submitted == queued
    assert queued[0].payload["text"].startswith("📊 Daily summary: Wed 2026-11-25, until 20:00")
    assert "Calls: 1 (▲ 1)" in queued[0].payload["text"]
    assert set(queued[0].payload) >= {"html", "mrkdwn", "text"}
    for minute in range(1, 5):  # the ticks that follow
        clock.set(kyiv(2026, 11, 25, 20, minute))
        assert await s.tick() == []
    # a restart (a new scheduler on the same database) sends nothing again
    again = scheduler(store, clock, submitted)
    assert await again.tick() == []
    assert len(await outbox_rows(store)) == 2 and len(submitted) == 2


async def test_down_at_summary_time_sends_on_return_the_same_day_only(store: Store) -> None:
    submitted: list[OutboxItem] = []
    clock = Clock(kyiv(2026, 11, 25, 22, 47))  # started late in the evening
    queued = await scheduler(store, clock, submitted).tick()
    assert [i.dedup_key.split(":")[2] for i in queued] == ["2026-11-25", "2026-11-25"]
    assert "until 22:47" in queued[0].payload["text"]
    # down from before 20:00 on the 26th until the 27th at 08:00: the 26th's is skipped
    clock.set(kyiv(2026, 11, 27, 8, 0))
    assert await scheduler(store, clock, submitted).tick() == []
    clock.set(kyiv(2026, 11, 27, 20, 0, 30))
    assert len(await scheduler(store, clock, submitted).tick()) == 2
    days = sorted({key.split(":")[2] for key, _ in await outbox_rows(store)})
    assert days == ["2026-11-25", "2026-11-27"]


async def test_weekly_on_monday_and_catch_up_within_monday(store: Store) -> None:
    await store.run(
        load,
        [
            call(1, "2026-11-23 09:00:00", "ANSWER"),  # Monday of last week
            call(2, "2026-11-29 23:59:59", "NOANSWER"),  # its Sunday
            call(3, "2026-11-30 08:00:00", "ANSWER"),  # this Monday: not in it
        ],
    )
    submitted: list[OutboxItem] = []
    clock = Clock(kyiv(2026, 11, 30, 15, 0))  # Monday, up since the afternoon
    queued = await scheduler(store, clock, submitted, summary_time=None).tick()
    assert [i.dedup_key for i in queued] == [
        "summary:weekly:2026-11-23:telegram:-1001234567890",
        "summary:weekly:2026-11-23:console:stdout",
    ]
    text = queued[0].payload["text"]
    assert text.startswith("📊 Weekly summary: 2026-11-23 – 2026-11-29\n")
    assert "Calls: 2 (▲ 2)" in text
    assert await scheduler(store, clock, submitted, summary_time=None).tick() == []
    off = scheduler(store, Clock(kyiv(2026, 12, 7, 10)), submitted, weekly=False)
    assert await off.tick() == []


async def test_a_new_target_gets_todays_summary_the_others_not_again(store: Store) -> None:
    submitted: list[OutboxItem] = []
    clock = Clock(kyiv(2026, 11, 25, 20, 5))
    await scheduler(store, clock, submitted, targets=TARGETS[:1]).tick()
    queued = await scheduler(store, clock, submitted).tick()
    assert [i.target for i in queued] == [TARGETS[1]]


async def test_reconciliation_runs_first_so_late_calls_are_in(store: Store) -> None:
    late = [call(7, "2026-11-25 19:58:00", "NOANSWER"), call(8, "2026-11-25 19:59:00", "ANSWER")]
    poller = FakePoller(store, late)
    submitted: list[OutboxItem] = []
    clock = Clock(kyiv(2026, 11, 25, 20, 0))
    s = scheduler(store, clock, submitted, poller=poller)
    queued = await s.tick()
    assert poller.polls == 1
    assert "Calls: 2 (▲ 2)" in queued[0].payload["text"]
    # nothing due: RIA is not asked (the quota is precious)
    clock.set(kyiv(2026, 11, 25, 20, 1))
    await s.tick()
    assert poller.polls == 1


async def test_failing_ticks_do_not_spend_a_ria_request_each_minute(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    poller = FakePoller(store, [])
    clock = Clock(kyiv(2026, 11, 25, 20, 0))
    s = scheduler(store, clock, [], poller=poller)

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in building")

    monkeypatch.setattr("bot.summary.schedule.summary_items", broken)
    for minute in range(10):
        clock.set(kyiv(2026, 11, 25, 20, minute))
        poller.last_ok = None  # as if each poll had failed
        assert await s.tick() == []
    assert poller.polls == 1
    clock.set(kyiv(2026, 11, 25, 20, 15))
    await s.tick()
    assert poller.polls == 2


async def test_a_recent_poll_is_reconciliation_enough(store: Store) -> None:
    poller = FakePoller(store, [])
    poller.last_ok = time.time() - 30
    clock = Clock(datetime.fromtimestamp(time.time(), KYIV))
    s = scheduler(store, clock, [], poller=poller, summary_time=clock_time(0, 0))
    assert len(await s.tick()) == 2
    assert poller.polls == 0


async def test_a_slow_ria_delays_the_summary_a_bounded_time(store: Store) -> None:
    poller = FakePoller(store, [call(9, "2026-11-25 19:00:00", "ANSWER")], delay=30)
    clock = Clock(kyiv(2026, 11, 25, 20, 0))
    s = scheduler(store, clock, [], poller=poller, reconcile_timeout=0.2)
    started = time.monotonic()
    queued = await s.tick()
    assert time.monotonic() - started < 2
    assert len(queued) == 2 and "no calls" in queued[0].payload["text"]
    for task in list(s._background):  # the poll goes on in the background; end it here
        task.cancel()
    await asyncio.gather(*s._background, return_exceptions=True)


async def test_a_failing_tick_logs_and_retries_next_minute(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(kyiv(2026, 11, 25, 20, 0))
    s = scheduler(store, clock, [])
    real = s.store.run
    calls = 0

    async def flaky(fn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk I/O error")
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(s.store, "run", flaky)
    assert await s.tick() == []
    assert "could not queue" in caplog.text
    clock.set(kyiv(2026, 11, 25, 20, 1))
    assert len(await s.tick()) == 2


async def test_schedule_adds_one_job_that_runs_now(store: Store) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    aps = AsyncIOScheduler(timezone=KYIV)
    scheduler(store, Clock(kyiv(2026, 11, 25)), []).schedule(aps)
    [job] = aps.get_jobs()
    assert job.id == "summaries"
    assert job.next_run_time <= datetime.now(KYIV) + timedelta(seconds=1)
    off = AsyncIOScheduler(timezone=KYIV)
    scheduler(store, Clock(kyiv(2026, 11, 25)), [], summary_time=None, weekly=False).schedule(off)
    assert off.get_jobs() == []


def test_cli_argument() -> None:
    from bot.summary.cli import UsageError, parse_when

    today = date(2026, 11, 28)  # a Saturday
    assert parse_when("", today) == (DAILY, today)
    assert parse_when("Сьогодні", today) == (DAILY, today)
    assert parse_when("yesterday", today) == (DAILY, date(2026, 11, 27))
    assert parse_when("2026-11-01", today) == (DAILY, date(2026, 11, 1))
    assert parse_when("week", today) == (WEEKLY, date(2026, 11, 16))  # 16-22 November
    assert parse_when("тиждень", date(2026, 11, 30)) == (WEEKLY, date(2026, 11, 23))
    for bad in ("2026-W48-6", "20261128", "2026-02-30", "2026-11-29", "soon"):
        with pytest.raises(UsageError):
            parse_when(bad, today)
