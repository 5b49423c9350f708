"""The platform-neutral command core: splitting the text, and what `answer` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from handlers.chat.commands import (
    ErrorReply,
    HelpReply,
    MissedReply,
    StatsReply,
    answer,
    split_command,
)
from storage.db import Store
from tests.test_stats import (
    DAY_END,
    DAY_START,
    FIXTURE,
    KYIV,
    A,
    D,
    G,
    e164,
    load,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=KYIV)  # the day after the fixture day


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/stats@ria_bot today", ("stats", "today")),
        ("/stats", ("stats", "")),
        ("/STATS@Ria_Bot   week ", ("stats", "week")),
        ("stats today", ("stats", "today")),
        ("  /missed 2026-11-01..2026-11-05", ("missed", "2026-11-01..2026-11-05")),
        ("/stats\nyesterday", ("stats", "yesterday")),
        ("<@U123ABC> stats today", ("stats", "today")),
        ("<@U123ABC|ria> missed", ("missed", "")),
        ("<@U123ABC>", ("", "")),
        ("Статистика вчора", ("статистика", "вчора")),
        ("", ("", "")),
        ("   ", ("", "")),
        ("/help me please", ("help", "me please")),
    ],
)
def test_split_command(text: str, expected: tuple[str, str]) -> None:
    assert split_command(text) == expected


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "t.db")
    await store.open()
    await store.run(load, FIXTURE)
    yield store
    await store.close()


async def ask(store: Store, text: str):
    command, argument = split_command(text)
    return await answer(command, argument, store=store, tz=KYIV, now=NOW)


@pytest.mark.parametrize("text", ["/start", "/help", "help", "допомога", "<@U1>"])
async def test_help(store: Store, text: str) -> None:
    assert await ask(store, text) == HelpReply()


async def test_stats_yesterday(store: Store) -> None:
    reply = await ask(store, "/stats@ria_bot yesterday")
    assert isinstance(reply, StatsReply)
    assert reply.period.key == "yesterday"
    assert (reply.period.start, reply.period.end) == (DAY_START, DAY_END)
    # the hand-computed fixture day (tests/test_stats.py)
    assert (reply.stats.total, reply.stats.answered, reply.stats.missed) == (13, 3, 8)
    assert reply.stats.unique_callers == 7


async def test_stats_default_is_today(store: Store) -> None:
    reply = await ask(store, "/stats")
    assert isinstance(reply, StatsReply)
    assert reply.period.key == "today"
    assert reply.stats.total == 2  # calls 13 and 14, on the 28th


async def test_ukrainian_alias_and_date(store: Store) -> None:
    reply = await ask(store, "статистика 2026-11-27")
    assert isinstance(reply, StatsReply)
    assert reply.period.key == "2026-11-27"
    assert reply.stats.total == 13


async def test_missed(store: Store) -> None:
    reply = await ask(store, "/missed вчора")
    assert isinstance(reply, MissedReply)
    # a period lists every caller with their outcome (issue 12); the open ones are waiting
    assert reply.everything
    assert {c.caller_e164 for c in reply.callers if c.open} == {e164(G), e164(A), e164(D)}
    assert (reply.waiting, reply.reached) == (3, 2)
    assert (await ask(store, "пропущені вчора")) == reply


async def test_unknown_command(store: Store) -> None:
    assert await ask(store, "/stat today") == ErrorReply("unknown_command", "stat")


@pytest.mark.parametrize(
    ("text", "key", "detail"),
    [
        ("/stats tomorrow", "bad_period", "tomorrow"),
        ("/missed 2026-02-30", "bad_date", "2026-02-30"),
        ("/stats 2026-11-05..2026-11-01", "period_reversed", "2026-11-05..2026-11-01"),
        ("/stats 2020-01-01..2026-01-01", "period_too_long", "2020-01-01..2026-01-01"),
        ("/stats 2026-12-01", "period_in_future", "2026-12-01"),
    ],
)
async def test_bad_periods(store: Store, text: str, key: str, detail: str) -> None:
    assert await ask(store, text) == ErrorReply(key, detail)


@pytest.mark.parametrize(
    "text",
    [
        "/stats <script>alert(1)</script>",
        "/stats " + "x" * 10_000,
        "/missed \x00\x01",
        "/stats 9999-99-99",
        "/stats 0000-01-01",
        "/stats 2026-11-01..",
        "/stats 🚗",
        "/" * 50,
        "@@@",
        "/stats@",
    ],
)
async def test_never_raises_on_user_input(store: Store, text: str) -> None:
    reply = await ask(store, text)
    assert isinstance(reply, HelpReply | StatsReply | MissedReply | ErrorReply)


async def test_now_defaults_to_the_clock(store: Store) -> None:
    before = datetime.now(KYIV).date()
    reply = await answer("stats", "", store=store, tz=KYIV)
    after = datetime.now(KYIV).date()
    assert isinstance(reply, StatsReply)
    # the day the answer was given in: either side of a midnight passed meanwhile
    assert reply.period.first_day in {before, after}
