"""Issue 15 item 10: a failure that concerns the target (a kicked or blocked bot, a chat
that does not exist, a refused token, a migrated group) keeps the alerts pending and pauses
the target; they go out once the operator fixes it. The real dispatcher and Telegram
channel against the fake Telegram server."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from handlers.health import has_error
from storage import outbox
from storage.outbox import Target
from tests.fakes.telegram import FakeTelegram
from tests.reliability import mentions, rig, texts_for, until

A, B = "42", "43"
PROBE_S = 0.5


def sends(telegram: FakeTelegram, chat: str) -> list[dict]:
    return [
        r
        for r in telegram.requests
        if r["method"] == "sendMessage" and str(r["params"].get("chat_id")) == chat
    ]


@pytest.mark.parametrize(
    ("setup", "fix", "logged", "hint"),
    [
        (
            lambda tg: tg.blocked_chats.add(42),
            lambda tg: tg.blocked_chats.clear(),
            "Forbidden: bot was blocked by the user",
            "add the bot to chat 42 again",
        ),
        (
            lambda tg: tg.unknown_chats.add(42),
            lambda tg: tg.unknown_chats.clear(),
            "Chat not found",
            "check 42 in TELEGRAM_CHAT_IDS",
        ),
    ],
    ids=["blocked", "chat-not-found"],
)
async def test_a_target_problem_pauses_the_target_and_its_alerts_wait_until_it_is_fixed(
    tmp_path: Path,
    telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
    setup,
    fix,
    logged: str,
    hint: str,
) -> None:
    setup(telegram)
    caplog.set_level(logging.INFO)
    async with rig(tmp_path, telegram, [A, B], probe_s=PROBE_S) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=B)
        await until(lambda: any("PAUSED" in x.getMessage() for x in caplog.records), 5, "pause")
        await r.missed(2, 3)  # more arrive while it is paused: they wait too
        await until(lambda: len(sends(telegram, A)) >= 2, 5, "a second probe")
        status = r.dispatcher.status()[f"telegram:{A}"]
        assert status["paused"] and logged in status["paused"]
        assert has_error(r.dispatcher.status())  # /healthz: degraded
        states = dict(await r.rows("SELECT call_id, state FROM outbox WHERE target = ?", A))
        assert states == {1: "pending", 2: "pending", 3: "pending"}
        # one probe message per probe interval, not the whole queue
        assert len(sends(telegram, A)) <= 4
        [line] = [x for x in caplog.records if "PAUSED" in x.getMessage()]
        assert line.levelno == logging.ERROR and hint in line.getMessage()
        assert "giving up" not in caplog.text

        fix(telegram)  # the operator unblocks the bot / creates the chat
        await until(
            lambda: all(mentions(texts_for(telegram, A), [1, 2, 3]).values()), 10, "delivered"
        )
        assert await r.dispatcher.flush(10)
        states = dict(await r.rows("SELECT call_id, state FROM outbox WHERE target = ?", A))
        assert r.dispatcher.status()[f"telegram:{A}"]["paused"] is None
    assert states == {1: "sent", 2: "sent", 3: "sent"}
    assert mentions(texts_for(telegram, A), [1, 2, 3]) == {1: 1, 2: 1, 3: 1}
    assert "delivering again" in caplog.text


async def test_a_migrated_group_gets_its_alerts_at_the_new_id(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = "-4001", "-1004001"
    telegram.migrated_chats[int(old)] = int(new)
    caplog.set_level(logging.INFO)
    async with rig(tmp_path, telegram, [old]) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=new, timeout=10)
        await r.missed(2)
        await telegram.wait_for_messages(2, chat_id=new, timeout=10)
        assert await r.dispatcher.flush(10)
        rows = await r.rows("SELECT state FROM outbox")
    assert rows == [("sent",), ("sent",)]
    assert mentions(texts_for(telegram, new), [1, 2]) == {1: 1, 2: 1}
    assert telegram.messages_for(old) == []
    [line] = [x for x in caplog.records if "became supergroup" in x.getMessage()]
    assert f"Put {new} in TELEGRAM_CHAT_IDS instead of {old}" in line.getMessage()


async def test_an_alert_older_than_the_max_age_is_failed_even_while_paused(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.unknown_chats.add(42)
    async with rig(tmp_path, telegram, [A], probe_s=PROBE_S, max_age_s=1.0) as r:
        await r.missed(1)
        await until(lambda: r.dispatcher.status()[f"telegram:{A}"]["paused"], 5, "paused")
        deadline = time.monotonic() + 10
        while await r.rows("SELECT state FROM outbox") != [("failed",)]:
            assert time.monotonic() < deadline, "not failed after the max age"
            await asyncio.sleep(0.1)
        backlog = await r.store.run(outbox.backlog)
    assert backlog[str(Target("telegram", A))]["failed"] == 1
