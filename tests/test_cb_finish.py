"""Issue 12, the last pieces, through the CLI and the fakes: a missed call resolved by a
later answered call that the POLL or a BACKFILL brings (the webhook case is in
test_cb_chat_telegram.py), an edit refused as too old that becomes a reply, and the
time-to-callback histogram on /metrics for a press and for an answered call."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, e164, settled, until
from tests.service import run_cli
from tests.test_cb_chat_telegram import (
    QUIET,
    alert_for,
    buttons,
    edits_of,
    post,
    press,
    resolutions,
    sent,
)
from tests.test_metrics import until_scraped, value


def ria_env(ria: FakeRia, **extra: str) -> dict[str, str]:
    return {"RIA_API_KEY": RIA_KEY, "RIA_USER_ID": RIA_USER, "RIA_API_URL": ria.url, **extra}


async def test_an_answered_call_from_the_poll_resolves_the_alert(
    services, telegram: FakeTelegram
) -> None:
    missed_at = datetime.now(KYIV) - timedelta(minutes=6)
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(
            **telegram_env(telegram),
            **ria_env(ria, RIA_POLL_INTERVAL_MINUTES="0.02", RIA_POLL_SPREAD="off"),
            **QUIET,
        )
        db = service.env["DATABASE_PATH"]
        await post(service, make_call(11, "NOANSWER", when=missed_at, caller=caller(11)))
        mid = (await alert_for(telegram, 11))["message_id"]
        # the buyer calls again and gets through; no webhook comes, only the poll sees it
        answered_at = (datetime.now(KYIV) - timedelta(minutes=1)).replace(tzinfo=None)
        ria.add_calls(make_call(12, "ANSWER", when=answered_at, caller=caller(11)))
        await until(lambda: edits_of(telegram, mid), 30, "the alert edited after a poll")
        edited = edits_of(telegram, mid)[-1]
        assert "✅" in edited["plain_text"] and "cb:11" not in buttons(edited)
        assert [r[:2] for r in resolutions(db)] == [(11, "answered")]
        assert await service.stop() == 0


async def test_an_answered_call_from_a_backfill_resolves_the_alert(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    missed_at = datetime.now(KYIV) - timedelta(minutes=8)
    service = await services(**telegram_env(telegram), **QUIET)
    db = service.env["DATABASE_PATH"]
    await post(service, make_call(21, "NOANSWER", when=missed_at, caller=caller(21)))
    mid = (await alert_for(telegram, 21))["message_id"]
    await settled(db, telegram)
    assert await service.stop() == 0

    answered_at = (datetime.now(KYIV) - timedelta(minutes=2)).replace(tzinfo=None)
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        ria.add_calls(make_call(22, "ANSWER", when=answered_at, caller=caller(21)))
        today = datetime.now(KYIV).date().isoformat()
        env = {**service.env, **ria_env(ria)}
        code, out, err = await run_cli(env, tmp_path, "backfill", "--from", today, "--to", today)
    assert code == 0, out + err
    assert [r[:2] for r in resolutions(db)] == [(21, "answered")]
    # the backfill delivers what it queued, the edit of the alert too
    await until(lambda: edits_of(telegram, mid), 30, "the alert edited by the backfill")
    edited = edits_of(telegram, mid)[-1]
    assert "✅" in edited["plain_text"] and "cb:21" not in buttons(edited)


async def test_an_edit_refused_as_too_old_becomes_a_reply(services, telegram: FakeTelegram) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    db = service.env["DATABASE_PATH"]
    await post(service, make_call(31, "NOANSWER", caller=caller(31)))
    mid = (await alert_for(telegram, 31))["message_id"]
    telegram.make_uneditable(GROUP, mid)  # older than Telegram lets a bot edit

    assert (await press(telegram, GROUP, mid, 31)).startswith("✅")

    def reply() -> list[dict]:
        return [
            m
            for m in sent(telegram, "sendMessage")
            if m["message_id"] != mid and "✅" in (m["plain_text"] or "")
        ]

    await until(reply, 30, "a reply saying what the edit would have")
    [note] = reply()
    reply_to = note["params"]["reply_parameters"]  # a reply to the alert itself
    reply_to = json.loads(reply_to) if isinstance(reply_to, str) else reply_to
    assert reply_to["message_id"] == mid
    assert e164(31) in note["plain_text"]
    await settled(db, telegram)
    assert edits_of(telegram, mid) == []  # refused, so nothing was edited
    rows = db_state(db)
    assert rows and all(state == "sent" for state in rows), rows  # not a failure


def db_state(db: str) -> list[str]:
    from tests.reliability import db_rows

    return [r[0] for r in db_rows(db, "SELECT state FROM outbox WHERE kind = 'edit'")]


async def test_time_to_callback_on_metrics_for_a_press_and_an_answer(
    services, telegram: FakeTelegram
) -> None:
    service = await services(**telegram_env(telegram), **QUIET)
    five_ago = datetime.now(KYIV) - timedelta(minutes=5)
    await post(service, make_call(41, "NOANSWER", when=five_ago, caller=caller(41)))
    mid = (await alert_for(telegram, 41))["message_id"]
    assert (await press(telegram, GROUP, mid, 41)).startswith("✅")

    # another buyer waited 20 min (two missed calls), then got through 10 min ago
    await post(
        service,
        make_call(42, "NOANSWER", when=five_ago - timedelta(minutes=25), caller=caller(42)),
        make_call(43, "BUSY", when=five_ago - timedelta(minutes=15), caller=caller(42)),
    )
    await post(
        service, make_call(44, "ANSWER", when=five_ago - timedelta(minutes=5), caller=caller(42))
    )

    name = "time_to_callback_seconds_count"
    found = await until_scraped(
        service,
        lambda f: value(f, name, how="button") == 1 and value(f, name, how="answered") == 1,
        "one callback of each kind",
    )
    # seconds from the caller's FIRST missed call: ~5 min to the press, 20 min to the answer
    pressed = value(found, "time_to_callback_seconds_sum", how="button")
    answered = value(found, "time_to_callback_seconds_sum", how="answered")
    assert pressed is not None and 290 <= pressed <= 400, pressed
    assert answered is not None and abs(answered - 1200) <= 2, answered
    assert value(found, "time_to_callback_seconds_bucket", how="button", le="300.0") in (0, 1)
    assert value(found, "time_to_callback_seconds_bucket", how="answered", le="1800.0") == 1
    assert value(found, "time_to_callback_seconds_bucket", how="answered", le="900.0") == 0
