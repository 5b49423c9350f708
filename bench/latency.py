"""Row 1: alert latency, from sending a webhook to the fake Telegram receiving the alert.

Open loop: webhook i leaves at t0 + i / rate whether or not earlier ones were answered
(a closed loop would wait out a slow answer and hide it). Each webhook carries one missed
call from a caller of its own, so the alert that names that caller closes its measurement.
The fake Telegram runs in this process and stamps each message with time.monotonic() as
it arrives, the same clock that stamped the webhook, so there is no clock skew to correct.

Setup: one private chat; the fake with enforce_limits=False; the service as
`python -m bench.unpaced run` (the stock CLI with its Telegram pacing lifted: see that
module). Pacing and coalescing are the burst row's subject.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    PRIVATE,
    REPO,
    TG_TOKEN,
    CallerWatch,
    caller_e164,
    percentile,
    post_calls,
    start_service,
    stop_quietly,
    telegram_env,
    wait_telegram_connected,
    webhook_record,
)
from bench.report import PEER_P50_MS, PEER_P99_MS, Row, fmt_ms
from tests.fakes.telegram import FakeTelegram

P50_TARGET_MS = 15.0
P99_TARGET_MS = 50.0
FIRST_CALL_ID = 10_000_000


@dataclass
class Params:
    rate: float = 20.0  # missed calls (webhooks) a second
    seconds: float = 30.0
    warmup: int = 20  # webhooks sent and discarded first (connections, caches)
    drain_s: float = 15.0  # how long to wait for the last alerts


async def _send_at_rate(
    session: aiohttp.ClientSession, url: str, first: int, count: int, rate: float
) -> tuple[dict[str, float], list[float], list[int]]:
    """Send `count` one-call webhooks at `rate`; (sent time per caller, answer times, statuses)."""
    sent: dict[str, float] = {}
    answers: list[float] = []
    statuses: list[int] = []

    async def one(i: int) -> None:
        record = webhook_record(FIRST_CALL_ID + i, "NOANSWER", i)
        sent[caller_e164(i)] = time.monotonic()
        status, seconds = await post_calls(session, url, [record])
        statuses.append(status)
        answers.append(seconds)

    tasks = []
    t0 = time.monotonic()
    for n in range(count):
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(first + n)))
    await asyncio.gather(*tasks)
    return sent, answers, statuses


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    count = round(params.rate * params.seconds)
    async with FakeTelegram(token=TG_TOKEN, enforce_limits=False) as telegram:
        service = await start_service(
            workdir / "latency",
            argv=[sys.executable, "-m", "bench.unpaced", "run"],
            PYTHONPATH=str(REPO),  # bench/ is not installed, and the service runs elsewhere
            **telegram_env(telegram.url, PRIVATE),
        )
        try:
            await wait_telegram_connected(service)
            timeout = aiohttp.ClientTimeout(total=10)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                url = service.webhook_url
                if params.warmup:
                    warm = CallerWatch(telegram, PRIVATE)
                    sent, _, _ = await _send_at_rate(session, url, 0, params.warmup, params.rate)
                    await warm.wait_for(set(sent), params.drain_s)
                watch = CallerWatch(telegram, PRIVATE)
                sent, answers, statuses = await _send_at_rate(
                    session, url, params.warmup, count, params.rate
                )
                missing = await watch.wait_for(set(sent), params.drain_s)
        finally:
            await stop_quietly(service)
        rate_limited = telegram.rate_limited
    latencies = [(watch.first_seen[n] - t) * 1000 for n, t in sent.items() if n in watch.first_seen]
    return {
        "rate": params.rate,
        "seconds": params.seconds,
        "webhooks": count,
        "ok_answers": sum(1 for s in statuses if s == 200),
        "alerts_received": len(latencies),
        "missing": len(missing),
        "messages": watch.messages,
        "coalesced_messages": watch.multi,
        "rate_limited": rate_limited,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p90_ms": round(percentile(latencies, 90), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "webhook_answer_p50_ms": round(percentile(answers, 50) * 1000, 2),
        "webhook_answer_p99_ms": round(percentile(answers, 99) * 1000, 2),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    how = (
        f"{result['webhooks']} webhooks of 1 missed call, {result['rate']:g}/s for "
        f"{result['seconds']:g} s, open loop; 1 private chat; fake Telegram in the bench "
        "process with enforce_limits=False; service pacing lifted (bench/unpaced.py)"
    )
    lost = result["webhooks"] - result["alerts_received"]
    p50, p99 = result["p50_ms"], result["p99_ms"]
    return [
        Row(
            1,
            "alert latency p50 (webhook → sendMessage received)",
            fmt_ms(p50),
            f"≤ {P50_TARGET_MS:.0f} ms",
            f"{PEER_P50_MS} ms",
            met=p50 <= P50_TARGET_MS and lost == 0,
            note=how,
        ),
        Row(
            1,
            "alert latency p99",
            fmt_ms(p99),
            f"≤ {P99_TARGET_MS:.0f} ms",
            f"{PEER_P99_MS} ms",
            met=p99 <= P99_TARGET_MS and lost == 0,
            note=(
                f"max {fmt_ms(result['max_ms'])}; {result['messages']} messages "
                f"({result['coalesced_messages']} coalesced), {lost} alerts missing; webhook "
                f"answered in {fmt_ms(result['webhook_answer_p50_ms'])} p50 / "
                f"{fmt_ms(result['webhook_answer_p99_ms'])} p99"
            ),
        ),
    ]
