"""Slack commands in-process: HTTP mode (signed requests to /webhooks/slack) and Socket Mode,
through the real slack-bolt against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from bot.delivery.channels.slack import SlackChannel, build_client, message
from handlers.chat.commands import HelpReply, Reply
from handlers.chat.slack import command_word, register
from tests.fakes.slack import (
    BOT_USER_ID,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    FakeSlack,
)

CHANNEL = "C0SALES001"
OTHER = "C0RANDOM01"
SECRET = DEFAULT_SIGNING_SECRET
REFUSAL = "This bot only answers in the sales team's chats."


@dataclass
class Bot:
    """A SlackChannel with the commands registered; `asked` records what the core was asked."""

    channel: SlackChannel
    url: str = ""
    asked: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0


async def make_bot(fake: FakeSlack, **kwargs: str) -> Bot:
    channel = SlackChannel(build_client(DEFAULT_BOT_TOKEN, fake.api_url), **kwargs)
    bot = Bot(channel)

    async def answer(command: str, argument: str, scope: object = None) -> Reply:
        bot.asked.append((command, argument))
        await asyncio.sleep(bot.delay)
        return HelpReply()

    register(
        channel.app,
        channel_ids=[CHANNEL],
        answer=answer,
        render=lambda reply: f"*{type(reply).__name__}* <tel:+380951174074|+380 95 117 4074>",
        message=message,
        refusal=REFUSAL,
        send=channel.send_now,
    )
    return bot


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels=[CHANNEL, OTHER]) as fake:
        yield fake


@pytest.fixture
async def http_bot(slack: FakeSlack) -> AsyncIterator[Bot]:
    """HTTP mode: the channel's route on a real aiohttp server, as bot/app.py mounts it."""
    bot = await make_bot(slack, signing_secret=SECRET)
    app = web.Application()
    app.add_routes(bot.channel.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    bot.url = f"http://127.0.0.1:{port}/webhooks/slack"
    yield bot
    await runner.cleanup()
    await bot.channel.stop()


def test_command_word() -> None:
    assert command_word("/stats") == "stats"
    assert command_word("/ria-missed") == "missed"
    assert command_word("/HELP") == "help"


async def test_signed_slash_command_is_acked_at_once_and_answered_in_channel(
    slack: FakeSlack, http_bot: Bot
) -> None:
    http_bot.delay = 3.5  # a slow answer: the ack must not wait for it
    started = time.monotonic()
    status, body, response_url = await slack.post_slash_command(
        http_bot.url, SECRET, CHANNEL, "/stats", "today"
    )
    assert status == 200 and body == ""
    assert time.monotonic() - started < 1.5  # Slack gives up after 3 s
    answer = await slack.wait_for_response(response_url, timeout=10)
    assert http_bot.asked == [("stats", "today")]
    assert answer["response_type"] == "in_channel"
    assert answer["mrkdwn"] == "*HelpReply* <tel:+380951174074|+380 95 117 4074>"
    assert answer["text"] == "HelpReply +380 95 117 4074"  # the plain fallback


@pytest.mark.parametrize("forgery", ["bad_signature", "stale", "no_timestamp"])
async def test_badly_signed_requests_get_401_and_nothing_runs(
    slack: FakeSlack, http_bot: Bot, forgery: str
) -> None:
    if forgery == "no_timestamp":
        async with aiohttp.ClientSession() as session:
            async with session.post(http_bot.url, data=b"command=%2Fstats") as resp:
                status = resp.status
    else:
        kwargs = (
            {"bad_signature": True}
            if forgery == "bad_signature"
            else {"timestamp": int(time.time()) - 6 * 60}  # Slack's window is 5 minutes
        )
        status, _, _ = await slack.post_slash_command(
            http_bot.url, SECRET, CHANNEL, "/stats", "today", **kwargs
        )
    assert status == 401
    # the signal that the forged request is done with: a good one after it is answered
    status, _, response_url = await slack.post_slash_command(
        http_bot.url, SECRET, CHANNEL, "/missed", "week"
    )
    assert status == 200
    await slack.wait_for_response(response_url, timeout=10)
    assert http_bot.asked == [("missed", "week")]
    assert len(slack.responses) == 1 and slack.messages == []


async def test_other_channels_get_a_refusal_only_the_asker_sees(
    slack: FakeSlack, http_bot: Bot
) -> None:
    status, _, response_url = await slack.post_slash_command(
        http_bot.url, SECRET, OTHER, "/stats", "today"
    )
    assert status == 200
    answer = await slack.wait_for_response(response_url)
    assert answer["text"] == REFUSAL and answer["response_type"] == "ephemeral"
    assert http_bot.asked == []


async def test_mention_over_http_is_answered_in_its_thread(slack: FakeSlack, http_bot: Bot) -> None:
    event = slack.mention(CHANNEL, f"<@{BOT_USER_ID}> missed week")
    status, _ = await slack.post_event(http_bot.url, SECRET, event)
    assert status == 200
    [reply] = await slack.wait_for_messages(1, channel=CHANNEL)
    assert http_bot.asked == [("missed", "week")]
    assert reply["thread_ts"] == event["ts"]
    assert reply["mrkdwn"].startswith("*HelpReply*")
    # elsewhere: an ephemeral refusal, no data
    status, _ = await slack.post_event(http_bot.url, SECRET, slack.mention(OTHER, "<@U1> stats"))
    for _ in range(100):
        if slack.ephemeral:
            break
        await asyncio.sleep(0.05)
    assert [(e["channel"], e["text"]) for e in slack.ephemeral] == [(OTHER, REFUSAL)]
    assert len(http_bot.asked) == 1


async def test_mention_that_is_not_a_command_gets_nothing(slack: FakeSlack, http_bot: Bot) -> None:
    """People mention the bot in conversation: only a command word gets an answer, in the
    team's channel or elsewhere (no refusal either)."""
    for channel, text in [
        (CHANNEL, f"<@{BOT_USER_ID}> thanks, that helped"),
        (OTHER, f"<@{BOT_USER_ID}> who set this up?"),
        (CHANNEL, f"<@{BOT_USER_ID}> /ban everyone"),
    ]:
        status, _ = await slack.post_event(http_bot.url, SECRET, slack.mention(channel, text))
        assert status == 200
    # the signal that the mentions before it were handled: a command's answer
    event = slack.mention(CHANNEL, f"<@{BOT_USER_ID}> stats")
    status, _ = await slack.post_event(http_bot.url, SECRET, event)
    [reply] = await slack.wait_for_messages(1, channel=CHANNEL)
    assert reply["thread_ts"] == event["ts"]
    assert http_bot.asked == [("stats", "")]
    assert slack.ephemeral == [] and slack.messages_for(OTHER) == []


async def test_events_url_verification(slack: FakeSlack, http_bot: Bot) -> None:
    body = json.dumps({"token": "x", "challenge": "c-123", "type": "url_verification"})
    status, text = await slack.post_signed(http_bot.url, SECRET, body, json_body=True)
    assert status == 200 and "c-123" in text


async def test_socket_mode_commands_and_mentions(slack: FakeSlack) -> None:
    bot = await make_bot(slack, app_token=DEFAULT_APP_TOKEN)
    bot.channel.start()
    try:
        await slack.wait_socket_connected()
        envelope, response_url = await slack.push_slash_command(CHANNEL, "/stats", "yesterday")
        await slack.wait_for_ack(envelope, timeout=3)  # acked within Slack's 3 s
        answer = await slack.wait_for_response(response_url)
        assert answer["response_type"] == "in_channel"
        assert bot.asked == [("stats", "yesterday")]

        envelope, ts = await slack.push_mention(CHANNEL, f"<@{BOT_USER_ID}> help")
        await slack.wait_for_ack(envelope, timeout=3)
        [reply] = await slack.wait_for_messages(1, channel=CHANNEL)
        assert reply["thread_ts"] == ts and bot.asked[-1] == ("help", "")

        envelope, response_url = await slack.push_slash_command(OTHER, "/missed")
        answer = await slack.wait_for_response(response_url)
        assert answer["text"] == REFUSAL and answer["response_type"] == "ephemeral"
    finally:
        await bot.channel.stop()
