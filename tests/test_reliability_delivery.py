"""Delivery under injected faults: the real dispatcher and Telegram channel in this process,
talking HTTP to the fake Telegram server, which answers each fault as Telegram does.

Each test injects a fault and checks the promise it threatens: retried with backoff until
delivered, 429 waited out exactly and for its chat only, permanent errors given up at once
with a clear log line, expiry after the maximum age, one chat never delaying another, and
the database refusing a write never costing a duplicate or a dead worker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

import pytest

from bot.delivery import outcome as dispatcher_module  # the retry stage
from bot.delivery import render
from bot.delivery.channels.base import RateLimit, acquire
from bot.delivery.dispatcher import BACKOFF_MAX_S, backoff
from storage import outbox
from storage.outbox import Target
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    db_rows,
    e164,
    fill,
    in_flight,
    mentions,
    rig,
    texts_for,
    tiny_filesystem,
    until,
)

A, B = "42", "43"  # two private chats (1 message a second each)
GROUP = "-1001234567890"


def sends(telegram: FakeTelegram, chat: str) -> list[dict]:
    """sendMessage requests to `chat`, answered or not, in order."""
    return [
        r
        for r in telegram.requests
        if r["method"] == "sendMessage" and str(r["params"].get("chat_id")) == chat
    ]


async def wait_states(r, wanted: dict[int, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = dict(await r.rows("SELECT call_id, state FROM outbox"))
        if states == wanted:
            return
        assert time.monotonic() < deadline, states
        await asyncio.sleep(0.1)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    for attempts in range(12):
        nominal = min(dispatcher_module.BACKOFF_BASE_S * 2**attempts, BACKOFF_MAX_S)
        samples = [backoff(attempts) for _ in range(50)]
        assert all(0.8 * nominal <= s <= 1.2 * nominal for s in samples)
        assert len(set(samples)) > 1  # jitter: targets do not retry in step
    assert BACKOFF_MAX_S <= 60  # after an outage, alerts follow within a minute


async def test_transient_errors_are_retried_with_backoff_until_delivered(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatcher_module, "BACKOFF_BASE_S", 0.6)
    telegram.fail_next(1, status=500)
    telegram.fail_next(1, status=502)  # nginx's HTML page, as Telegram's front end sends
    telegram.fail_next(1, status=504)
    async with rig(tmp_path, telegram, [A]) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=A, timeout=10)
        attempts = sends(telegram, A)
        assert [a["status"] for a in attempts] == [500, 502, 504, 200]
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(attempts)]
        # 0.6, 1.2, 2.4 s, each ±20 %. An error answer posted nothing, so it does not spend
        # the chat's 1 message a second: the backoff alone sets the pace
        for gap, nominal, bound in zip(gaps, (0.6, 1.2, 2.4), (1.0, 1.6, 3.0), strict=True):
            assert 0.8 * nominal <= gap < bound, gaps
        await wait_states(r, {1: "sent"}, 5)
        [(tries,)] = await r.rows("SELECT attempts FROM outbox")
        assert tries == 4
    assert texts_for(telegram, A)[0].count(e164(1)) == 1


async def test_429_waits_exactly_retry_after_for_that_chat_only(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    telegram.fail_next_in(A, 1, status=429, retry_after=3)
    async with rig(tmp_path, telegram, [A, B]) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=B)
        # B goes on at its own pace while A waits out its 429
        await r.missed(2)
        await r.missed(3)
        await telegram.wait_for_messages(3, chat_id=B, timeout=5)
        assert telegram.messages_for(A) == []
        await telegram.wait_for_messages(1, chat_id=A, timeout=6)
        [limited, retried, *_] = sends(telegram, A)
        assert limited["status"] == 429 and retried["status"] == 200
        waited = retried["t"] - limited["t"]
        assert 3.0 <= waited < 3.5, waited  # exactly what Telegram asked, not a backoff
        b_times = [m["t"] for m in telegram.messages_for(B)]
        assert all(t < retried["t"] for t in b_times)  # B never waited for A
        await telegram.wait_for_messages(3, chat_id=A, timeout=10)
    assert telegram.rate_limited == 1  # the injected one: our own pacing caused none
    for chat in (A, B):
        assert mentions(texts_for(telegram, chat), [1, 2, 3]) == {1: 1, 2: 1, 3: 1}


@pytest.mark.parametrize(
    ("setup", "logged"),
    # a blocked bot, an unknown chat, a migrated group concern the target, not the message:
    # those pause the target (tests/test_deliv_pause.py)
    [(lambda tg: tg.fail_next_in(A, 1, 400, "Bad Request: can't parse entities"), "parse")],
    ids=["bad-request"],
)
async def test_permanent_errors_stop_at_once_with_a_clear_log_line(
    tmp_path: Path,
    telegram: FakeTelegram,
    caplog: pytest.LogCaptureFixture,
    setup,
    logged: str,
) -> None:
    setup(telegram)
    caplog.set_level(logging.INFO)
    async with rig(tmp_path, telegram, [A, B]) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=B)
        await until(
            lambda: any("giving up" in rec.getMessage() for rec in caplog.records),
            5,
            "a log line",
        )
        rows = await r.rows("SELECT target, state, attempts, last_error FROM outbox ORDER BY 1")
        backlog = await r.store.run(outbox.backlog)
    a_row, b_row = rows
    assert a_row[:3] == (A, "failed", 1) and logged in a_row[3]
    assert b_row[:2] == (B, "sent")
    assert len(sends(telegram, A)) == 1  # not retried
    line = next(rec for rec in caplog.records if "giving up" in rec.getMessage())
    assert line.levelno == logging.ERROR and "telegram:42" in line.getMessage()
    assert logged in line.getMessage()
    # /healthz reads this: the failure is counted, with its reason
    assert backlog[f"telegram:{A}"]["failed"] == 1
    assert logged in backlog[f"telegram:{A}"]["last_error"]


async def test_invalid_token_pauses_the_target_and_keeps_the_alert(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15.10: a refused token is the operator's to fix; the alert waits for it."""
    async with rig(tmp_path, telegram, [A], token="999:revoked-token") as r:
        await r.missed(1)
        await until(lambda: "PAUSED" in caplog.text, 5, "a log line")
        rows = await r.rows("SELECT state, attempts, last_error FROM outbox")
    assert rows == [("pending", 1, "Telegram: Unauthorized")]
    assert "check TELEGRAM_BOT_TOKEN" in caplog.text and "giving up" not in caplog.text
    assert len([q for q in telegram.requests if q["method"] == "sendMessage"]) == 1


