"""Issue 10 item 10, through the CLI and the fake Telegram: in a group (privacy mode off, so
the bot sees every command) only our own commands get an answer; in a private chat an
unknown command gets the help.

PTB handles a chat's updates one after another, and a handler returns only once its answer
was sent, so the answer to a later command is the signal that the earlier ones are done:
nothing needs a fixed sleep to show that they got no answer.
"""

from __future__ import annotations

from tests.conftest import GROUP, telegram_env
from tests.fakes.telegram import FakeTelegram

PRIVATE = 42  # a configured private chat
STRANGER_GROUP = -1009999999999  # a group that is not in TELEGRAM_CHAT_IDS


async def test_group_answers_only_commands_addressed_to_us(
    services, telegram: FakeTelegram
) -> None:
    me = telegram.bot_username
    service = await services(**telegram_env(telegram, chats=f"{GROUP},{PRIVATE}"), LANGUAGE="en")

    # our group: other bots' commands and unknown commands go unanswered
    for text in ("/stats@other_bot today", "/ban@group_help_bot", "/ban", "/start@some_other_bot"):
        telegram.push_command(int(GROUP), text, chat_type="supergroup")
    update = telegram.push_command(int(GROUP), f"/help@{me}", chat_type="supergroup")
    answer = await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=20)
    assert "/stats" in answer["plain_text"]
    update = telegram.push_command(int(GROUP), "/stats today", chat_type="supergroup")
    stats = await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15)
    assert [m["plain_text"] for m in telegram.messages_for(GROUP)] == [
        answer["plain_text"],
        stats["plain_text"],
    ]
    assert "Stats" in stats["plain_text"] or "no calls" in stats["plain_text"]

    # a stranger's group: only a command to us is refused; the rest is not ours to answer
    for text in ("/start@some_other_bot", "/ban", f"/ban@{me}"):
        telegram.push_command(STRANGER_GROUP, text, chat_type="supergroup")
    update = telegram.push_command(STRANGER_GROUP, f"/stats@{me}", chat_type="supergroup")
    refusal = await telegram.wait_for_reply(STRANGER_GROUP, after_update_id=update, timeout=15)
    assert len(telegram.messages_for(STRANGER_GROUP)) == 1
    assert "only answers in the sales team's chats" in refusal["plain_text"]

    # a private chat with us: every command is ours; an unknown one gets the help
    update = telegram.push_command(PRIVATE, "/ban", chat_type="private")
    help_text = await telegram.wait_for_reply(PRIVATE, after_update_id=update, timeout=15)
    assert help_text["plain_text"] == answer["plain_text"]
    assert "Unknown command" not in help_text["plain_text"]
    assert await service.stop() == 0
