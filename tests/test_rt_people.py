"""Routing (issue 13) to people, through the CLI and the fakes: a manager's personal copy
reaches her private chat with the bot (Telegram), and a Slack route's alert mentions the
manager whose line missed the call (<@U…>)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import GROUP, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.reliability import settled
from tests.test_slack_e2e import CHANNEL, slack_env

OLENA_CHAT = 555000  # her Telegram user id: her private chat with the bot
SUPERVISE = "C0SUPERVISE"

PEOPLE = f"""\
[[manager]]
name = "Olena"
phones = ["0731375686"]
telegram = {OLENA_CHAT}
slack = "U0OLENA01"
personal = true

[[route]]
match = {{ status = "BUSY" }}
slack = ["{SUPERVISE}"]
continue = true
"""


async def test_personal_copy_and_a_slack_route_with_a_mention(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    async with FakeSlack(channels=[CHANNEL, SUPERVISE]) as slack:
        (tmp_path / "ria-calls-bot.toml").write_text(PEOPLE)
        service = await services(**telegram_env(telegram), **slack_env(slack))
        calls = [
            make_call(1, "BUSY", caller="0951111111"),  # Olena's line
            make_call(2, caller="0952222222", destination_phone="0990000000"),  # nobody's
        ]
        assert (await service.post(service.webhook_url, json=calls))[0] == 200
        mine = await telegram.wait_for_messages(1, chat_id=OLENA_CHAT, timeout=15)
        supervisor = await slack.wait_for_messages(1, channel=SUPERVISE, timeout=15)
        await telegram.wait_for_messages(1, chat_id=GROUP, timeout=15)
        await settled(tmp_path / "calls.db", telegram, slack)

        # her copy: only her own missed call, in her private chat
        assert len(mine) == 1 and "1111111" in mine[0]["plain_text"].replace(" ", "")
        # the Slack route (status BUSY, continue): her call only, mentioning her
        assert len(supervisor) == 1
        assert "<@U0OLENA01>" in json.dumps(supervisor[0]["blocks"]), supervisor[0]
        # a matched route (even with continue = true) replaces the defaults: the group and
        # the channel get only the call no route took
        for messages in (telegram.messages_for(GROUP), slack.messages_for(CHANNEL)):
            texts = [str(m.get("plain_text") or m.get("text")).replace(" ", "") for m in messages]
            assert len(texts) == 1 and "2222222" in texts[0], texts
        assert await service.stop() == 0
