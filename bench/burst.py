"""Row 3: a burst of missed calls to one Telegram group, with Telegram's limits enforced.

300 missed calls in 10 s (one per webhook, evenly spread, each from a caller of its own)
to a service whose only alert target is a supergroup, which Telegram lets a bot post to 20
times a minute. The fake Telegram enforces that (and 30/s overall) and answers 429 past it.
Measured: the time from the first webhook until every caller's number has appeared in the
group, the messages that took, and the 429s the service ran into. The stock service, with
its own pacing and coalescing. Its RSS afterwards is row 5's "after the burst".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    GROUP,
    TG_TOKEN,
    CallerWatch,
    caller_e164,
    post_calls,
    rss_mb,
    start_service,
    stop_quietly,
    telegram_env,
    wait_telegram_connected,
    webhook_record,
)
from bench.report import PEER_ON_429, Row
from tests.fakes.telegram import FakeTelegram

VISIBLE_TARGET_S = 60.0
FIRST_CALL_ID = 20_000_000
FIRST_CALLER = 5_000_000  # callers of their own, apart from the latency row's


@dataclass
class Params:
    calls: int = 300
    seconds: float = 10.0
    timeout_s: float = 150.0  # give up waiting for callers after this


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    # the fake's default limits are Telegram's: 20 a minute per group, 30 a second overall
    async with FakeTelegram(token=TG_TOKEN, enforce_limits=True) as telegram:
        service = await start_service(workdir / "burst", **telegram_env(telegram.url, GROUP))
        try:
            await wait_telegram_connected(service)
            watch = CallerWatch(telegram, GROUP)
            numbers = {caller_e164(FIRST_CALLER + i) for i in range(params.calls)}
            statuses: list[int] = []
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:

                async def one(i: int) -> None:
                    record = webhook_record(FIRST_CALL_ID + i, "NOANSWER", FIRST_CALLER + i)
                    status, _ = await post_calls(session, service.webhook_url, [record])
                    statuses.append(status)

                t0 = time.monotonic()
                tasks = []
                for i in range(params.calls):
                    delay = t0 + i * params.seconds / params.calls - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(i)))
                await asyncio.gather(*tasks)
                sent_s = time.monotonic() - t0
                missing = await watch.wait_for(numbers, params.timeout_s)
            # the process as the burst left it (its outbox drained, if it did)
            rss = rss_mb(service.pid)
        finally:
            await stop_quietly(service)
    last = max((watch.first_seen[n] for n in numbers if n in watch.first_seen), default=t0)
    return {
        "calls": params.calls,
        "seconds": params.seconds,
        "sent_in_s": round(sent_s, 2),
        "ok_answers": sum(1 for s in statuses if s == 200),
        "all_visible_s": None if missing else round(last - t0, 2),
        "missing": len(missing),
        "messages": watch.messages,
        "coalesced_messages": watch.multi,
        "rate_limited": telegram.rate_limited,
        "rss_after_mb": round(rss, 1),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    visible = result["all_visible_s"]
    how = (
        f"{result['calls']} missed calls in {result['seconds']:g} s, one supergroup, fake "
        f"Telegram enforcing 20/min per group and 30/s; every caller's number found in the chat"
    )
    return [
        Row(
            3,
            "burst: every caller visible after",
            f"{visible:.1f} s" if visible is not None else f"{result['missing']} never",
            f"≤ {VISIBLE_TARGET_S:.0f} s",
            met=visible is not None and visible <= VISIBLE_TARGET_S,
            note=how,
        ),
        Row(
            3,
            "burst: messages sent / 429s received",
            f"{result['messages']} / {result['rate_limited']}",
            "— / 0",
            PEER_ON_429,
            met=result["rate_limited"] == 0 and result["missing"] == 0,
            note=f"{result['coalesced_messages']} of the messages list several callers",
        ),
    ]
