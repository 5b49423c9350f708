"""Issue 15 item 10 as a user meets it (the CLI, the fake Telegram): alerts survive an
operator's mistake, and `resend --failed` gives what did fail another try."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from tests.conftest import GROUP, TG_TOKEN, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, db_rows, mentions, texts_for, until
from tests.service import Service, run_cli

YESTERDAY = (date.today() - timedelta(days=1)).isoformat()  # any time zone: today is after
WRONG_TOKEN = TG_TOKEN[:-4] + "zzzz"
CALLS = [1, 2, 3]


async def post_missed(service: Service, ids: list[int]) -> None:
    batch = [make_call(i, "NOANSWER", caller=caller(i)) for i in ids]
    status, body = await service.post(service.webhook_url, json=batch)
    assert (status, body) == (200, {"accepted": len(ids), "duplicates": 0})


def states(db: str) -> dict[int, tuple[str, str | None]]:
    rows = db_rows(db, "SELECT call_id, state, last_error FROM outbox")
    return {call_id: (state, error) for call_id, state, error in rows}


async def test_a_wrong_token_keeps_the_alerts_and_a_restart_with_the_right_one_delivers_them(
    services, telegram: FakeTelegram
) -> None:
    env = telegram_env(telegram) | {"TELEGRAM_BOT_TOKEN": WRONG_TOKEN}
    first = await services(**env)
    db = first.env["DATABASE_PATH"]
    await post_missed(first, CALLS)
    # each alert was tried (one probe of the paused chat) and refused, and still waits
    await until(lambda: any(e for _, e in states(db).values()), 15, "a refused send")
    assert {s for s, _ in states(db).values()} == {"pending"}
    status, body = await first.health()
    assert (status, body) == (200, {"status": "degraded"})
    assert await first.stop() == 0
    assert "PAUSED" in first.stderr() and "TELEGRAM_BOT_TOKEN" in first.stderr()
    assert telegram.messages_for(GROUP) == []

    again = await services(**(env | {"TELEGRAM_BOT_TOKEN": TG_TOKEN}))
    await until(
        lambda: all(mentions(texts_for(telegram, GROUP), CALLS).values()), 30, "every alert"
    )
    await until(lambda: {s for s, _ in states(db).values()} == {"sent"}, 10, "all marked sent")
    assert await again.stop() == 0
    assert mentions(texts_for(telegram, GROUP), CALLS) == {1: 1, 2: 1, 3: 1}


async def test_resend_failed_sends_a_failed_alert_at_the_next_start(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    telegram.fail_next(1, 400, "Bad Request: can't parse entities")  # about the message
    first = await services(**telegram_env(telegram))
    db = first.env["DATABASE_PATH"]
    await post_missed(first, [7])
    await until(lambda: states(db).get(7, ("",))[0] == "failed", 15, "the alert failed")
    assert await first.stop() == 0

    code, out, err = await run_cli(first.env, tmp_path, "resend", "--failed", "--since", YESTERDAY)
    assert code == 0, out + err
    assert "1 failed message(s)" in out
    assert states(db)[7] == ("pending", None)
    code, out, _ = await run_cli(first.env, tmp_path, "resend", "--failed")
    assert "0 failed message(s)" in out  # nothing failed any more: idempotent

    again = await services(**telegram_env(telegram))
    await until(lambda: states(db)[7][0] == "sent", 20, "sent after the restart")
    assert await again.stop() == 0
    assert mentions(texts_for(telegram, GROUP), [7]) == {7: 1}
