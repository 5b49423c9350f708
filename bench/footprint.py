"""Row 5: footprint. Start to healthy, idle RSS, and (from the burst row) RSS after a burst.

Start to healthy is timed from just before the process is spawned to the first 200 from
/healthz (polled every 10 ms), `starts` times on the same database (the first start creates
and migrates it, the others are restarts); the median is reported. The service is
configured as it would run: Telegram on (the fake, in this process), RIA polling off.
Idle RSS is VmRSS from /proc after the last start has connected to Telegram and sat idle.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    GROUP,
    TG_TOKEN,
    rss_mb,
    start_service,
    stop_quietly,
    telegram_env,
    wait_telegram_connected,
)
from bench.report import PEER_IDLE_MB, PEER_START_S, Row
from tests.fakes.telegram import FakeTelegram

IDLE_TARGET_MB = 90.0
START_TARGET_S = 2.0


@dataclass
class Params:
    starts: int = 5
    idle_s: float = 5.0


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    workdir = workdir / "footprint"
    starts: list[float] = []
    idle = peak = 0.0
    async with FakeTelegram(token=TG_TOKEN) as telegram:
        for number in range(params.starts):
            service = await start_service(workdir, **telegram_env(telegram.url, GROUP))
            try:
                starts.append(service.healthy_at - service.spawned_at)
                if number == params.starts - 1:
                    await wait_telegram_connected(service)
                    await asyncio.sleep(params.idle_s)
                    idle, peak = rss_mb(service.pid), rss_mb(service.pid, "VmHWM")
            finally:
                await stop_quietly(service)
    return {
        "starts": [round(s, 3) for s in starts],
        "start_median_s": round(statistics.median(starts), 3),
        "idle_s": params.idle_s,
        "idle_rss_mb": round(idle, 1),
        "idle_peak_rss_mb": round(peak, 1),
    }


def rows(result: dict[str, Any], burst: dict[str, Any] | None) -> list[Row]:
    idle, start = result["idle_rss_mb"], result["start_median_s"]
    out = [
        Row(
            5,
            "idle RSS after start",
            f"{idle:.0f} MB",
            f"≤ {IDLE_TARGET_MB:.0f} MB",
            f"{PEER_IDLE_MB} MB",
            met=idle <= IDLE_TARGET_MB,
            note=(
                f"VmRSS after {result['idle_s']:g} s idle, Telegram connected (peak VmHWM "
                f"{result['idle_peak_rss_mb']:.0f} MB)"
            ),
        ),
    ]
    if burst is not None:
        out.append(
            Row(
                5,
                "RSS after the burst",
                f"{burst['rss_after_mb']:.0f} MB",
                note="VmRSS of row 3's service once every caller was visible",
            )
        )
    out.append(
        Row(
            5,
            "start to healthy",
            f"{start:.2f} s",
            f"≤ {START_TARGET_S:g} s",
            f"{PEER_START_S} s",
            met=start <= START_TARGET_S,
            note=(
                f"spawn of `ria-calls-bot run` to first 200 on /healthz, median of "
                f"{len(result['starts'])} ({', '.join(f'{s:.2f}' for s in result['starts'])} s; "
                "the first creates the database)"
            ),
        )
    )
    return out
