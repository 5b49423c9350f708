"""The fakes must answer like the real services, as seen through the real clients.

Telegram is exercised with python-telegram-bot's own Bot/Application, RIA with aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import telegram
from aiohttp import web
from telegram import error as tg_error
from telegram.ext import Application, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fakes.ria import KYIV, SAMPLE, FakeRia, make_call
from tests.fakes.telegram import FakeTelegram, parse_html

TOKEN = "123:ABC"
ROOT = Path(__file__).resolve().parent.parent


@contextlib.asynccontextmanager
async def receiver(
    path: str, handler: Callable[[web.Request], Awaitable[web.Response]]
) -> AsyncIterator[str]:
    """A local HTTP endpoint (the service's side of a webhook) for the fakes to post to;
    yields its URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def open_bot(
    url: str, token: str = TOKEN, read_timeout: float = 5.0
) -> AsyncIterator[telegram.Bot]:
    """A PTB Bot pointed at a fake; its HTTP clients are closed even if never initialised."""
    requests = [HTTPXRequest(read_timeout=read_timeout, connect_timeout=2.0) for _ in range(2)]
    bot = telegram.Bot(
        token,
        base_url=f"{url}/bot",
        base_file_url=f"{url}/file/bot",
        request=requests[0],
        get_updates_request=requests[1],
    )
    try:
        yield bot
    finally:
        for request in requests:
            await request.shutdown()


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def seconds(value: int | timedelta) -> float:
    # PTB 22 returns an int or a timedelta depending on PTB_TIMEDELTA.
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with open_bot(tg.url) as b, b:
        yield b


# --- FakeTelegram ----------------------------------------------------------------------------


async def test_get_me(bot: telegram.Bot, tg: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.is_bot and me.username == "ria_test_bot" and me.id == 123
    assert tg.requests[-1]["method"] == "getMe" and tg.requests[-1]["status"] == 200


async def test_send_message_is_recorded(bot: telegram.Bot, tg: FakeTelegram) -> None:
    markup = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Done", callback_data="done:1")]]
    )
    sent = await bot.send_message(
        42,
        "<b>Missed</b> call from +380951174074 &amp; more",
        parse_mode="HTML",
        reply_markup=markup,
    )
    assert sent.message_id == 1 and sent.chat.type == "private"
    assert sent.text == "Missed call from +380951174074 & more"
    assert sent.entities[0].type == "bold" and sent.entities[0].length == 6
    tg.reset_limits()  # the 1/s private-chat limit is tested on its own; no need to wait it out
    second = await bot.send_message(42, "again")
    assert second.message_id == 2
    group = await bot.send_message(-1001234567890, "hi")
    assert group.chat.type == "supergroup" and group.message_id == 1
    assert (await bot.send_message(-4242, "hi")).chat.type == "group"

    msgs = tg.messages_for(42)
    assert [m["message_id"] for m in msgs] == [1, 2]
    first = msgs[0]
    assert first["method"] == "sendMessage" and first["chat_id"] == 42
    assert first["text"].startswith("<b>Missed</b>") and first["parse_mode"] == "HTML"
    assert first["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "done:1"
    assert first["has_photo"] is False and first["t"] <= msgs[1]["t"]
    assert len(await tg.wait_for_messages(4, timeout=1)) == 4


async def test_edit_message_text(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.enforce_limits = False
    sent = await bot.send_message(42, "one")
    edited = await bot.edit_message_text("two", chat_id=42, message_id=sent.message_id)
    assert isinstance(edited, telegram.Message) and edited.text == "two"
    with pytest.raises(tg_error.BadRequest, match="not modified"):
        await bot.edit_message_text("two", chat_id=42, message_id=sent.message_id)
    with pytest.raises(tg_error.BadRequest, match="not found"):
        await bot.edit_message_text("x", chat_id=42, message_id=999)
    assert [m["method"] for m in tg.messages] == ["sendMessage", "editMessageText"]


async def test_wrong_token_is_invalid_token(tg: FakeTelegram) -> None:
    with pytest.raises(tg_error.InvalidToken):
        async with open_bot(tg.url, token="999:WRONG") as wrong:
            await wrong.get_me()
    assert tg.requests[-1]["status"] == 401


async def test_unknown_method_is_404(bot: telegram.Bot) -> None:
    with pytest.raises(tg_error.EndPointNotFound):
        await bot.do_api_request("noSuchMethod")


async def test_chat_not_found(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.unknown_chats.add(7)
    with pytest.raises(tg_error.BadRequest, match="Chat not found"):
        await bot.send_message(7, "x")
    tg.known_chats = {42}
    with pytest.raises(tg_error.BadRequest, match="Chat not found"):
        await bot.send_message(43, "x")
    await bot.send_message(42, "x")
    assert [m["chat_id"] for m in tg.messages] == [42]


async def test_blocked_is_forbidden(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.blocked_chats.update({8, -1001})
    with pytest.raises(tg_error.Forbidden, match="blocked by the user"):
        await bot.send_message(8, "x")
    with pytest.raises(tg_error.Forbidden, match="kicked"):
        await bot.send_message(-1001, "x")
    assert tg.messages == []


async def test_private_chat_flood_limit(bot: telegram.Bot, tg: FakeTelegram) -> None:
    await bot.send_message(42, "first")
    with pytest.raises(tg_error.RetryAfter) as caught:
        await bot.send_message(42, "second")
    assert seconds(caught.value.retry_after) >= 1
    assert tg.rate_limited == 1 and len(tg.messages) == 1
    # Another private chat is not affected by chat 42's limit.
    await bot.send_message(43, "other chat")


async def test_group_and_global_flood_limits(bot: telegram.Bot, tg: FakeTelegram) -> None:
    # A wide global window keeps the count exact however slow the machine is.
    tg.global_limit = (30, 60.0)
    for i in range(20):
        await bot.send_message(-1009, f"group {i}")
    with pytest.raises(tg_error.RetryAfter) as caught:
        await bot.send_message(-1009, "21st within a minute")
    assert 50 <= seconds(caught.value.retry_after) <= 60
    # Global: 30 across chats (20 already went to the group).
    sent_ok, limited = 0, 0
    for chat in range(1000, 1015):
        try:
            await bot.send_message(chat, "hi")
            sent_ok += 1
        except tg_error.RetryAfter:
            limited += 1
    assert sent_ok == 10 and limited == 5


async def test_limits_can_be_switched_off(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.enforce_limits = False
    for i in range(5):
        await bot.send_message(42, str(i))
    assert tg.rate_limited == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a < b", 'unsupported start tag ""'),
        ("line<br>break", 'unsupported start tag "br"'),
        ("<b>bold</i>", "unmatched end tag"),
        ("<b>never closed", "can't find end tag"),
        ("Tom & Jerry", 'unescaped "&"'),
        ('<span class="x">s</span>', 'must have class "tg-spoiler"'),
    ],
)
async def test_bad_html_is_bad_request(bot: telegram.Bot, text: str, fragment: str) -> None:
    with pytest.raises(tg_error.BadRequest, match="Can't parse entities") as caught:
        await bot.send_message(42, text, parse_mode="HTML")
    assert fragment.lower() in str(caught.value).lower()


def test_html_parser_accepts_what_telegram_accepts() -> None:
    text = (
        "<b>B</b> <strong>S</strong> <i>I</i> <em>E</em> <u>U</u> <ins>N</ins> <s>S</s> "
        '<strike>K</strike> <del>D</del> <a href="https://auto.ria.com/">link</a> '
        '<code>c</code> <pre><code class="language-python">p</code></pre> '
        '<span class="tg-spoiler">sp</span> <tg-spoiler>sp</tg-spoiler> '
        "<blockquote expandable>q</blockquote> "
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
        " &lt;&gt;&amp;&quot;&#39;&#x41;"
    )
    plain, entities = parse_html(text)
    assert plain.endswith("<>&\"'A")
    assert {e["type"] for e in entities} >= {"bold", "text_link", "expandable_blockquote"}
    # A tel: link is silently dropped by Telegram: the text stays, the link goes.
    plain, entities = parse_html('call <a href="tel:+380951174074">+380951174074</a>')
    assert plain == "call +380951174074" and entities == []


async def test_length_limits(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.enforce_limits = False
    # Tags do not count: 4096 visible characters inside <b> are fine.
    await bot.send_message(42, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(tg_error.BadRequest, match="Message is too long"):
        await bot.send_message(42, "x" * 4097)
    with pytest.raises(tg_error.BadRequest, match="caption is too long"):
        await bot.send_photo(42, png(4, 4), caption="c" * 1025)


async def test_send_photo_multipart(bot: telegram.Bot, tg: FakeTelegram) -> None:
    sent = await bot.send_photo(
        -1005, png(640, 480), caption="<b>Daily</b> summary", parse_mode="HTML"
    )
    assert sent.caption == "Daily summary"
    assert (sent.photo[-1].width, sent.photo[-1].height) == (640, 480)
    record = tg.messages[-1]
    assert record["method"] == "sendPhoto" and record["has_photo"] and record["photo_size"] > 0
    assert record["caption"] == "<b>Daily</b> summary" and record["chat_id"] == -1005
    downloaded = await (await bot.get_file(sent.photo[-1].file_id)).download_as_bytearray()
    assert bytes(downloaded).startswith(b"\x89PNG")
    with pytest.raises(tg_error.BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(-1005, b"not an image at all")


async def test_commands_and_webhook_settings(bot: telegram.Bot, tg: FakeTelegram) -> None:
    assert await bot.set_my_commands([("stats", "Statistics"), ("help", "Help")])
    assert [c.command for c in await bot.get_my_commands()] == ["stats", "help"]
    assert tg.commands[0] == {"command": "stats", "description": "Statistics"}
    with pytest.raises(tg_error.BadRequest):
        await bot.set_my_commands([("Bad-Command", "x")])
    assert await bot.set_webhook("http://127.0.0.1:9/hook", secret_token="s3cret_-X")
    info = await bot.get_webhook_info()
    assert info.url == "http://127.0.0.1:9/hook"
    assert tg.webhook["secret_token"] == "s3cret_-X"
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    chat = await bot.get_chat(-1001)
    assert chat.type == "supergroup"
    assert await bot.close() and await bot.log_out()


async def test_push_command_and_get_updates(bot: telegram.Bot, tg: FakeTelegram) -> None:
    update_id = tg.push_command(42, "/stats today")
    updates = await bot.get_updates(timeout=1)
    assert [u.update_id for u in updates] == [update_id]
    message = updates[0].message
    assert message is not None and message.text == "/stats today"
    assert message.entities[0].type == "bot_command" and message.entities[0].length == 6
    assert message.chat.id == 42 and message.from_user is not None
    # Unconfirmed updates come again; confirming by offset removes them.
    assert [u.update_id for u in await bot.get_updates(timeout=0)] == [update_id]
    assert await bot.get_updates(offset=update_id + 1, timeout=0) == ()
    assert tg.pending_updates == []


async def test_long_poll_waits_and_wakes(bot: telegram.Bot, tg: FakeTelegram) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 <= time.monotonic() - started < 3
    asyncio.get_running_loop().call_later(0.2, lambda: tg.push_command(-1007, "/help", user_id=5))
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    assert time.monotonic() - started < 2
    message = updates[0].message
    assert message is not None and message.chat.type == "supergroup"
    assert message.from_user is not None and message.from_user.id == 5


async def test_ptb_application_answers_pushed_command(tg: FakeTelegram) -> None:
    async def stats(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text(f"stats for {' '.join(context.args or [])}")

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{tg.url}/bot")
        .base_file_url(f"{tg.url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("stats", stats))
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(timeout=1)
        await app.start()
        try:
            update_id = tg.push_command(42, "/stats week")
            reply = await tg.wait_for_reply(42, update_id, timeout=5)
        finally:
            await app.updater.stop()
            await app.stop()
    assert reply["text"] == "stats for week"


async def test_webhook_delivery(bot: telegram.Bot, tg: FakeTelegram) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []
    statuses = iter([500, 200])

    async def hook(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=next(statuses, 200))

    tg.webhook_retry_delay = 0.05
    async with receiver("/hook", hook) as url:
        await bot.set_webhook(url, secret_token="abc123")
        with pytest.raises(tg_error.Conflict):
            await bot.get_updates(timeout=0)
        update_id = tg.push_command(42, "/help")
        for _ in range(100):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.02)
    # The first delivery got a 500, so Telegram retries the same update.
    assert [u["update_id"] for _, u in received] == [update_id, update_id]
    assert received[0][0] == "abc123"
    assert received[0][1]["message"]["text"] == "/help"
    assert [d["status"] for d in tg.webhook_deliveries] == [500, 200]
    assert tg.pending_updates == []


async def test_injected_faults(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.fail_next(1, 500)
    tg.fail_next(1, 502)
    tg.fail_next(1, 429, retry_after=7)
    with pytest.raises(tg_error.NetworkError, match="Internal Server Error"):
        await bot.send_message(42, "x")
    with pytest.raises(tg_error.NetworkError, match="Bad Gateway"):
        await bot.send_message(42, "x")
    with pytest.raises(tg_error.RetryAfter) as caught:
        await bot.send_message(42, "x")
    assert seconds(caught.value.retry_after) == 7
    await bot.get_me()  # faults apply to sending methods only
    await bot.send_message(42, "x")
    assert len(tg.messages) == 1 and tg.rate_limited == 1
    tg.mode = "down_500"
    with pytest.raises(tg_error.NetworkError):
        await bot.get_me()


async def test_hang_times_out_and_stop_releases(tg: FakeTelegram) -> None:
    tg.mode = "hang"
    async with (
        open_bot(tg.url, read_timeout=0.3) as quick,
        open_bot(tg.url, read_timeout=20) as patient,
    ):
        started = time.monotonic()
        with pytest.raises(tg_error.TimedOut):
            await quick.get_me()
        assert time.monotonic() - started < 2

        pending = asyncio.create_task(patient.get_me())
        await held(tg)
        started = time.monotonic()
        await tg.stop()
        with pytest.raises(tg_error.NetworkError):
            await pending
        assert time.monotonic() - started < 2

        # While stopped: connection refused. Then back on the same port.
        port = tg.port
        with pytest.raises(tg_error.NetworkError):
            await quick.get_me()
        tg.mode = "ok"
        await tg.start()
        assert tg.port == port
        assert (await patient.get_me()).username == "ria_test_bot"


async def test_hang_ends_when_mode_changes(tg: FakeTelegram) -> None:
    tg.mode = "hang"
    async with open_bot(tg.url) as bot:
        pending = asyncio.create_task(bot.get_me())
        await held(tg)
        assert not pending.done()
        tg.mode = "ok"
        assert (await asyncio.wait_for(pending, 2)).is_bot


async def test_wait_for_messages_times_out(tg: FakeTelegram) -> None:
    with pytest.raises(TimeoutError, match="got 0"):
        await tg.wait_for_messages(1, timeout=0.1)


async def test_telegram_standalone_process() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "tests.fakes.telegram", "--port", "0", "--token", "9:T"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        async with open_bot(url, token="9:T") as bot:
            assert (await bot.get_me()).id == 9
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{url}/_fake/push_command", json={"chat_id": 1, "text": "/stats"}
            ) as resp:
                assert (await resp.json())["update_id"] > 0
            async with session.get(f"{url}/_fake/state") as resp:
                assert (await resp.json())["pending_updates"] == 1
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 5) == 0


@pytest.mark.parametrize("kind", ["telegram", "slack"])
async def test_control_api_common_actions(kind: str) -> None:
    """The control API both chat fakes share (tests/fakes/_base.py), as another process
    drives it: state, mode, fail_next, messages filtered by target, reset, unknown action."""
    from tests.fakes.slack import FakeSlack

    fake: Any = FakeTelegram(token=TOKEN) if kind == "telegram" else FakeSlack(channels=["C1"])
    async with fake, aiohttp.ClientSession() as session:

        async def call(action: str, body: Any = None, **query: Any) -> tuple[int, Any]:
            url = f"{fake.url}/_fake/{action}"
            method = session.post if body is not None else session.get
            async with method(url, json=body, params=query) as resp:
                return resp.status, await resp.json()

        status, state = await call("state")
        assert status == 200
        assert {"messages": 0, "requests": 0, "rate_limited": 0, "mode": "ok"}.items() <= (
            state.items()
        )
        assert ("pending_updates" if kind == "telegram" else "socket_connected") in state
        assert await call("mode", {"mode": "down_500"}) == (200, {"mode": "down_500"})
        assert fake.mode == "down_500"
        await call("mode", {"mode": "ok"})
        word = "description" if kind == "telegram" else "error"
        status, body = await call("fail_next", {"n": 2, "status": 502, word: "boom"})
        assert (status, body) == (200, {"pending_faults": 2})
        key = fake.TARGET_KEY
        assert await call("messages", **{key: "1" if kind == "telegram" else "C1"}) == (200, [])
        assert await call("reset", {}) == (200, {"ok": True})
        assert fake.pending_faults == 0
        status, body = await call("no_such_action")
        assert status == 404 and "no_such_action" in body["error"]
        own = "requests" if kind == "telegram" else "acks"
        assert await call(own) == (200, [])


async def held(fake: FakeTelegram, timeout: float = 5.0) -> None:
    """Wait until the fake has a request it is holding (received, not answered)."""
    deadline = time.monotonic() + timeout
    while not any(r["status"] is None for r in fake.requests):
        assert time.monotonic() < deadline, "no request held by the fake"
        await asyncio.sleep(0.01)


# --- FakeRia ---------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta).total_seconds()


@pytest.fixture
async def ria() -> AsyncIterator[FakeRia]:
    async with FakeRia(calls=[dict(r) for r in SAMPLE]) as fake:
        yield fake


async def get_calls(
    fake: FakeRia, session: aiohttp.ClientSession, **params: str
) -> aiohttp.ClientResponse:
    query = {"user_id": fake.user_id, "api_key": fake.api_key} | params
    query = {k: v for k, v in query.items() if v is not None}
    async with session.get(f"{fake.url}/auto/new/calls_stat", params=query) as resp:
        await resp.read()
        return resp


async def test_ria_filters_by_date_and_serves_json_as_html(ria: FakeRia) -> None:
    async with aiohttp.ClientSession() as session:
        resp = await get_calls(ria, session, **{"from": "2021-07-31", "to": "2021-07-31"})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        with pytest.raises(aiohttp.ContentTypeError):
            await resp.json()  # the quirk clients must survive
        body = json.loads(await resp.text())
        assert [r["call_id"] for r in body] == [22346351, 22345654]
        assert body[1]["marka"] is None and body[0]["waighting"] == 11

        resp = await get_calls(ria, session, **{"from": "2021-07-30", "to": "2021-07-31"})
        assert len(json.loads(await resp.text())) == 4
        resp = await get_calls(ria, session, **{"from": "2021-08-01", "to": "2021-08-31"})
        assert json.loads(await resp.text()) == []

        ria.content_type = "application/json"
        resp = await get_calls(ria, session, **{"from": "2021-07-30", "to": "2021-07-30"})
        assert [r["status"] for r in await resp.json()] == ["ANSWER", "CANCEL"]
        assert resp.headers["X-RateLimit-Limit"] == "30"
        assert resp.headers["X-RateLimit-Remaining"] == "26"
    assert ria.request_count == 4


async def test_ria_auth_errors(ria: FakeRia) -> None:
    day = {"from": "2021-07-31", "to": "2021-07-31"}
    async with aiohttp.ClientSession() as session:
        resp = await get_calls(ria, session, api_key=None, **day)  # type: ignore[arg-type]
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "API_KEY_MISSING"
        resp = await get_calls(ria, session, api_key="x" * 40, **day)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "API_KEY_INVALID"

        basic = base64.b64encode(f"{ria.api_key}:".encode()).decode()
        query = {"user_id": ria.user_id} | day
        async with session.get(
            f"{ria.url}/auto/new/calls_stat",
            params=query,
            headers={"Authorization": f"Basic {basic}"},
        ) as resp:
            assert resp.status == 200 and len(json.loads(await resp.text())) == 2
        wrong = base64.b64encode(b"wrong:").decode()
        async with session.get(
            f"{ria.url}/auto/new/calls_stat",
            params=query,
            headers={"Authorization": f"Basic {wrong}"},
        ) as resp:
            assert resp.status == 403


async def test_ria_bad_parameters(ria: FakeRia) -> None:
    async with aiohttp.ClientSession() as session:
        for params in (
            {"user_id": "1", "from": "2021-07-31", "to": "2021-07-31"},
            {"from": "31.07.2021", "to": "2021-07-31"},
            {"from": "2021-07-31"},
            {"from": "2021-08-01", "to": "2021-07-31"},
        ):
            resp = await get_calls(ria, session, **params)
            assert resp.status == 400, params
            assert (await resp.json())["error"]["code"] == "BAD_REQUEST"


async def test_ria_hourly_and_monthly_limits_with_injected_clock() -> None:
    clock = Clock(datetime(2024, 3, 31, 23, 10, tzinfo=KYIV))
    day = {"from": "2024-03-31", "to": "2024-03-31"}
    async with FakeRia(clock=clock, monthly_limit=40) as ria, aiohttp.ClientSession() as s:
        for _ in range(30):
            assert (await get_calls(ria, s, **day)).status == 200
        resp = await get_calls(ria, s, **day)
        assert resp.status == 429
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert (await resp.json())["error"]["code"] == "OVER_RATE_LIMIT"
        assert ria.rate_limited == 1

        clock.advance(hours=1)  # a new clock hour, and a new month (April) in Kyiv
        for _ in range(30):
            assert (await get_calls(ria, s, **day)).status == 200
        clock.advance(hours=1)
        for _ in range(10):
            assert (await get_calls(ria, s, **day)).status == 200
        assert ria.used_this_month() == 40
        assert (await get_calls(ria, s, **day)).status == 429  # monthly cap, fresh hour
        clock.advance(days=30)  # May
        assert (await get_calls(ria, s, **day)).status == 200
    assert ria.request_count == 73


async def test_ria_faults_and_hang(ria: FakeRia) -> None:
    day = {"from": "2021-07-31", "to": "2021-07-31"}
    ria.fail_next(1, 502)
    ria.fail_next(1, 500)
    async with aiohttp.ClientSession() as session:
        resp = await get_calls(ria, session, **day)
        assert resp.status == 502 and resp.content_type == "text/html"
        assert (await get_calls(ria, session, **day)).status == 500
        assert (await get_calls(ria, session, **day)).status == 200
        ria.mode = "hang"
        with pytest.raises(TimeoutError):
            async with session.get(
                f"{ria.url}/auto/new/calls_stat",
                params={"user_id": ria.user_id, "api_key": ria.api_key} | day,
                timeout=aiohttp.ClientTimeout(total=0.3),
            ):
                pass
    started = time.monotonic()
    await ria.stop()
    assert time.monotonic() - started < 2


def test_make_call_shape() -> None:
    call = make_call(5, when=datetime(2024, 5, 1, 9, 30, 5))
    assert list(call) == list(SAMPLE[0])
    assert call["date"] == "2024-05-01T09:30:05"
    assert call["status"] == "NOANSWER" and call["duration"] == 0 and call["link"] == ""
    # An aware time is converted to Kyiv wall time (UTC+3 in summer).
    aware = make_call(6, "ANSWER", when=datetime(2024, 7, 1, 12, 0, tzinfo=UTC), marka=None)
    assert aware["date"] == "2024-07-01T15:00:00" and aware["marka"] is None
    assert aware["duration"] > 0 and aware["link"].startswith("https://")
    now = datetime.now(KYIV).replace(tzinfo=None)
    parsed = datetime.fromisoformat(make_call(7)["date"])
    assert abs((parsed - now).total_seconds()) < 5


async def test_ria_post_webhook_helper() -> None:
    got: list[tuple[str, bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        got.append((request.content_type, await request.read()))
        return web.json_response({"accepted": 1})

    async with receiver("/webhooks/ria/secret", receive) as url:
        assert (await FakeRia.post_webhook(url, SAMPLE[1]))[0] == 200
        assert (await FakeRia.post_webhook(url, SAMPLE[1], encoding="form"))[0] == 200
    assert json.loads(got[0][1])["call_id"] == 22345654
    assert got[1][0] == "application/x-www-form-urlencoded" and b"marka=&" in got[1][1]
