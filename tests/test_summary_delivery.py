"""The chart, and how a summary with a chart reaches each channel.

Telegram is the real python-telegram-bot talking to the fake Bot API (sendPhoto checks the
image and the 1024-character caption limit as Telegram does).
"""

from __future__ import annotations

import io
import logging
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.channels.base import DeliveryError, RateLimit
from bot.delivery.channels.console import ConsoleChannel
from bot.delivery.channels.telegram import CAPTION_LIMIT, TelegramChannel, build_application
from bot.delivery.dispatcher import Dispatcher
from bot.summary import chart
from bot.summary import text as summary_text
from bot.summary.build import DAILY, WEEKLY, build
from bot.summary.schedule import draw_chart, summary_items
from storage import outbox
from storage.db import Store, connect
from storage.outbox import OutboxItem, Target
from tests.conftest import GROUP, TG_TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.test_summary import AFTER_THE_DAY, FIXTURE, load

KYIV = ZoneInfo("Europe/Kyiv")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def fixture_db(tmp_path: Path) -> Path:
    path = tmp_path / "calls.db"
    db = connect(path)
    load(db, FIXTURE)
    db.conn.close()
    return path


def read_png(png: bytes) -> Any:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")


def near(pixels: Any, hex_colour: str) -> int:
    """How many pixels are (almost) this colour."""
    import numpy as np

    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(pixels[:, :, :3] - rgb).max(axis=2) < 0.02).sum())


# ---- the chart ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [DAILY, WEEKLY])
def test_chart_is_a_png_of_the_expected_size_with_bars(fixture_db: Path, kind: str) -> None:
    db = connect(fixture_db)
    s = build(db, kind, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY + 7 * 86400)
    png = chart.draw(summary_text.chart_data(s, "uk", KYIV))
    assert png.startswith(PNG_MAGIC)
    pixels = read_png(png)
    assert pixels.shape[:2] == (chart.HEIGHT_PX, chart.WIDTH_PX)
    # not blank: many colours, and bars in the answered, missed and other colours
    flat = (pixels[:, :, :3] * 255).astype(int).reshape(-1, 3)
    assert len({tuple(p) for p in flat[::7]}) > 20
    assert near(pixels, chart.COLOURS["answered"]) > 500
    assert near(pixels, chart.COLOURS["missed"]) > 500
    assert near(pixels, chart.COLOURS["other"]) > 100  # the FAILED call


def test_more_missed_than_answered_shows_more_red(fixture_db: Path) -> None:
    db = connect(fixture_db)
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    pixels = read_png(chart.draw(summary_text.chart_data(s, "en", KYIV)))
    # 5 missed against 3 answered, bars of equal width per call: red covers more
    assert near(pixels, chart.COLOURS["missed"]) > near(pixels, chart.COLOURS["answered"])


