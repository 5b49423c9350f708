"""Row 7: a "✅ Called back" press, to the presser's confirmation (answerCallbackQuery) and
to the alert's edit (editMessageText without that button), p50/p99 (issue 12).

Setup: the stock CLI (its Telegram pacing on) and the fake Telegram with its limits
enforced, one private chat (1 message a second). `presses` missed calls are alerted first;
then `busy` more missed calls arrive one webhook each, so alerts queue behind the chat's
rate limit while the buttons are pressed, one every `gap_s`. The confirmation must not wait
for that queue (the issue: within a second); the edit goes through the outbox and may.
Both ends are stamped with time.monotonic() in this process: the press when the update is
queued on the fake, the answer and the edit when the fake receives them.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    PRIVATE,
    TG_TOKEN,
    percentile,
    post_calls,
    start_service,
    stop_quietly,
    telegram_env,
    wait_telegram_connected,
    webhook_record,
)
from bench.report import Row, fmt_ms
from tests.fakes.telegram import FakeTelegram

FIRST_CALL_ID = 30_000_000
CONFIRM_P99_TARGET_MS = 1000.0  # the issue: the confirmation within a second, outbox busy


@dataclass
class Params:
    presses: int = 15  # alerts pressed, one button each
    busy: int = 30  # missed calls arriving meanwhile, one webhook each
    gap_s: float = 0.4  # between presses
    timeout_s: float = 120.0  # for the alerts, and for the last edit


def _buttons(message: dict[str, Any]) -> set[str]:
    markup = message.get("reply_markup")
    markup = json.loads(markup) if isinstance(markup, str) else markup or {}
    return {b.get("callback_data", "") for row in markup.get("inline_keyboard", []) for b in row}


async def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.01)


def _alerts(telegram: FakeTelegram, ids: list[int]) -> dict[int, int]:
    """call id -> the message id of the (latest) alert carrying its button."""
    found: dict[int, int] = {}
    for m in telegram.messages:
        if m["method"] == "sendMessage":
            for data in _buttons(m):
                call_id = int(data[3:]) if data.startswith("cb:") else -1
                if call_id in ids:
                    found[call_id] = m["message_id"]
    return found


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    ids = [FIRST_CALL_ID + i for i in range(params.presses)]
    async with FakeTelegram(token=TG_TOKEN) as telegram:  # limits enforced
        # no reminders in the queue measured
        env: dict[str, Any] = telegram_env(telegram.url, PRIVATE)
        env["CALLBACK_WITHIN_MINUTES"] = "0"
        service = await start_service(workdir / "callback", **env)
        try:
            await wait_telegram_connected(service)
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                url = service.webhook_url
                records = [webhook_record(c, "NOANSWER", i) for i, c in enumerate(ids)]
                status, _ = await post_calls(session, url, records)
                assert status == 200, status
                await _until(
                    lambda: len(_alerts(telegram, ids)) == len(ids),
                    params.timeout_s,
                    "every alert with its button",
                )
                alerts = _alerts(telegram, ids)

                async def busy() -> None:
                    for n in range(params.busy):
                        i = params.presses + n
                        record = webhook_record(FIRST_CALL_ID + i, "NOANSWER", i)
                        await post_calls(session, url, [record])
                        await asyncio.sleep(params.gap_s / 2)

                feeder = asyncio.create_task(busy())
                await asyncio.sleep(params.gap_s)  # the queue has started to build
                pressed: dict[int, tuple[float, int]] = {}  # call -> (t, requests index)
                for call_id in ids:
                    pressed[call_id] = (time.monotonic(), len(telegram.requests))
                    telegram.push_callback_query(PRIVATE, alerts[call_id], f"cb:{call_id}")
                    await asyncio.sleep(params.gap_s)
                await feeder
                backlog = sum(
                    1
                    for r in telegram.requests
                    if str(r["method"]).lower() == "sendmessage" and r["status"] is None
                )

                def answered() -> dict[int, float]:
                    out: dict[int, float] = {}
                    for call_id, (t, index) in pressed.items():
                        for r in telegram.requests[index:]:
                            if str(r["method"]).lower() == "answercallbackquery":
                                out[call_id] = r["t"] - t
                                break
                    return out

                def edited() -> dict[int, float]:
                    out: dict[int, float] = {}
                    for call_id, (t, _) in pressed.items():
                        for m in telegram.messages:
                            if (
                                m["method"] == "editMessageText"
                                and m["message_id"] == alerts[call_id]
                                and m["t"] >= t
                                and f"cb:{call_id}" not in _buttons(m)
                            ):
                                out[call_id] = m["t"] - t
                                break
                    return out

                await _until(lambda: len(answered()) == len(ids), 30, "every confirmation")
                await _until(lambda: len(edited()) == len(ids), params.timeout_s, "every edit")
        finally:
            await stop_quietly(service)
    # presses are sequential and each answer comes before the next press: the first
    # answerCallbackQuery after a press is that press's
    confirm = [s * 1000 for s in answered().values()]
    edit = [s * 1000 for s in edited().values()]
    return {
        "presses": len(ids),
        "busy_calls": params.busy,
        "sends_in_flight_at_last_press": backlog,
        "rate_limited": telegram.rate_limited,
        "confirm_p50_ms": round(percentile(confirm, 50), 2),
        "confirm_p99_ms": round(percentile(confirm, 99), 2),
        "edit_p50_ms": round(percentile(edit, 50), 2),
        "edit_p99_ms": round(percentile(edit, 99), 2),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    how = (
        f"{result['presses']} presses, one every ~0.4 s, while {result['busy_calls']} more "
        "missed calls arrive; 1 private chat, fake Telegram limits enforced (1 msg/s), "
        "service pacing on"
    )
    c50, c99 = result["confirm_p50_ms"], result["confirm_p99_ms"]
    return [
        Row(
            7,
            "button press → answerCallbackQuery p50 / p99",
            f"{fmt_ms(c50)} / {fmt_ms(c99)}",
            f"p99 ≤ {CONFIRM_P99_TARGET_MS:.0f} ms",
            met=c99 <= CONFIRM_P99_TARGET_MS,
            note=how,
        ),
        Row(
            7,
            "button press → alert edited p50 / p99",
            f"{fmt_ms(result['edit_p50_ms'])} / {fmt_ms(result['edit_p99_ms'])}",
            note=(
                "the edit waits its turn in the outbox behind the chat's rate limit; "
                f"{result['rate_limited']} 429s from the fake"
            ),
        ),
    ]
