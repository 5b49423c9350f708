"""The chat side of issue 12 on a real database: `/missed` (open callers only) and
`/missed all` or a period (every outcome), `/stats` with the callback figures, the press
core's answers, and the reminder job handing new rows over once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from bot.reminders import Reminders
from handlers.chat.callback import Callbacks
from handlers.chat.commands import MissedReply, StatsReply, answer
from storage.db import Store
from storage.outbox import OutboxItem, Target
from tests.test_cb_store import KYIV, TG, A, B, C, at, call, put

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=KYIV)  # the fixture day, at noon


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "t.db")
    await store.open()
    # A missed at 10:00 and was called back by button at 10:04; B missed at 10:10 and got
    # through at 10:40 (answered); C missed at 11:00 and is still waiting
    for c in (call(1, "10:00", A), call(2, "10:10", B), call(3, "11:00", C)):
        await store.run(put, c)
    presses = Callbacks(store, lang="en", tz=KYIV, submit=lambda items: None)
    presses.clock = lambda: float(at("10:04"))
    text, edits = await presses.press(TG, "1001", 1, by_name="Olena", by_user="telegram:7")
    assert text.startswith("✅") and len(edits) == 1
    await store.run(put, call(4, "10:40", B, "ANSWER"))
    yield store
    await store.close()


async def ask(store: Store, command: str, argument: str = "") -> object:
    return await answer(command, argument, store=store, tz=KYIV, now=NOW, callback_within_s=900)


async def test_missed_lists_only_callers_still_waiting_with_the_waited_time(store) -> None:
    reply = await ask(store, "missed")
    assert isinstance(reply, MissedReply) and not reply.everything
    assert [c.caller_e164 for c in reply.callers] == [C]
    assert (reply.waiting, reply.reached) == (1, 2)
    assert reply.callers[0].waited_s(reply.now) == 3600  # 11:00 to noon


@pytest.mark.parametrize("argument", ["all", "всі", "2026-11-27", "all 2026-11-27"])
async def test_missed_all_or_a_period_lists_every_outcome(store, argument: str) -> None:
    reply = await ask(store, "missed", argument)
    assert isinstance(reply, MissedReply) and reply.everything
    outcomes = {c.caller_e164: c.resolution for c in reply.callers}
    assert list(outcomes) == [A, B, C]  # oldest first
    assert outcomes[A] is not None and (outcomes[A].how, outcomes[A].by_name) == (
        "button",
        "Olena",
    )
    assert outcomes[B] is not None and outcomes[B].how == "answered"
    assert outcomes[C] is None
    assert (reply.waiting, reply.reached, reply.total) == (1, 2, 3)


async def test_stats_carries_the_callback_figures(store) -> None:
    reply = await ask(store, "stats")
    assert isinstance(reply, StatsReply)
    figures = reply.stats.callbacks
    assert figures is not None and figures.within_s == 900
    # 3 missed callers, 2 resolved (4 min and 30 min): 1 within 15 min, median 17 min
    assert (figures.missed_callers, figures.called_back, figures.within_promise) == (3, 2, 1)
    assert figures.waiting == 1 and figures.median_callback_s == (240 + 1800) / 2


async def test_a_second_press_names_the_first_presser(store) -> None:
    presses = Callbacks(store, lang="en", tz=KYIV, submit=lambda items: None)
    text, edits = await presses.press(TG, "1001", 1, by_name="Ivan", by_user="telegram:8")
    assert text == "Already marked by Olena at 10:04" and edits == []
    text, _ = await presses.press(TG, "1002", 2, by_name="Ivan", by_user="telegram:8")
    assert text == "Already resolved: the caller got through at 10:40"
    # the right message id in another chat, or another message id here: nothing
    other = Target("telegram", "-200")
    assert (await presses.press(other, "1003", 3, by_name="I", by_user="t:8"))[0] == (
        "Not for this chat"
    )
    assert (await presses.press(TG, "999", 3, by_name="I", by_user="t:8"))[0] == (
        "Not for this chat"
    )


async def test_the_reminder_job_hands_each_reminder_over_once(store) -> None:
    handed: list[list[OutboxItem]] = []
    job = Reminders(store, submit=handed.append, within_s=900, alert_max_age_s=7200)
    job.clock = lambda: float(at("11:14"))
    assert await job.run_once() == 0  # C has waited 14 min: not yet
    job.clock = lambda: float(at("11:15"))
    assert await job.run_once() == 1
    assert [i.payload["call_ids"] for i in handed[0]] == [[3]]
    assert await job.run_once() == 0  # once, ever
    assert len(handed) == 1
    assert job.interval_s == 30.0
    assert Reminders(store, submit=handed.append, within_s=3, alert_max_age_s=0).interval_s == 1.0
    assert not Reminders(store, submit=handed.append, within_s=0, alert_max_age_s=0).enabled
