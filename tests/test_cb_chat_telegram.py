"""Issue 12 as a Telegram team meets it, through the CLI and the fake Telegram: the
"✅ Called back" button, auto-resolution by a later answered call, the repeat marker, and
the reminder when the promise is broken."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import KYIV, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, db_rows, e164, settled, until
from tests.service import Service
from tests.test_chan_telegram import webhook_env

QUIET = {"CALLBACK_WITHIN_MINUTES": "0"}  # no reminders among the messages counted
STRANGER = "-1009999999999"
PRESSER = 555_000_111


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def buttons(message: dict[str, Any]) -> list[str]:
    """The callback_data of a message's inline buttons."""
    markup = _json(message.get("reply_markup")) or {}
    return [b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row]


def sent(telegram: FakeTelegram, method: str) -> list[dict[str, Any]]:
    return [m for m in telegram.messages_for(GROUP) if m["method"] == method]


async def post(service: Service, *calls: dict[str, Any]) -> None:
    status, body = await service.post(service.webhook_url, json=list(calls))
    assert status == 200 and body["accepted"] == len(calls), body


async def alert_for(telegram: FakeTelegram, call_id: int, by: int | None = None) -> dict[str, Any]:
    """The alert naming the caller (of `by`, else of `call_id`), once its button is there."""
    number = e164(call_id if by is None else by)

    def find() -> dict[str, Any] | None:
        for m in sent(telegram, "sendMessage"):
            if number in (m["plain_text"] or "") and f"cb:{call_id}" in buttons(m):
                return m
        return None

    await until(lambda: find() is not None, 20, f"the alert of call {call_id} with its button")
    found = find()
    assert found is not None
    return found


