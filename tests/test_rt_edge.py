"""Routing at delivery (issue 13, RT-edge): forum topics (message_thread_id; a topic shares
its group's worker and rate limits), silent alerts outside hours (disable_notification),
with the real Telegram client against the fake; rows without routing keys: as before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import pytest

from bot import hours
from bot.delivery import markup, names, render
from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from handlers.chat import commands
from handlers.routing import Hours, Manager
from storage.calls import Call, ingest
from storage.db import Store
from storage.outbox import Target
from storage.routes import Routed
from storage.stats import ManagerLine, PeriodStats
from tests.conftest import GROUP, TG_TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.test_cb_deliver import KYIV, MISSED, make, until

CHAT = Target("telegram", GROUP)


class Rig:
    def __init__(self, store: Store, d: Dispatcher) -> None:
        self.store, self.d = store, d

    async def alert(self, call: Call, routed: Sequence[Routed] | None) -> None:
        route = None if routed is None else (lambda c, a: routed)
        result = await self.store.run(
            lambda db: ingest(
                db,
                [call],
                source="webhook",
                received_at=time.time(),
                missed_statuses=MISSED,
                targets=[CHAT],
                alert_max_age_s=None,
                route=route,
            )
        )
        self.d.submit(result.outbox_items)


@pytest.fixture
async def rig(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[Rig]:
    store = Store(tmp_path / "calls.db")
    await store.open()
    channel = TelegramChannel(build_application(TG_TOKEN, telegram.url, webhook_mode=True))
    d = Dispatcher(store, {"telegram": channel}, lang="en", tz=KYIV)
    try:
        yield Rig(store, d)
    finally:
        await d.stop()
        await channel.app.bot.shutdown()
        await store.close()


def sent(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [m for m in telegram.messages_for(GROUP) if m["method"] == "sendMessage"]


def params(message: dict[str, Any]) -> dict[str, Any]:
    return dict(message["params"])


async def test_topics_and_silent_alerts(rig: Rig, telegram: FakeTelegram) -> None:
    now = time.time() - 60
    await rig.alert(make(1, now), [Routed(CHAT, topic=42)])
    await rig.alert(make(2, now + 1, "+380501110002"), [Routed(CHAT, topic=77, mode="silent")])
    await rig.alert(make(3, now + 2, "+380501110003"), None)  # no config file: today's alert
    got = await until(lambda: len(sent(telegram)) >= 3 and sent(telegram))

    def of(digits: str) -> dict[str, Any]:
        return next(params(m) for m in got if digits in m["plain_text"].replace(" ", ""))

    first, second, plain = of("4567"), of("0002"), of("0003")
    assert int(first["message_thread_id"]) == 42 and "disable_notification" not in first
    assert int(second["message_thread_id"]) == 77
    assert str(second["disable_notification"]).lower() == "true"
    assert "message_thread_id" not in plain and "disable_notification" not in plain
    # one worker (one set of rate limits) for the group, whatever the topic
    assert list(rig.d.status()) == [str(CHAT)]
    # the alert's reference remembers its topic, so a reminder replying to it lands there
    rows = await rig.store.run(
        lambda db: db.conn.execute(
            "SELECT message_ref FROM outbox WHERE state = 'sent' ORDER BY id"
        ).fetchall()
    )
    assert '"topic": 42' in rows[0][0] and '"topic": 77' in rows[1][0]


# ---- managers by name ------------------------------------------------------------------


@pytest.fixture
def olena() -> Iterator[Manager]:
    m = Manager("Olena", frozenset({"+380731375686"}), telegram=123456789, slack="U0123ABCD")
    names.set_managers([m])
    yield m
    names.set_managers([])


async def test_alert_names_and_mentions_the_manager(
    rig: Rig, telegram: FakeTelegram, olena: Manager
) -> None:
    call = make(5, time.time() - 60)  # destination_phone 0731375686: Olena's line
    await rig.alert(call, [Routed(CHAT, mention="telegram:123456789")])
    message = (await until(lambda: sent(telegram)))[0]
    assert "manager olena" in message["plain_text"].lower()
    assert "375686" not in message["plain_text"].replace(" ", "")
    assert '<a href="tg://user?id=123456789">Olena</a>' in message["text"]


@pytest.mark.parametrize("fmt", ["html", "mrkdwn", "text"])
def test_stats_and_alert_render_names(fmt: str, olena: Manager) -> None:
    stats = PeriodStats(
        total=3,
        answered=1,
        missed=2,
        by_status={},
        missed_by_status={},
        answer_rate=None,
        avg_wait_s=None,
        avg_talk_s=None,
        unique_callers=2,
        managers=[ManagerLine("0731375686", 2, 1, 1), ManagerLine("0501112233", 1, 0, 1)],
    )
    lines = markup.manager_lines(stats, markup.get_format(fmt), "en")
    assert lines[1].startswith("Olena: 2") and "111" in lines[2]
    assert names.mention("mrkdwn", "slack:U0123ABCD", "0731375686") == "<@U0123ABCD>"
    assert "manager olena" in render.alert(make(5, time.time()), fmt, "en", KYIV).lower()


def test_without_managers_numbers_as_before() -> None:
    assert "Olena" not in render.alert(make(5, time.time()), "text", "en", KYIV)
    assert names.mention("html", None, "0731375686") is None


# ---- per-chat scoping ---------------------------------------------------------------------

SHOWROOM = Target("telegram", "-1009876543210")


async def test_commands_in_a_routed_chat_see_only_its_calls(tmp_path: Path) -> None:
    store = Store(tmp_path / "calls.db")
    await store.open()
    try:
        now = time.time() - 120
        routed = {1: [Routed(CHAT), Routed(SHOWROOM, topic=5)], 2: [Routed(CHAT)]}
        calls = [make(1, now, marka="Toyota", model="Camry"), make(2, now + 1, "+380501110002")]
        await store.run(
            lambda db: ingest(
                db,
                calls,
                source="webhook",
                received_at=time.time(),
                missed_statuses=MISSED,
                targets=[CHAT],
                alert_max_age_s=None,
                route=lambda c, a: routed[c.call_id],
            )
        )
        scope = (SHOWROOM.channel, SHOWROOM.id)
        mine = await commands.answer("stats", "", store=store, tz=KYIV, scope=scope)
        everyone = await commands.answer("stats", "", store=store, tz=KYIV)
        assert isinstance(mine, commands.StatsReply) and isinstance(everyone, commands.StatsReply)
        assert (mine.stats.total, mine.stats.unique_callers) == (1, 1)
        assert mine.stats.top_cars == [("Toyota Camry", 1)]
        assert mine.stats.callbacks is not None and mine.stats.callbacks.missed_callers == 1
        assert everyone.stats.total == 2
        missed = await commands.answer("missed", "", store=store, tz=KYIV, scope=scope)
        assert isinstance(missed, commands.MissedReply)
        assert [c.caller_e164 for c in missed.callers] == ["+380671234567"]
        every = await commands.answer("missed", "all", store=store, tz=KYIV, scope=scope)
        assert isinstance(every, commands.MissedReply) and every.total == 1
        nothing = await commands.answer(
            "stats", "", store=store, tz=KYIV, scope=("slack", "C0NOBODY")
        )
        assert isinstance(nothing, commands.StatsReply) and nothing.stats.total == 0
    finally:
        await store.close()


# ---- working hours: digest at opening (injected clock) ----------------------------------


async def test_digest_held_until_opening_then_one_message(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    offset = [0.0]

    def clock() -> float:
        return time.time() + offset[0]

    local = datetime.fromtimestamp(time.time(), KYIV) + timedelta(hours=2)
    start = dtime(local.hour, local.minute) if local.hour < 23 else dtime(0, 0)
    end = (datetime.combine(local.date(), start) + timedelta(minutes=30)).time()
    shop = Hours({day: ((start, end),) for day in range(7)}, after_hours="digest")
    hours.set_hours(shop, KYIV)
    store = Store(tmp_path / "calls.db")
    await store.open()
    channel = TelegramChannel(build_application(TG_TOKEN, telegram.url, webhook_mode=True))
    d = Dispatcher(store, {"telegram": channel}, lang="en", tz=KYIV, clock=clock)
    rig = Rig(store, d)
    try:
        now = time.time() - 60
        for i, who in enumerate(["+380671234567", "+380501110002", "+380501110003"]):
            await rig.alert(make(10 + i, now + i, who), [Routed(CHAT, mode="digest")])
        await rig.alert(make(20, now + 5, "+380501110009"), [Routed(CHAT, mode="silent")])
        # the silent one goes now (a real signal that the worker ran), the digest waits
        first = await until(lambda: sent(telegram))
        assert len(first) == 1 and "0009" in first[0]["plain_text"].replace(" ", "")
        assert d.workers[CHAT].status()["queued"] == 3
        opening = shop.next_opening(datetime.fromtimestamp(clock(), KYIV)).timestamp()
        offset[0] = opening - time.time() + 1
        d.workers[CHAT].wake.set()
        got = await until(lambda: len(sent(telegram)) >= 2 and sent(telegram))
        digest = got[1]
        assert digest["plain_text"].startswith("🌙 While you were closed: 3 missed callers")
        buttons = digest["reply_markup"]["inline_keyboard"]
        assert len([b for row in buttons for b in row]) == 3
        assert len(sent(telegram)) == 2
    finally:
        hours.set_hours(None, KYIV)
        await d.stop()
        await channel.app.bot.shutdown()
        await store.close()
