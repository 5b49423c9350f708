"""The callback loop's delivery (issue 12): render units in every language, and the
dispatcher with the real Telegram and Slack clients against the fakes: buttons on alerts,
edit in place, an edit refused as too old becomes a reply, reminders as replies and skipped
once resolved, and edits sharing the chat's rate limit with alerts."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import i18n
from bot.delivery import callback
from bot.delivery.channels.slack import SlackChannel, build_client
from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.markup import get_format
from storage import outbox
from storage.calls import Call, ingest
from storage.db import Store
from storage.outbox import OutboxItem, Target
from storage.resolutions import ANSWERED, BUTTON, Resolution, due_reminders, resolve_by_button
from tests.conftest import GROUP, TG_TOKEN
from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack
from tests.fakes.telegram import FakeTelegram

KYIV = ZoneInfo("Europe/Kyiv")
MISSED = ("NOANSWER", "BUSY", "CANCEL")
CHANNEL = "C0SALES001"
LANGS = i18n.LANGUAGES
FORMATS = ("html", "mrkdwn", "text")


def make(call_id: int, started_at: float, caller: str = "+380671234567", **kw: Any) -> Call:
    local = datetime.fromtimestamp(int(started_at), KYIV).strftime("%Y-%m-%dT%H:%M:%S")
    fields: dict[str, Any] = {
        "call_id": call_id,
        "started_at": int(started_at),
        "local_date": local,
        "status": "NOANSWER",
        "caller_phone": "0" + caller[4:],
        "caller_e164": caller,
        "destination_phone": "0731375686",
    }
    fields.update(kw)
    return Call(**fields)


# ---- render -------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 14, 30, tzinfo=KYIV)
T0 = NOW.timestamp() - 600  # the call: 14:20


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_open_alert_has_one_called_back_button(fmt: str, lang: str) -> None:
    msg = callback.alert(make(7, T0), fmt, lang, KYIV, now=NOW)
    assert [b.call_id for b in msg.buttons] == [7]
    assert msg.buttons[0].label == {"en": "✅ Called back", "uk": "✅ Передзвонили"}[lang]
    assert "✅" not in msg.text and "🔁" not in msg.text


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_resolved_by_button_names_the_presser_and_minutes(fmt: str, lang: str) -> None:
    res = Resolution(7, T0 + 4 * 60 + 30, BUTTON, "Olena", "telegram:1")
    msg = callback.alert(make(7, T0), fmt, lang, KYIV, resolution=res, now=NOW)
    assert msg.buttons == []
    last = msg.text.split("\n")[-1]
    expected = {
        "en": "✅ Called back by Olena · 4 min after the call",
        "uk": "✅ Передзвонив(ла) Olena · через 4 хв після дзвінка",
    }[lang]
    assert last == expected
    assert "0671234567" in msg.text.replace(" ", "").replace("+38", "")  # the caller stays


@pytest.mark.parametrize("lang", LANGS)
def test_resolved_by_an_answered_call_gives_the_time_and_manager(lang: str) -> None:
    res = Resolution(7, T0 + 45 * 60, ANSWERED, answered_call_id=9, manager="0501112233")
    msg = callback.alert(make(7, T0), "text", lang, KYIV, resolution=res, now=NOW)
    expected = {
        "en": "✅ Got through at 15:05 (answered by +380 50 111 2233)",
        "uk": "✅ Додзвонився о 15:05 (відповів +380 50 111 2233)",
    }[lang]
    assert msg.text.split("\n")[-1] == expected
    unknown = Resolution(7, T0 + 45 * 60, ANSWERED, answered_call_id=9)
    text = callback.alert(make(7, T0), "text", lang, KYIV, resolution=unknown, now=NOW).text
    assert text.split("\n")[-1].startswith("✅") and "15:05" in text


def test_presser_name_is_escaped() -> None:
    res = Resolution(7, T0 + 60, BUTTON, "<b>Ann & Co</b>", "telegram:1")
    text = callback.alert(make(7, T0), "html", "en", KYIV, resolution=res, now=NOW).text
    assert "&lt;b&gt;Ann &amp; Co&lt;/b&gt;" in text


@pytest.mark.parametrize(
    ("lang", "n", "line"),
    [
        ("en", 2, "🔁 2nd missed call from this number today"),
        ("en", 3, "🔁 3rd missed call from this number today"),
        ("en", 11, "🔁 11th missed call from this number today"),
        ("en", 21, "🔁 21st missed call from this number today"),
        ("uk", 2, "🔁 2-й пропущений дзвінок з цього номера сьогодні"),
    ],
)
def test_repeat_line(lang: str, n: int, line: str) -> None:
    msg = callback.alert(make(7, T0), "text", lang, KYIV, repeat=n, now=NOW)
    assert line in msg.text.split("\n")


@pytest.mark.parametrize("lang", LANGS)
def test_reminder_text_and_reply(lang: str) -> None:
    ref = {"chat_id": -100, "message_id": 5}
    msg = callback.reminder([make(7, T0)], "text", lang, T0 + 15 * 60 + 20, ref)
    expected = {
        "en": "⏰ Not called back for 15 min: +380671234567",
        "uk": "⏰ Не передзвонили вже 15 хв: +380671234567",
    }[lang]
    assert msg.text == expected
    assert msg.reply_to == ref and msg.buttons == []


def test_coalesced_reminder_lists_each_open_caller_once() -> None:
    calls = [make(1, T0), make(2, T0 + 5, "+380501110002"), make(3, T0 + 9)]
    text = callback.reminder(calls, "text", "en", T0 + 16 * 60, None).text
    assert text == "⏰ Not called back for 16 min: +380671234567, +380501110002"


@pytest.mark.parametrize("lang", LANGS)
def test_coalesced_buttons_one_per_open_caller_by_last_digits(lang: str) -> None:
    calls = [
        make(1, T0),
        make(2, T0 + 5, "+380501110002"),
        make(3, T0 + 9),  # the same caller as 1: one button, on the newest call
        make(4, T0 + 12, "+380931110004"),
        make(5, T0 + 15, "", caller_phone=""),  # number hidden: nobody to call back
    ]
    res = {4: Resolution(4, T0 + 100, BUTTON, "Ivan")}
    msg = callback.coalesced(calls, "text", lang, KYIV, res, now=NOW)
    assert [(b.label, b.call_id) for b in msg.buttons] == [("✅ …0002", 2), ("✅ …4567", 3)]
    resolved = [line for line in msg.text.split("\n") if line.startswith("✅")]
    assert len(resolved) == 1 and "Ivan" in resolved[0] and "+380931110004" in resolved[0]


def test_coalesced_buttons_stop_at_telegrams_100() -> None:
    calls = [make(i, T0 + i, f"+38050{i:07d}") for i in range(1, 131)]
    assert len(callback.caller_buttons(calls, "en")) == 100


def test_took_is_whole_minutes_under_an_hour() -> None:
    assert callback.took("en", 59) == i18n.duration("en", 59)
    assert callback.took("en", 15 * 60 + 59) == "15 min"
    assert callback.took("uk", 3600 + 120) == i18n.duration("uk", 3720)


def test_markup_of_every_line_is_valid_html() -> None:
    res = Resolution(7, T0 + 300, BUTTON, "O'Neil <x>", "telegram:1")
    text = callback.alert(make(7, T0), "html", "uk", KYIV, resolution=res, repeat=2).text
    get_format("html")  # the same escaping as every alert
    assert "<x>" not in text


# ---- dispatcher against the fakes -------------------------------------------------------


@dataclass
class Rig:
    store: Store
    d: Dispatcher
    target: Target

    async def alert(self, call: Call) -> list[OutboxItem]:
        result = await self.store.run(
            lambda db: ingest(
                db,
                [call],
                source="webhook",
                received_at=time.time(),
                missed_statuses=MISSED,
                targets=[self.target],
                alert_max_age_s=None,
            )
        )
        self.d.submit(result.outbox_items)
        return result.alerts

    async def press(self, call_id: int, message_id: str, name: str = "Olena") -> Any:
        result = await self.store.run(
            resolve_by_button, call_id, self.target, message_id, name, "telegram:7", time.time()
        )
        self.d.submit(result.edits)
        return result

    async def rows(self, kind: str) -> list[tuple[Any, ...]]:
        return [
            tuple(r)
            for r in await self.store.run(
                lambda db: db.conn.execute(
                    "SELECT state, message_ref, last_error FROM outbox WHERE kind = ? ORDER BY id",
                    (kind,),
                ).fetchall()
            )
        ]


async def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


@pytest.fixture
async def tg(tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[Rig]:
    store = Store(tmp_path / "calls.db")
    await store.open()
    channel = TelegramChannel(build_application(TG_TOKEN, telegram.url, webhook_mode=True))
    d = Dispatcher(store, {"telegram": channel}, lang="en", tz=KYIV)
    try:
        yield Rig(store, d, Target("telegram", GROUP))
    finally:
        await d.stop()
        await channel.app.bot.shutdown()
        await store.close()


def edit_requests(telegram: FakeTelegram) -> list[dict[str, Any]]:
    return [r for r in telegram.requests if r["method"].lower() == "editmessagetext"]


def sent(telegram: FakeTelegram, method: str = "sendMessage") -> list[dict[str, Any]]:
    return [m for m in telegram.messages_for(GROUP) if m["method"] == method]


async def test_telegram_alert_button_then_edit_in_place(tg: Rig, telegram: FakeTelegram) -> None:
    started = time.time() - 4 * 60 - 10
    await tg.alert(make(101, started))
    alert = (await until(lambda: sent(telegram)))[0]
    keyboard = alert["reply_markup"]["inline_keyboard"]
    assert keyboard == [[{"text": "✅ Called back", "callback_data": "cb:101"}]]

    result = await tg.press(101, str(alert["message_id"]))
    assert result.status == "resolved"
    edit = (await until(lambda: sent(telegram, "editMessageText")))[0]
    assert edit["message_id"] == alert["message_id"]
    assert edit["plain_text"].split("\n")[-1] == "✅ Called back by Olena · 4 min after the call"
    assert edit["plain_text"].startswith(alert["plain_text"])  # the call details stay
    assert edit["reply_markup"] is None  # the button is gone
    assert await tg.d.flush(5)
    assert [r[0] for r in await tg.rows("edit")] == ["sent"]
    assert len(sent(telegram)) == 1  # no extra message


async def test_telegram_edit_refused_as_too_old_becomes_a_reply(
    tg: Rig, telegram: FakeTelegram
) -> None:
    await tg.alert(make(102, time.time() - 120))
    alert = (await until(lambda: sent(telegram)))[0]
    telegram.make_uneditable(GROUP, alert["message_id"])
    await tg.press(102, str(alert["message_id"]))
    replies = await until(lambda: sent(telegram)[1:])
    reply = replies[0]
    assert reply["plain_text"].startswith("✅ Called back by Olena · 2 min after the call")
    assert "+380671234567" in reply["plain_text"]
    assert reply["params"]["reply_parameters"]["message_id"] == alert["message_id"]
    assert await tg.d.flush(5)
    assert [r[0] for r in await tg.rows("edit")] == ["sent"]  # not a failure
    assert sent(telegram, "editMessageText") == []


async def test_telegram_edit_of_a_deleted_alert_becomes_a_new_message(
    tg: Rig, telegram: FakeTelegram
) -> None:
    await tg.alert(make(103, time.time() - 120))
    alert = (await until(lambda: sent(telegram)))[0]
    telegram.delete_message(GROUP, alert["message_id"])
    await tg.press(103, str(alert["message_id"]))
    note = (await until(lambda: sent(telegram)[1:]))[0]
    assert note["plain_text"].startswith("✅ Called back by Olena")
    assert "reply_parameters" not in note["params"]  # nothing left to reply to
    assert await tg.d.flush(5)
    assert [r[0] for r in await tg.rows("edit")] == ["sent"]


async def test_telegram_not_modified_counts_as_done(tg: Rig, telegram: FakeTelegram) -> None:
    await tg.alert(make(104, time.time() - 60))
    alert = (await until(lambda: sent(telegram)))[0]
    await tg.press(104, str(alert["message_id"]))
    await until(lambda: sent(telegram, "editMessageText"))
    assert await tg.d.flush(5)
    # the same edit again (a retry after a crash before it was recorded): Telegram answers
    # "message is not modified", which is success
    again = OutboxItem(
        "edit-again",
        "edit",
        tg.target,
        time.time(),
        time.time(),
        call_id=104,
        payload={"message_ref": {"chat_id": int(GROUP), "message_id": alert["message_id"]}},
    )
    tg.d.submit(await tg.store.run(outbox.enqueue, [again]))
    await until(lambda: len(edit_requests(telegram)) >= 2)
    assert await tg.d.flush(5)
    assert [r[0] for r in await tg.rows("edit")] == ["sent", "sent"]


async def test_telegram_reminder_is_a_reply_to_the_alert(tg: Rig, telegram: FakeTelegram) -> None:
    now = time.time()
    await tg.alert(make(105, now - 20 * 60 - 5))
    alert = (await until(lambda: sent(telegram)))[0]
    assert await tg.d.flush(5)
    items = await tg.store.run(due_reminders, time.time(), 15 * 60, 3600)
    assert len(items) == 1
    tg.d.submit(items)
    reminder = (await until(lambda: sent(telegram)[1:]))[0]
    assert reminder["plain_text"] == "⏰ Not called back for 20 min: +380671234567"
    assert reminder["params"]["reply_parameters"]["message_id"] == alert["message_id"]
    assert reminder["reply_markup"] is None


async def test_telegram_reminder_skipped_when_resolved_meanwhile(
    tg: Rig, telegram: FakeTelegram
) -> None:
    now = time.time()
    await tg.alert(make(106, now - 20 * 60))
    alert = (await until(lambda: sent(telegram)))[0]
    assert await tg.d.flush(5)
    reminders = await tg.store.run(due_reminders, time.time(), 15 * 60, 3600)
    # the press lands before the reminder's turn: the reminder has nothing to say
    pressed = await tg.store.run(
        resolve_by_button, 106, tg.target, str(alert["message_id"]), "Ivan", "telegram:8", now
    )
    tg.d.submit(reminders + pressed.edits)
    await until(lambda: sent(telegram, "editMessageText"))
    assert await tg.d.flush(5)
    states = await tg.rows("reminder")
    assert [s[0] for s in states] == ["sent"] and '"skipped"' in states[0][1]
    assert all("⏰" not in m["plain_text"] for m in telegram.messages_for(GROUP))


async def test_edits_share_the_chats_rate_limit_with_alerts(
    tg: Rig, telegram: FakeTelegram
) -> None:
    # a group allows 1 message a second: an edit right after two alerts waits its turn
    now = time.time()
    await tg.alert(make(107, now - 60))
    alert = (await until(lambda: sent(telegram)))[0]
    await tg.alert(make(108, now - 30, "+380501110008"))
    await tg.press(107, str(alert["message_id"]))
    await until(lambda: sent(telegram, "editMessageText") and len(sent(telegram)) >= 2)
    assert await tg.d.flush(5)
    stamps = sorted(m["t"] for m in telegram.messages_for(GROUP))
    assert len(stamps) == 3
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(stamps))


async def test_alert_resolved_on_its_way_gets_its_edit(tg: Rig, telegram: FakeTelegram) -> None:
    # the buyer got through (an answered call) before the alert was delivered: the alert goes
    # out with its button, then is edited to say so
    now = time.time()
    missed = make(109, now - 300)
    answered = make(110, now - 120, status="ANSWER", destination_phone="0501112233")
    result = await tg.store.run(
        lambda db: ingest(
            db,
            [missed, answered],
            source="poll",
            received_at=time.time(),
            missed_statuses=MISSED,
            targets=[tg.target],
            alert_max_age_s=None,
        )
    )
    tg.d.submit(result.outbox_items)
    edit = (await until(lambda: sent(telegram, "editMessageText")))[0]
    at = datetime.fromtimestamp(answered.started_at, KYIV).strftime("%H:%M")
    assert edit["plain_text"].endswith(f"✅ Got through at {at} (answered by +380 50 111 2233)")


# ---- Slack ------------------------------------------------------------------------------


@pytest.fixture
async def sl(tmp_path: Path) -> AsyncIterator[tuple[Rig, FakeSlack]]:
    async with FakeSlack(channels=[CHANNEL]) as fake:
        store = Store(tmp_path / "calls.db")
        await store.open()
        channel = SlackChannel(build_client(DEFAULT_BOT_TOKEN, fake.api_url, timeout=5))
        d = Dispatcher(store, {"slack": channel}, lang="en", tz=KYIV)
        try:
            yield Rig(store, d, Target("slack", CHANNEL)), fake
        finally:
            await d.stop()
            await store.close()


async def test_slack_button_edit_reminder_and_refused_edit(sl: tuple[Rig, FakeSlack]) -> None:
    rig, slack = sl
    now = time.time()
    await rig.alert(make(201, now - 20 * 60))
    alert = (await until(lambda: slack.messages_for(CHANNEL)))[0]
    actions = [b for b in alert["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for a in actions for e in a["elements"]] == ["called_back:201"]
    assert actions[0]["elements"][0]["text"]["text"] == "✅ Called back"
    assert actions[0]["elements"][0]["value"] == "201"
    assert await rig.d.flush(5)

    rig.d.submit(await rig.store.run(due_reminders, time.time(), 15 * 60, 3600))
    reminder = (await until(lambda: slack.messages_for(CHANNEL)[1:]))[0]
    assert reminder["text"].startswith("⏰ Not called back for 20 min")
    assert reminder["thread_ts"] == alert["ts"]

    await rig.press(201, alert["ts"])
    update = (await until(lambda: slack.updates))[0]
    assert update["ts"] == alert["ts"]
    assert "✅ Called back by Olena · 20 min after the call" in update["text"]
    assert all(b["type"] != "actions" for b in update["blocks"])

    # a second alert whose message Slack no longer lets us update: a reply in its thread
    await rig.alert(make(202, time.time() - 60, "+380501110202"))
    second = (await until(lambda: slack.messages_for(CHANNEL)[2:]))[0]
    slack.uneditable.add((CHANNEL, second["ts"]))
    await rig.press(202, second["ts"])
    note = (await until(lambda: slack.messages_for(CHANNEL)[3:]))[0]
    assert note["text"].startswith("✅ Called back by Olena")
    assert note["thread_ts"] == second["ts"]
    assert await rig.d.flush(5)
    assert [r[0] for r in await rig.rows("edit")] == ["sent", "sent"]


# ---- the summary's callback figures on a hand-computed day ----------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_summary_shows_the_callback_figures(tmp_path: Path, lang: str) -> None:
    from bot.summary.build import DAILY, build
    from bot.summary.text import text
    from storage.db import connect

    db = connect(tmp_path / "s.db")
    day = datetime(2026, 11, 27, 10, 0, tzinfo=KYIV)
    t = day.timestamp()
    target = Target("telegram", "-100")
    calls = [
        make(1, t, "+380501110001"),  # called back by button 4 min later: within 15 min
        make(2, t + 600, "+380501110002"),  # got through 40 min later: late
        make(3, t + 1200, "+380501110003"),  # still waiting
        make(4, t + 3000, "+380501110002", status="ANSWER", destination_phone="0501112233"),
    ]
    result = ingest(
        db,
        calls,
        source="poll",
        received_at=t + 3600,
        missed_statuses=MISSED,
        targets=[target],
        alert_max_age_s=None,
    )
    alert1 = next(i for i in result.alerts if i.call_id == 1)
    assert alert1.id is not None
    outbox.mark_sent(db, [alert1.id], {"chat_id": -100, "message_id": 11}, t + 5)
    pressed = resolve_by_button(db, 1, target, "11", "Olena", "telegram:1", t + 240)
    assert pressed.status == "resolved"
    summary = build(db, DAILY, day.date(), KYIV, now=t + 4000, within_s=900)
    lines = text(summary, "text", lang, KYIV).split("\n")
    # 3 missed callers; 2 resolved (4 min, 40 min): 67%; within 15 min: 1 of 3 = 33%;
    # median of 240 s and 2400 s = 1320 s = 22 min; 1 still waiting
    expected = {
        "en": "Called back: 2 of 3 (67%) · within 15 min: 33% · median: 22 min 00 s"
        " · still waiting: 1",
        "uk": "Передзвонили: 2 з 3 (67%) · вчасно (до 15 хв): 33% · медіана: 22 хв 00 с"
        " · чекають: 1",
    }[lang]
    assert expected in lines


async def test_slack_edit_of_a_deleted_alert_is_a_new_message(sl: tuple[Rig, FakeSlack]) -> None:
    rig, slack = sl
    await rig.alert(make(203, time.time() - 60))
    alert = (await until(lambda: slack.messages_for(CHANNEL)))[0]
    slack.messages.remove(next(m for m in slack.messages if m["ts"] == alert["ts"]))
    await rig.press(203, alert["ts"])
    note = (await until(lambda: slack.messages_for(CHANNEL)))[0]
    assert note["text"].startswith("✅ Called back by Olena")
    assert note["thread_ts"] is None
    assert await rig.d.flush(5)
    assert [r[0] for r in await rig.rows("edit")] == ["sent"]