def answers(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [r for r in telegram.requests if str(r["method"]).lower() == "answercallbackquery"]


async def press(
    telegram: FakeTelegram, chat: str, message_id: int, call_id: int, user: int = PRESSER
) -> str:
    """Press the button; the text of the answerCallbackQuery it got."""
    before = len(answers(telegram))
    telegram.push_callback_query(chat, message_id, f"cb:{call_id}", user_id=user)
    await until(lambda: len(answers(telegram)) > before, 15, "answerCallbackQuery")
    return str(answers(telegram)[before]["params"].get("text", ""))


def edits_of(telegram: FakeTelegram, message_id: int) -> list[dict[str, Any]]:
    return [m for m in sent(telegram, "editMessageText") if m["message_id"] == message_id]


def resolutions(db: str) -> list[tuple[Any, ...]]:
    return db_rows(db, "SELECT call_id, how, by_name, by_user, manager FROM resolutions")


async def test_a_press_marks_the_alert_once_and_says_who_was_first(
    services, telegram: FakeTelegram
) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    db = service.env["DATABASE_PATH"]
    await post(service, make_call(1, "NOANSWER", caller=caller(1)))
    alert = await alert_for(telegram, 1)
    mid = alert["message_id"]

    answer = await press(telegram, GROUP, mid, 1)
    assert answer.startswith("✅")
    await until(lambda: edits_of(telegram, mid), 15, "the alert edited")
    edited = edits_of(telegram, mid)[-1]
    text = edited["plain_text"]
    assert e164(1) in text  # the call details stay
    assert "✅" in text and "Test" in text  # ... and who called back (the fake's first name)
    assert "cb:1" not in buttons(edited)  # the button is gone
    assert resolutions(db) == [(1, "button", "Test", f"telegram:{PRESSER}", None)]

    # a second press, by someone else: nothing changes, the answer names the first presser
    again = await press(telegram, GROUP, mid, 1, user=PRESSER + 1)
    assert "Test" in again and not again.startswith("✅")
    await settled(db, telegram)
    assert len(edits_of(telegram, mid)) == 1
    assert resolutions(db) == [(1, "button", "Test", f"telegram:{PRESSER}", None)]


async def test_a_press_from_another_chat_or_message_changes_nothing(
    services, telegram: FakeTelegram
) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    db = service.env["DATABASE_PATH"]
    await post(service, make_call(2, "NOANSWER", caller=caller(2)))
    mid = (await alert_for(telegram, 2))["message_id"]

    # the same payload from a chat that is not configured: refused
    refused = await press(telegram, STRANGER, mid, 2)
    assert refused and not refused.startswith("✅")
    # in the configured chat but under another message (a forged or copied payload)
    other = await press(telegram, GROUP, mid + 1000, 2)
    assert other and not other.startswith("✅")
    await settled(db, telegram)
    assert resolutions(db) == []
    assert edits_of(telegram, mid) == []
    assert telegram.messages_for(STRANGER) == []  # not even a message there


async def test_a_press_after_a_restart_still_counts(services, telegram: FakeTelegram) -> None:
    first = await services(**telegram_env(telegram), **QUIET)
    db = first.env["DATABASE_PATH"]
    await post(first, make_call(3, "NOANSWER", caller=caller(3)))
    mid = (await alert_for(telegram, 3))["message_id"]
    await settled(db, telegram)
    assert await first.stop() == 0

    await services(**telegram_env(telegram), **QUIET)
    assert (await press(telegram, GROUP, mid, 3)).startswith("✅")
    await until(lambda: edits_of(telegram, mid), 15, "the alert edited after the restart")
    assert "cb:3" not in buttons(edits_of(telegram, mid)[-1])
    assert [r[:2] for r in resolutions(db)] == [(3, "button")]


async def test_a_later_answered_call_resolves_the_alert(services, telegram: FakeTelegram) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    db = service.env["DATABASE_PATH"]
    missed_at = datetime.now(KYIV) - timedelta(minutes=5)
    await post(service, make_call(4, "NOANSWER", when=missed_at, caller=caller(4)))
    mid = (await alert_for(telegram, 4))["message_id"]

    # the buyer calls again and gets through: the webhook brings the ANSWER call
    await post(service, make_call(5, "ANSWER", caller=caller(4)))
    await until(lambda: edits_of(telegram, mid), 15, "the alert edited by the answered call")
    edited = edits_of(telegram, mid)[-1]
    assert "✅" in edited["plain_text"] and "cb:4" not in buttons(edited)
    assert [r[:2] for r in resolutions(db)] == [(4, "answered")]


async def test_a_repeat_missed_call_is_marked(services, telegram: FakeTelegram) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    first_at = datetime.now(KYIV) - timedelta(minutes=3)
    await post(service, make_call(6, "NOANSWER", when=first_at, caller=caller(6)))
    first = await alert_for(telegram, 6)
    assert "🔁" not in first["plain_text"]
    await post(service, make_call(7, "NOANSWER", caller=caller(6)))
    second = await alert_for(telegram, 7, by=6)
    assert "🔁" in second["plain_text"]


async def test_a_reminder_replies_to_the_open_alert_once(services, telegram: FakeTelegram) -> None:
    # 0.05 min = 3 s: the promise, in a test's time
    service = await services(**telegram_env(telegram), CALLBACK_WITHIN_MINUTES="0.05")
    db = service.env["DATABASE_PATH"]
    await post(service, make_call(8, "NOANSWER", caller=caller(8)))
    mid = (await alert_for(telegram, 8))["message_id"]

    def reminders() -> list[dict[str, Any]]:
        return [
            m for m in sent(telegram, "sendMessage") if (m["plain_text"] or "").startswith("⏰")
        ]

    await until(lambda: reminders(), 20, "a reminder")
    reminder = reminders()[0]
    assert e164(8) in reminder["plain_text"]
    reply_to = _json(reminder["params"].get("reply_parameters")) or {}
    assert int(reply_to.get("message_id", 0)) == mid
    # the job keeps running every second; the reminder's row is sent once, ever
    await settled(db, telegram)
    assert db_rows(db, "SELECT state FROM outbox WHERE kind = 'reminder'") == [("sent",)]
    assert len(reminders()) == 1

    # pressing now resolves it; no second reminder follows
    assert (await press(telegram, GROUP, mid, 8)).startswith("✅")
    await settled(db, telegram)
    assert len(reminders()) == 1


async def test_a_press_arrives_in_webhook_mode_too(services, telegram: FakeTelegram) -> None:
    """setWebhook asks for callback_query (the fake, like Telegram, drops kinds not asked
    for), and the press comes in on /webhooks/telegram/<secret>."""
    _, env = webhook_env(telegram)
    service = await services(**env, **QUIET)
    await until(lambda: bool(telegram.webhook["url"]), 40, "the webhook set")
    assert "callback_query" in (telegram.webhook["allowed_updates"] or [])
    await post(service, make_call(9, "NOANSWER", caller=caller(9)))
    mid = (await alert_for(telegram, 9))["message_id"]
    assert (await press(telegram, GROUP, mid, 9)).startswith("✅")
    await until(lambda: edits_of(telegram, mid), 15, "the alert edited")
    assert telegram.webhook_deliveries  # it came by the webhook, not getUpdates
