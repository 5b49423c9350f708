"""SlackChannel against the fake Slack: Block Kit, references, errors, uploads, connecting,
and the dispatcher keeping Slack's troubles away from Telegram."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.delivery import render
from bot.delivery.channels.base import DeliveryError, acquire
from bot.delivery.channels.slack import (
    SECTION_LIMIT,
    SlackChannel,
    build_client,
    fallback_text,
    section_blocks,
)
from bot.delivery.channels.telegram import TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from handlers.ria.records import parse_record
from storage.calls import ingest
from storage.db import Store
from storage.outbox import Target
from tests.conftest import TG_TOKEN
from tests.fakes.ria import SAMPLE
from tests.fakes.slack import DEFAULT_APP_TOKEN, DEFAULT_BOT_TOKEN, FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.test_fakes import png

KYIV = ZoneInfo("Europe/Kyiv")
CHANNEL = "C0SALES001"
MISSED = [r for r in SAMPLE if r["status"] != "ANSWER"]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels=[CHANNEL]) as fake:
        yield fake


def channel_for(
    fake: FakeSlack, token: str = DEFAULT_BOT_TOKEN, timeout: float = 5, **kwargs: str
) -> SlackChannel:
    return SlackChannel(build_client(token, fake.api_url, timeout=timeout), **kwargs)


# --- messages ----------------------------------------------------------------------------


def test_section_blocks_split_between_lines_within_the_limit() -> None:
    lines = [f"line {i} " + "x" * 90 for i in range(100)]  # ~10,000 characters
    blocks = section_blocks("\n".join(lines))
    assert len(blocks) > 3
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in blocks)
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks)
    assert "\n".join(b["text"]["text"] for b in blocks) == "\n".join(lines)
    # one line longer than a block is cut, nothing is lost
    huge = section_blocks("y" * (SECTION_LIMIT * 2 + 5))
    assert [len(b["text"]["text"]) for b in huge] == [SECTION_LIMIT, SECTION_LIMIT, 5]


def test_fallback_text_drops_markup_keeps_escapes() -> None:
    text = "🔴 *Missed call* · busy\n📞 <tel:+380951174074|+380 95 117 4074>\n🚗 A &amp; B `x`"
    assert fallback_text(text) == "🔴 Missed call · busy\n📞 +380 95 117 4074\n🚗 A &amp; B x"


async def test_alert_goes_out_as_a_section_block_with_a_plain_fallback(slack: FakeSlack) -> None:
    call = parse_record(MISSED[0], KYIV)
    text = render.alert(call, "mrkdwn", "en", KYIV)
    ref = await channel_for(slack).notify(CHANNEL, text)
    [message] = slack.messages_for(CHANNEL)
    assert ref == {"channel": CHANNEL, "ts": message["ts"]}
    assert message["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    assert "<tel:+380951174074|+380 95 117 4074>" in message["mrkdwn"]
    assert "+380 95 117 4074" in message["text"] and "<tel:" not in message["text"]
    assert "*" not in message["text"]


async def test_coalesced_alerts_fit_one_section_each(slack: FakeSlack) -> None:
    calls = [
        parse_record(dict(MISSED[0], call_id=i + 1, caller_phone=f"067{i:07d}"), KYIV)
        for i in range(200)
    ]
    parts = render.coalesced(calls, "mrkdwn", "uk", KYIV, SlackChannel.text_limit)
    assert len(parts) > 1
    channel = channel_for(slack)
    slack.enforce_limits = False
    for part in parts:
        await channel.notify(CHANNEL, part)
    assert all(len(m["blocks"]) == 1 for m in slack.messages)


# --- errors --------------------------------------------------------------------------------


async def send_error(channel: SlackChannel, target: str = CHANNEL) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        await channel.notify(target, "hello")
    return info.value


async def test_permanent_errors(slack: FakeSlack) -> None:
    slack.add_channel("C0OUTSIDE1", is_member=False)
    slack.add_channel("C0ARCHIVE1", is_archived=True)
    channel = channel_for(slack)
    for target, code in [
        ("C0UNKNOWN1", "channel_not_found"),
        ("C0OUTSIDE1", "not_in_channel"),
        ("C0ARCHIVE1", "is_archived"),
    ]:
        err = await send_error(channel, target)
        assert err.permanent and err.retry_after is None
        assert code in str(err)
    err = await send_error(channel_for(slack, token="xoxb-1-2-revoked"))
    assert err.permanent and "invalid_auth" in str(err) and "SLACK_BOT_TOKEN" in str(err)
    slack.fail_next(1, status=200, error="account_inactive")
    assert (await send_error(channel)).permanent


async def test_429_waits_exactly_retry_after(slack: FakeSlack) -> None:
    slack.fail_next(1, status=429, retry_after=7)
    err = await send_error(channel_for(slack))
    assert err.retry_after == 7 and not err.permanent


async def test_transient_errors(slack: FakeSlack) -> None:
    channel = channel_for(slack, timeout=1)
    slack.fail_next(1, status=200, error="internal_error")
    err = await send_error(channel)
    assert not err.permanent and err.retry_after is None and "internal_error" in str(err)
    slack.fail_next(1, status=503)
    err = await send_error(channel)
    assert not err.permanent and "503" in str(err)
    slack.mode = "hang"
    started = time.monotonic()
    err = await send_error(channel)
    assert not err.permanent and time.monotonic() - started < 3
    slack.mode = "ok"
    await slack.stop()
    err = await send_error(channel)  # connection refused
    assert not err.permanent


async def test_send_now_waits_out_a_429(slack: FakeSlack) -> None:
    slack.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()
    ref = await channel_for(slack).send_now(CHANNEL, "reply", thread_ts="123.456")
    assert time.monotonic() - started >= 1
    [message] = slack.messages_for(CHANNEL)
    assert ref["ts"] == message["ts"] and message["thread_ts"] == "123.456"


# --- pictures ------------------------------------------------------------------------------


async def test_notify_image_uploads_then_posts_the_text(slack: FakeSlack) -> None:
    chart = png(8, 6)
    ref = await channel_for(slack).notify_image(CHANNEL, "*Summary* for today", chart, "day.png")
    upload, text = slack.messages_for(CHANNEL)
    assert upload["method"] == "files.completeUploadExternal"
    [file_id] = upload["files"]
    assert slack.files[file_id]["data"] == chart and slack.files[file_id]["name"] == "day.png"
    assert text["method"] == "chat.postMessage" and text["mrkdwn"] == "*Summary* for today"
    assert ref == {"channel": CHANNEL, "ts": text["ts"]}
    assert text["t"] - upload["t"] >= 0.9  # the channel's 1/s holds for both


async def test_notify_image_retry_does_not_upload_twice(slack: FakeSlack) -> None:
    channel = channel_for(slack)
    chart = png(8, 6)

    async def attempt() -> dict:
        await acquire(channel.limits(CHANNEL))  # as the dispatcher does before each send
        return await channel.notify_image(CHANNEL, "Summary", chart, "day.png")

    slack.fail_next(1, status=200, error="internal_error")  # files.getUploadURLExternal
    with pytest.raises(DeliveryError):
        await attempt()
    assert slack.files == {}
    # the upload works and the text fails: the retry posts only the text
    original = channel._post

    async def failing_post(*args: object, **kwargs: object) -> dict:
        raise DeliveryError("Slack: internal_error")

    channel._post = failing_post  # type: ignore[method-assign]
    with pytest.raises(DeliveryError):
        await attempt()
    channel._post = original  # type: ignore[method-assign]
    ref = await attempt()
    kinds = [m["method"] for m in slack.messages_for(CHANNEL)]
    assert kinds == ["files.completeUploadExternal", "chat.postMessage"]
    assert ref["ts"] == slack.messages_for(CHANNEL)[1]["ts"]
    assert slack.rate_limited == 0


# --- connecting ----------------------------------------------------------------------------


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_connects_in_the_background_when_slack_comes_back(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    await slack.stop()
    channel = channel_for(slack, signing_secret="s")
    channel.start()
    try:
        await wait_for(lambda: channel.last_error is not None)
        assert channel.status()["connected"] is False
        assert "cannot reach Slack" in (channel.status()["last_error"] or "")
        await slack.start()
        await wait_for(lambda: channel.connected)
        assert channel.status() == {
            "connected": True,
            "mode": "HTTP mode at /webhooks/slack",
            "last_error": None,
        }
    finally:
        await channel.stop()


async def test_a_refused_token_is_one_clear_error(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    channel = channel_for(slack, token="xoxb-1-2-wrong")
    with caplog.at_level(logging.ERROR, logger="bot.delivery.channels.slack"):
        await channel._connect()
    assert not channel.connected
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in caplog.text


async def test_socket_mode_connects_and_reconnects(slack: FakeSlack) -> None:
    channel = channel_for(slack, app_token=DEFAULT_APP_TOKEN)
    channel.start()
    try:
        await slack.wait_socket_connected()
        await wait_for(lambda: channel.connected)
        assert channel.status()["mode"] == "Socket Mode"
        # Slack asks clients to reconnect every few hours; the SDK does it by itself
        await slack.disconnect_sockets()
        await wait_for(lambda: slack.socket_connections >= 2)
        await slack.wait_socket_connected()
    finally:
        await channel.stop()
    await wait_for(lambda: not slack.socket_connected)


async def test_socket_mode_with_a_wrong_app_token_keeps_alerts(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    channel = channel_for(slack, app_token="xapp-1-A1-2-wrong")
    with caplog.at_level(logging.ERROR, logger="bot.delivery.channels.slack"):
        await channel._connect()
    assert "SLACK_APP_TOKEN was refused by Slack (invalid_auth)" in caplog.text
    assert slack.socket_connections == 0
    await channel.notify(CHANNEL, "alerts still go out")
    assert len(slack.messages) == 1
    await channel.stop()


# --- the dispatcher: one worker per target -----------------------------------------------


@pytest.mark.parametrize("down", ["slack", "telegram"])
async def test_one_channel_down_never_delays_the_other(
    slack: FakeSlack, tmp_path: Path, down: str
) -> None:
    async with FakeTelegram(token=TG_TOKEN) as telegram:
        app = build_application(TG_TOKEN, telegram.url, webhook_mode=True)
        await app.initialize()
        store = Store(str(tmp_path / "d.db"))
        await store.open()
        channels = {"telegram": TelegramChannel(app), "slack": channel_for(slack, timeout=3)}
        dispatcher = Dispatcher(store, channels, lang="en", tz=KYIV)  # type: ignore[arg-type]
        group = "-1001234567890"
        targets = [Target("telegram", group), Target("slack", CHANNEL)]
        fakes = {"slack": slack, "telegram": telegram}
        sent = {
            "slack": lambda: [m["mrkdwn"] for m in slack.messages],
            "telegram": lambda: [m["text"] for m in telegram.messages],
        }
        up = "telegram" if down == "slack" else "slack"
        numbers = sorted(render.format_phone(r["caller_phone"])[0] for r in MISSED)

        def delivered(side: str) -> list[str]:
            return sorted(n for text in sent[side]() for n in numbers if n in text)

        try:
            fakes[down].mode = "hang"
            result = await store.run(
                ingest,
                [parse_record(r, KYIV) for r in MISSED],
                source="webhook",
                received_at=time.time(),
                missed_statuses=["NOANSWER", "CANCEL", "BUSY"],
                targets=targets,
                alert_max_age_s=None,
            )
            dispatcher.submit(result.alerts)
            started = time.monotonic()
            await wait_for(lambda: delivered(up) == numbers, timeout=10)
            # three alerts, paced (1/s in Slack), while the other platform does not answer
            assert time.monotonic() - started < 3.5
            assert delivered(down) == []
            fakes[down].mode = "ok"
            await wait_for(lambda: delivered(down) == numbers, timeout=30)
        finally:
            await dispatcher.stop()
            await app.shutdown()
            await store.close()