async def test_without_matplotlib_the_summary_goes_without_a_chart_logged_once(
    fixture_db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    monkeypatch.setattr(chart, "_missing_logged", False)
    store = Store(fixture_db)
    await store.open()
    try:
        with caplog.at_level(logging.WARNING, logger="bot.summary.chart"):
            for _ in range(2):
                _, items = await summary_items(
                    store,
                    DAILY,
                    date(2026, 11, 25),
                    targets=[Target("console", "stdout")],
                    key=lambda t: f"k:{t}",
                    tz=KYIV,
                    lang="uk",
                    now=AFTER_THE_DAY,
                )
                assert "png" not in items[0].payload
                assert "Дзвінків: 9" in items[0].payload["text"]
    finally:
        await store.close()
    warnings = [r for r in caplog.records if "matplotlib is not installed" in r.message]
    assert len(warnings) == 1


async def test_a_failing_chart_does_not_stop_the_summary(
    fixture_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the chart is drawn by a child process (chart.draw_isolated): one that fails, as a
    # child without fonts or memory would, exits non-zero without a PNG
    monkeypatch.setattr(chart.sys, "executable", "/bin/false")
    db = connect(fixture_db)
    s = build(db, DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    assert await draw_chart(s, "uk", KYIV) is None


# ---- Telegram -------------------------------------------------------------------------------


@pytest.fixture
async def channel(telegram: FakeTelegram) -> Any:
    ch = TelegramChannel(build_application(TG_TOKEN, telegram.url, webhook_mode=True))
    await ch.app.bot.initialize()
    yield ch
    await ch.app.bot.shutdown()


async def test_telegram_photo_captioned_with_the_title_then_the_text_even_when_short(
    telegram: FakeTelegram, channel: TelegramChannel, fixture_db: Path
) -> None:
    """Whatever its length, the text is a message of its own after the chart (as in Slack):
    a summary looks the same every day, however many lines its figures take."""
    s = build(connect(fixture_db), DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    png = chart.draw(summary_text.chart_data(s, "uk", KYIV))
    text = "<b>📊 Підсумок</b>\nДзвінків: 9"
    ref = await channel.notify_image(GROUP, text, png, "summary-2026-11-25.png")
    photo, message = telegram.messages_for(GROUP)
    assert photo["method"] == "sendPhoto" and photo["has_photo"]
    assert photo["photo_size"] == len(png)
    assert photo["caption"] == "<b>📊 Підсумок</b>" and photo["plain_text"] == "📊 Підсумок"
    assert message["method"] == "sendMessage" and message["text"] == text
    assert ref == {"chat_id": int(GROUP), "message_id": message["message_id"]}


async def test_telegram_text_too_long_for_a_caption_follows_the_photo(
    telegram: FakeTelegram, channel: TelegramChannel, fixture_db: Path
) -> None:
    s = build(connect(fixture_db), DAILY, date(2026, 11, 25), KYIV, now=AFTER_THE_DAY)
    png = chart.draw(summary_text.chart_data(s, "uk", KYIV))
    text = "<b>📊 Підсумок</b>\n" + "\n".join(f"рядок {i}: 12345678901234567890" for i in range(60))
    assert len(text) > CAPTION_LIMIT
    ref = await channel.notify_image(GROUP, text, png, "summary.png")
    photo, message = telegram.messages_for(GROUP)
    assert photo["method"] == "sendPhoto" and photo["has_photo"]
    assert photo["caption"] == "<b>📊 Підсумок</b>"  # the title line
    assert message["method"] == "sendMessage" and message["text"] == text
    assert ref == {"chat_id": int(GROUP), "message_id": message["message_id"]}


async def test_telegram_title_too_long_for_a_caption_goes_without_one(
    telegram: FakeTelegram, channel: TelegramChannel
) -> None:
    png = chart.draw(chart.ChartData("t", ["a"], [1], [1], [0], ("answered", "missed", "other")))
    text = "<b>" + "x" * (CAPTION_LIMIT + 1) + "</b>\nline"
    await channel.notify_image(GROUP, text, png, "s.png")
    photo, message = telegram.messages_for(GROUP)
    assert photo["has_photo"] and not photo.get("caption")
    assert message["text"] == text


async def test_telegram_retry_after_the_photo_sends_only_the_text(
    telegram: FakeTelegram, channel: TelegramChannel, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = chart.draw(chart.ChartData("t", ["a"], [1], [1], [0], ("answered", "missed", "other")))
    text = "<b>title</b>\n" + "x" * 1100
    real = channel.send_now
    failures = [DeliveryError("Telegram: Bad Gateway")]

    async def flaky(target: str, text: str) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return await real(target, text)

    monkeypatch.setattr(channel, "send_now", flaky)
    with pytest.raises(DeliveryError):
        await channel.notify_image(GROUP, text, png, "s.png")
    ref = await channel.notify_image(GROUP, text, png, "s.png")  # the outbox's retry
    photo, message = telegram.messages_for(GROUP)
    assert (photo["method"], message["method"]) == ("sendPhoto", "sendMessage")
    assert ref["message_id"] == message["message_id"]
    assert channel._photos_sent == set()


async def test_real_summary_through_the_dispatcher_to_telegram(
    telegram: FakeTelegram, channel: TelegramChannel, fixture_db: Path
) -> None:
    """The whole path: summary_items → outbox → dispatcher → sendPhoto (+ sendMessage)."""
    store = Store(fixture_db)
    await store.open()
    dispatcher = Dispatcher(store, {"telegram": channel}, lang="uk", tz=KYIV)
    try:
        _, items = await summary_items(
            store,
            DAILY,
            date(2026, 11, 25),
            targets=[Target("telegram", GROUP)],
            key=lambda t: f"summary:daily:2026-11-25:{t}",
            tz=KYIV,
            lang="uk",
            now=AFTER_THE_DAY,
        )
        dispatcher.submit(await store.run(outbox.enqueue, items))
        await telegram.wait_for_messages(2, chat_id=GROUP)
        assert await dispatcher.flush(5)
        state = await store.run(
            lambda db: db.conn.execute("SELECT state, message_ref FROM outbox").fetchall()
        )
    finally:
        await dispatcher.stop()
        await store.close()
    photo, message = telegram.messages_for(GROUP)
    assert photo["method"] == "sendPhoto" and photo["photo_size"] > 10_000
    assert photo["caption"] == "<b>📊 Підсумок дня: ср 25.11.2026</b>"
    assert message["method"] == "sendMessage" and "Дзвінків: 9 (▲ 5)" in message["plain_text"]
    # the reference kept is the text's: the message the summary's words are in
    assert [tuple(r) for r in state] == [
        ("sent", f'{{"chat_id": {GROUP}, "message_id": {message["message_id"]}}}')
    ]


# ---- console, and the dispatcher's choice ------------------------------------------------


async def test_console_writes_the_png_next_to_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    console = ConsoleChannel(image_dir=tmp_path / "data")
    ref = await console.notify_image("stdout", "Summary text", PNG_MAGIC + b"x", "../s.png")
    path = tmp_path / "data" / "s.png"  # never outside the directory
    assert path.read_bytes() == PNG_MAGIC + b"x"
    out = capsys.readouterr().out
    assert "Summary text" in out and f"chart: {path}" in out
    assert ref["file"] == str(path)

    (tmp_path / "file").write_text("not a directory")
    blocked = ConsoleChannel(image_dir=tmp_path / "file")
    await blocked.notify_image("stdout", "Still printed", PNG_MAGIC, "s.png")
    out = capsys.readouterr().out
    assert "Still printed" in out and "chart not saved" in out


class Recorder:
    name, fmt, text_limit = "console", "text", 100_000

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        self.calls.append(("notify", text))
        return {"n": len(self.calls)}

    async def notify_image(
        self, target: str, text: str, png: bytes, filename: str
    ) -> dict[str, Any]:
        self.calls.append(("notify_image", text, png.decode(), filename))
        return {"n": len(self.calls)}

    def limits(self, target: str) -> list[RateLimit]:
        return []

    def status(self) -> dict[str, Any]:
        return {}


async def test_dispatcher_sends_a_summary_with_a_chart_as_an_image(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.db")
    await store.open()
    recorder = Recorder()
    dispatcher = Dispatcher(store, {"console": recorder}, lang="uk", tz=KYIV)
    target = Target("console", "stdout")
    now = time.time()
    with_chart = {"text": "with", "png": "UE5H", "filename": "s.png"}  # base64 of "PNG"
    items = [
        OutboxItem("a", "summary", target, now, now, payload=with_chart),
        OutboxItem("b", "summary", target, now, now, payload={"text": "without"}),
        OutboxItem("c", "test", target, now, now, payload={"text": "test", "png": "UE5H"}),
    ]
    try:
        dispatcher.submit(await store.run(outbox.enqueue, items))
        assert await dispatcher.flush(5)
    finally:
        await dispatcher.stop()
        await store.close()
    assert recorder.calls == [
        ("notify_image", "with", "PNG", "s.png"),
        ("notify", "without"),
        ("notify", "test"),
    ]