async def test_messages_older_than_max_age_are_marked_failed_and_counted(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.mode = "down_500"
    async with rig(tmp_path, telegram, [A], max_age_s=0.5) as r:
        await r.missed(1)
        await until(lambda: "undelivered for too long" in caplog.text, 10, "expiry")
        rows = await r.rows("SELECT state, last_error FROM outbox")
        backlog = await r.store.run(outbox.backlog)
        telegram.mode = "ok"
        await r.missed(2)  # fresh ones still go out
        await telegram.wait_for_messages(1, chat_id=A, timeout=10)
    assert rows == [("failed", "Telegram: Internal Server Error")]
    assert backlog == {
        f"telegram:{A}": {
            "pending": 0,
            "failed": 1,
            "last_error": "Telegram: Internal Server Error",
        }
    }
    assert mentions(texts_for(telegram, A), [1, 2]) == {1: 0, 2: 1}


async def test_a_hanging_chat_never_delays_another(tmp_path: Path, telegram: FakeTelegram) -> None:
    telegram.hang_chat(A)
    async with rig(tmp_path, telegram, [A, B]) as r:
        for i in range(1, 4):
            await r.missed(i)
        await telegram.wait_for_messages(3, chat_id=B, timeout=6)
        assert telegram.messages_for(A) == []
        telegram.release_chat(A)
        await until(
            lambda: mentions(texts_for(telegram, A), [1, 2, 3]) == {1: 1, 2: 1, 3: 1},
            15,
            "A catches up",
        )
    assert mentions(texts_for(telegram, B), [1, 2, 3]) == {1: 1, 2: 1, 3: 1}


async def test_rate_limits_count_from_the_answer_so_latency_never_causes_a_429(
    telegram: FakeTelegram,
) -> None:
    """The fake counts a send when it arrives; we count it when it was allowed. A slow first
    request (here: 0.3 s on the wire) must not make the second look early to the server."""
    limit = RateLimit(1, 1.0)
    first = await acquire([limit])
    arrived = time.monotonic() + 0.3  # the platform's moment, after the network's delay
    await asyncio.sleep(0.3)
    first.settle()
    await acquire([limit])
    assert time.monotonic() - arrived >= 1.0


async def test_limits_remember_sends_from_before_a_restart(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    async with rig(tmp_path, telegram, [GROUP]) as r:
        await r.missed(1)
        await telegram.wait_for_messages(1, chat_id=GROUP)
        for i in range(2, 6):
            await r.missed(i)
        await until(
            lambda: sum(mentions(texts_for(telegram, GROUP), range(1, 6)).values()) == 5,
            15,
            "five alerts",
        )
    async with rig(tmp_path, telegram, [GROUP]) as again:
        limits = again.channel.limits(GROUP)
        # the group's budget already holds this minute's sends: a fresh process does not
        # start with a fresh budget (Telegram would not)
        assert max(limit.delay(time.monotonic()) for limit in limits) > 5


async def test_a_full_disk_after_sending_costs_no_duplicate_and_no_dead_worker(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        fs = tiny_filesystem(tmp_path / "small", "2m")
        small = fs.__enter__()
    except OSError as exc:
        pytest.skip(str(exc))
    try:
        db = small / "calls.db"
        telegram.hang_chat(A)  # hold the send until the disk is full
        async with rig(tmp_path, telegram, [A], db_path=db) as r:
            await r.missed(1)
            await until(lambda: len(sends(telegram, A)) == 1, 5, "the send starts")
            filler = fill(small)
            telegram.release_chat(A)
            await telegram.wait_for_messages(1, chat_id=A)
            await until(lambda: "cannot record it" in caplog.text, 5, "the failed write")
            filler.unlink()  # space again: the worker records the send and goes on
            await wait_states(r, {1: "sent"}, 40)
            await r.missed(2)
            await telegram.wait_for_messages(2, chat_id=A, timeout=10)
            await wait_states(r, {1: "sent", 2: "sent"}, 10)
            rows = await r.rows("SELECT call_id, state FROM outbox ORDER BY call_id")
        assert rows == [(1, "sent"), (2, "sent")]
        assert mentions(texts_for(telegram, A), [1, 2]) == {1: 1, 2: 1}
        assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    finally:
        fs.__exit__(None, None, None)


async def test_a_chat_taken_out_of_the_configuration_gets_nothing_more(
    tmp_path: Path, telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    """Alerts queued for a chat that is no longer configured (someone left the team) wait
    in the outbox instead of going to it after a restart."""
    telegram.mode = "down_500"
    async with rig(tmp_path, telegram, [A, B]) as r:
        await r.missed(1)
        await until(lambda: "send failed" in caplog.text, 5, "a failed send")
    telegram.mode = "ok"
    async with rig(tmp_path, telegram, [B], targets=[Target("telegram", B)]) as again:
        await telegram.wait_for_messages(1, chat_id=B, timeout=10)
        # settled as far as the service goes: B's row recorded sent, no send in flight, and
        # nothing due for any worker; A's row stays pending by design, so `settled` (an
        # empty outbox) cannot be the signal here
        db = tmp_path / "calls.db"
        await until(
            lambda: (
                db_rows(db, "SELECT state FROM outbox WHERE target = ?", B) == [("sent",)]
                and not in_flight(telegram)
            ),
            10,
            "B's alert recorded and nothing in flight",
        )
        assert await again.dispatcher.flush(10)
        assert not in_flight(telegram)
        rows = await again.rows("SELECT target, state FROM outbox ORDER BY target")
    assert telegram.messages_for(A) == []
    assert rows == [(A, "pending"), (B, "sent")]
    assert "telegram:42, which is no longer configured" in caplog.text


async def test_a_message_that_cannot_be_rendered_never_blocks_its_chat(
    tmp_path: Path,
    telegram: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rendering bug hit by one row (a poison message) gives that row up, with the
    traceback in the log; the alerts behind it still go out."""
    real_alert = render.alert

    def alert(call, *args, **kwargs):
        if call.call_id == 2:
            raise ValueError("a rendering bug")
        return real_alert(call, *args, **kwargs)

    monkeypatch.setattr(render, "alert", alert)
    async with rig(tmp_path, telegram, [A]) as r:
        await r.missed(1, 2, 3)
        await until(lambda: mentions(texts_for(telegram, A), [1, 3]) == {1: 1, 3: 1}, 10, "1 and 3")
        await wait_states(r, {1: "sent", 2: "failed", 3: "sent"}, 5)
    assert "cannot render" in caplog.text and "a rendering bug" in caplog.text
