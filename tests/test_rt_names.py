"""Routing (issue 13): managers by name in /stats, /missed and the callback figures, through
the CLI and the fake Telegram (a manager with two lines is one line of figures)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import settled
from tests.service import run_cli
from tests.test_cb_store import KYIV

OLENA_1 = "0731375686"  # make_call's destination_phone
OLENA_2 = "0731375687"
PETRO = "0671112233"

MANAGERS = f"""\
[[manager]]
name = "Olena"
phones = ["{OLENA_1}", "{OLENA_2}"]

[[manager]]
name = "Petro"
phones = ["{PETRO}"]
"""


async def reply(telegram: FakeTelegram, command: str) -> str:
    update = telegram.push_command(int(GROUP), command)
    message = await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15)
    return str(message["plain_text"])


async def test_stats_missed_and_callback_figures_name_the_managers(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    (tmp_path / "ria-calls-bot.toml").write_text(MANAGERS)
    service = await services(LANGUAGE="en", **telegram_env(telegram))
    # a minute apart (a later ANSWER resolves only calls before it), and not before
    # midnight (/stats today)
    now = datetime.now(KYIV)
    missed_at = max(now - timedelta(minutes=2), now.replace(hour=0, minute=0, second=1))
    calls = [
        make_call(1, caller="0951111111", when=missed_at),  # Olena's first line
        make_call(2, caller="0952222222", destination_phone=OLENA_2, when=missed_at),
        make_call(3, caller="0953333333", destination_phone=PETRO, when=missed_at),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    await telegram.wait_for_messages(3, chat_id=GROUP, timeout=15)
    # the first caller rings again and Olena answers on her second line: resolved
    answered = make_call(
        4, "ANSWER", caller="0951111111", destination_phone=OLENA_2, when=max(now, missed_at)
    )
    assert (await service.post(service.webhook_url, json=[answered]))[0] == 200
    # the alert's "got through" edit first: else it could pass for the command's reply
    await settled(service.env["DATABASE_PATH"], telegram)

    text = await reply(telegram, "/stats today")
    # one line for Olena's two lines (2 missed callers, 1 called back), one for Petro
    assert "Olena: called back 1 of 2" in text, text
    assert "Petro: called back 0 of 1" in text, text
    assert text.count("Olena: called back") == 1, text  # one callback line for her
    assert "Olena: 3 · ✅ 1 · 🔴 2" in text, text  # /stats' managers: her two lines as one
    for digits in ("1375686", "1375687", "1112233"):  # the managers' lines, by name only
        assert digits not in text.replace(" ", ""), text

    text = await reply(telegram, "/missed all")
    assert "answered by Olena" in text, text
    assert "1375687" not in text.replace(" ", ""), text  # her line's number is not shown
    assert await service.stop() == 0

    # the command line reads the same file: the same names as the chat
    code, out, err = await run_cli(service.env, tmp_path, "stats", "today")
    assert code == 0, err
    assert "Olena: 3 · ✅ 1 · 🔴 2" in out, out
    assert "Olena: called back 1 of 2" in out, out
    code, out, err = await run_cli(service.env, tmp_path, "missed", "all")
    assert code == 0, err
    assert "answered by Olena" in out, out
    for digits in ("1375686", "1375687", "1112233"):
        assert digits not in out.replace(" ", ""), out


async def test_without_managers_the_figures_show_numbers(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    service = await services(LANGUAGE="en", **telegram_env(telegram))
    now = datetime.now(KYIV)
    calls = [make_call(1, caller="0951111111", when=now - timedelta(minutes=1))]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    answered = make_call(2, "ANSWER", caller="0951111111", when=now)
    assert (await service.post(service.webhook_url, json=[answered]))[0] == 200
    await settled(service.env["DATABASE_PATH"], telegram)  # the alert and its edit first
    text = await reply(telegram, "/missed all")
    assert "answered by" in text and "1375686" in text.replace(" ", ""), text
    assert "Olena" not in text
    assert await service.stop() == 0
