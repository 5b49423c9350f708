"""The fake Slack must answer like Slack does, as seen through the real slack-sdk clients."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    BOT_USER_ID,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    FakeChannel,
    FakeSlack,
    signature,
)
from tests.test_fakes import png

CHANNEL = "C0SALES001"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(channels=[CHANNEL]) as fake:
        yield fake


def client(fake: FakeSlack, token: str = DEFAULT_BOT_TOKEN, timeout: int = 5) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_url, timeout=timeout)


async def error_of(call: object) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_auth_test_and_wrong_tokens(slack: FakeSlack) -> None:
    auth = await client(slack).auth_test()
    assert auth["user_id"] == BOT_USER_ID and auth["team"]
    err = await error_of(client(slack, "xoxb-wrong").auth_test())
    # Slack reports API errors with HTTP 200 and ok:false
    assert err.response.status_code == 200 and err.response["error"] == "invalid_auth"
    err = await error_of(client(slack, DEFAULT_APP_TOKEN).auth_test())
    assert err.response["error"] == "not_allowed_token_type"


async def test_post_message_records_blocks_and_returns_ts(slack: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi* <tel:+380|+380>"}}]
    resp = await client(slack).chat_postMessage(channel=CHANNEL, text="hi", blocks=blocks)
    assert resp["channel"] == CHANNEL and resp["ts"]
    [message] = slack.messages_for(CHANNEL)
    assert message["ts"] == resp["ts"] and message["blocks"] == blocks
    assert message["text"] == "hi" and message["mrkdwn"] == "*hi* <tel:+380|+380>"


async def test_channel_errors(slack: FakeSlack) -> None:
    slack.add_channel("C0OUTSIDE1", is_member=False)
    slack.add_channel("C0ARCHIVE1", is_archived=True)
    slack.add_channel(FakeChannel("G0PRIVATE1", "secret", is_private=True, is_member=False))
    web = client(slack)
    for channel, error in [
        ("C0UNKNOWN1", "channel_not_found"),
        ("C0OUTSIDE1", "not_in_channel"),
        ("C0ARCHIVE1", "is_archived"),
        ("G0PRIVATE1", "channel_not_found"),  # a private channel is invisible from outside
    ]:
        err = await error_of(web.chat_postMessage(channel=channel, text="x"))
        assert (err.response.status_code, err.response["error"]) == (200, error)
    info = await web.conversations_info(channel="C0OUTSIDE1")
    assert info["channel"]["is_member"] is False
    assert slack.messages == []


async def test_invalid_blocks_and_no_text(slack: FakeSlack) -> None:
    web = client(slack)
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    err = await error_of(web.chat_postMessage(channel=CHANNEL, text="x", blocks=too_long))
    assert err.response["error"] == "invalid_blocks"
    assert "3001" in err.response["errors"][0]
    with pytest.warns(UserWarning, match="text"):  # slack-sdk warns too
        err = await error_of(web.chat_postMessage(channel=CHANNEL, text=""))
    assert err.response["error"] == "no_text"


async def test_one_message_a_second_per_channel_with_retry_after(slack: FakeSlack) -> None:
    slack.add_channel("C0OTHER001")
    web = client(slack)
    await web.chat_postMessage(channel=CHANNEL, text="1")
    await web.chat_postMessage(channel="C0OTHER001", text="another channel is not limited")
    err = await error_of(web.chat_postMessage(channel=CHANNEL, text="2"))
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "1"
    assert slack.rate_limited == 1
    # waiting what the answer said (not a guess of our own) is enough
    await asyncio.sleep(float(err.response.headers["Retry-After"]))
    await web.chat_postMessage(channel=CHANNEL, text="3")
    assert [m["text"] for m in slack.messages_for(CHANNEL)] == ["1", "3"]


async def test_fault_injection(slack: FakeSlack) -> None:
    web = client(slack)
    slack.fail_next(1, status=429, retry_after=7)
    err = await error_of(web.chat_postMessage(channel=CHANNEL, text="x"))
    assert err.response.status_code == 429 and err.response.headers["Retry-After"] == "7"
    slack.fail_next(1, status=200, error="internal_error")
    err = await error_of(web.chat_postMessage(channel=CHANNEL, text="x"))
    assert err.response["error"] == "internal_error"
    slack.fail_next(1, status=503)
    err = await error_of(web.chat_postMessage(channel=CHANNEL, text="x"))
    assert err.response.status_code == 503
    slack.mode = "down_500"
    err = await error_of(web.auth_test())
    assert err.response.status_code == 500
    slack.mode = "hang"
    with pytest.raises(TimeoutError):
        await client(slack, timeout=1).auth_test()
    slack.mode = "ok"
    await web.chat_postMessage(channel=CHANNEL, text="fine again")
    assert len(slack.messages) == 1


async def test_files_upload_v2_flow(slack: FakeSlack) -> None:
    picture = png(4, 3)
    resp = await client(slack).files_upload_v2(
        channel=CHANNEL, file=picture, filename="chart.png", title="chart", alt_txt="a chart"
    )
    file_id = resp["file"]["id"]
    assert slack.files[file_id]["data"] == picture
    assert slack.files[file_id]["channel"] == CHANNEL
    assert slack.files[file_id]["alt_txt"] == "a chart"
    [shared] = slack.messages_for(CHANNEL)
    assert shared["files"] == [file_id]
    methods = [r["method"] for r in slack.requests]
    assert methods == ["files.getUploadURLExternal", "files.completeUploadExternal"]


async def test_complete_upload_needs_the_bytes(slack: FakeSlack) -> None:
    web = client(slack)
    url = await web.files_getUploadURLExternal(filename="x.png", length=10)
    err = await error_of(
        web.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id=CHANNEL)
    )
    assert err.response["error"] == "file_not_found"


async def test_response_url_records_answers(slack: FakeSlack) -> None:
    url = slack.response_url()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"text": "hello", "response_type": "in_channel"}) as r:
            assert (r.status, await r.text()) == (200, "ok")
        async with session.post(url, json={}) as r:
            assert r.status == 400
    answer = await slack.wait_for_response(url)
    assert answer["text"] == "hello" and answer["response_type"] == "in_channel"


async def test_post_slash_command_is_signed_like_slack(slack: FakeSlack) -> None:
    seen: list[tuple[str, str, str]] = []

    async def app(request: aiohttp.web.Request) -> aiohttp.web.Response:
        body = await request.text()
        ts = request.headers["X-Slack-Request-Timestamp"]
        seen.append((body, ts, request.headers["X-Slack-Signature"]))
        return aiohttp.web.Response(text="")

    server = aiohttp.web.Application()
    server.router.add_post("/hook", app)
    runner = aiohttp.web.AppRunner(server)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        status, _, response_url = await slack.post_slash_command(
            f"http://127.0.0.1:{port}/hook", "s3cret", CHANNEL, "/stats", "today"
        )
    finally:
        await runner.cleanup()
    assert status == 200
    body, ts, sig = seen[0]
    assert abs(int(ts) - time.time()) < 5
    assert sig == signature("s3cret", ts, body)
    assert "command=%2Fstats" in body and "text=today" in body
    assert response_url.startswith(slack.url)


async def test_socket_mode_hello_envelopes_and_acks(slack: FakeSlack) -> None:
    opened = await client(slack).apps_connections_open(app_token=DEFAULT_APP_TOKEN)
    url = opened["url"]
    assert url.startswith("ws://127.0.0.1:")
    # the bot token cannot open Socket Mode
    err = await error_of(client(slack).apps_connections_open(app_token=DEFAULT_BOT_TOKEN))
    assert err.response["error"] == "not_allowed_token_type"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["type"] == "hello"
            await slack.wait_socket_connected()
            envelope_id, response_url = await slack.push_slash_command(CHANNEL, "/stats", "today")
            envelope = await ws.receive_json(timeout=5)
            assert envelope["envelope_id"] == envelope_id
            assert envelope["type"] == "slash_commands"
            assert envelope["payload"]["text"] == "today"
            assert envelope["payload"]["response_url"] == response_url
            await ws.send_str(json.dumps({"envelope_id": envelope_id}))
            ack = await slack.wait_for_ack(envelope_id)
            assert ack["envelope_id"] == envelope_id
            mention_id, _ = await slack.push_mention(CHANNEL, f"<@{BOT_USER_ID}> stats")
            event = await ws.receive_json(timeout=5)
            assert event["type"] == "events_api"
            assert event["payload"]["event"]["type"] == "app_mention"
            assert event["envelope_id"] == mention_id
        # a ticket works once
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)
