"""Routing (issue 13), RT-finish: the pieces wired together, through the CLI and the fakes."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.telegram import FakeTelegram
from tests.test_summary_e2e import passed_minute, steady_now, window

SHOWROOM = -100111  # a group only the route sends to (not in TELEGRAM_CHAT_IDS)

SHOWROOM_ROUTE = f"""\
[[route]]
match = {{ make = "Toyota" }}
telegram = ["{SHOWROOM}"]
"""


async def test_a_showroom_group_sees_its_own_figures_the_main_group_all(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(SHOWROOM_ROUTE)
    service = await services(**telegram_env(telegram))
    calls = [
        make_call(1, marka="Toyota", caller="0951111111"),
        make_call(2, "ANSWER", marka="Toyota", caller="0952222222"),
        make_call(3, marka="Honda", caller="0953333333"),
        make_call(4, "BUSY", marka="BMW", caller="0954444444"),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(1, chat_id=SHOWROOM, timeout=15)
    await telegram.wait_for_messages(2, chat_id=GROUP, timeout=15)

    update = telegram.push_command(SHOWROOM, "/stats today")
    text = (await telegram.wait_for_reply(SHOWROOM, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "50%" in text.replace(" %", "%"), text  # 1 answered of its 2 calls
    assert re.search(r"\b2\b", text) and not re.search(r"\b4\b", text), text
    update = telegram.push_command(SHOWROOM, "/missed")
    text = (await telegram.wait_for_reply(SHOWROOM, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "1111" in text.replace(" ", "") and "3333" not in text.replace(" ", ""), text

    update = telegram.push_command(int(GROUP), "/stats today")
    text = (await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "25%" in text.replace(" %", "%") and re.search(r"\b4\b", text), text
    update = telegram.push_command(int(GROUP), "/missed")
    text = (await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15))[
        "plain_text"
    ]
    for digits in ("1111", "3333", "4444"):
        assert digits in text.replace(" ", ""), text

    # a chat neither listed nor routed to is still refused, with no figures
    update = telegram.push_command(-100999, "/stats today")
    text = (await telegram.wait_for_reply(-100999, after_update_id=update, timeout=15))[
        "plain_text"
    ]
    assert "%" not in text, text
    assert await service.stop() == 0


async def summary_text(telegram: FakeTelegram, chat: int | str) -> str:
    """The text message of the daily summary sent to `chat` (after its chart)."""
    for _ in range(400):
        for m in telegram.messages_for(chat):
            if m["method"] == "sendMessage" and m["plain_text"].startswith("📊"):
                return str(m["plain_text"])
        await telegram.wait_for_messages(len(telegram.messages_for(chat)) + 1, chat_id=chat)
    raise AssertionError(f"no summary to {chat}")


async def test_summaries_per_chat_over_its_own_calls(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    now = await steady_now()
    w = window(now)
    (tmp_path / "ria-calls-bot.toml").write_text(SHOWROOM_ROUTE)
    env = {**telegram_env(telegram), "LANGUAGE": "en", "SUMMARY_WEEKLY": "off"}
    service = await services(**env)
    statuses = [("Toyota", "NOANSWER"), ("Toyota", "ANSWER"), ("Honda", "BUSY"), ("BMW", "ANSWER")]
    calls = [
        make_call(
            20 + i,
            status,
            when=w.start + (w.end - w.start - timedelta(seconds=5)) * (i + 1) / 5,
            caller=f"067222000{i}",
            marka=make,
        )
        for i, (make, status) in enumerate(statuses)
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    assert await service.stop() == 0

    # the summary that has just become due goes out at start, one per chat
    again = await services(**env, SUMMARY_TIME=passed_minute(now))
    showroom = await summary_text(telegram, SHOWROOM)
    main = await summary_text(telegram, GROUP)
    assert "Calls: 2 " in showroom and "✅ Answered: 1 (▲ 1) — 50%" in showroom, showroom
    assert "Calls: 4 " in main and "✅ Answered: 2 (▲ 2) — 50%" in main, main
    assert "Still not reached: 1 " in showroom and "Still not reached: 2 " in main, main
    assert await again.stop() == 0
