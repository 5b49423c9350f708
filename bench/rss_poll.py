"""RSS against the size of the poller's answer: `python -m bench.rss_poll`.

The poller reconciles yesterday..today, so each poll reads every call RIA has for those two
days. `make soak` compresses a day of calls into 30 minutes, so its polls' answers grow all
along (to ~2,300 calls). This separates the two things RSS could follow:

- ramp: RAMP_POLLS polls, each after RAMP_STEP more calls were added to the fake RIA;
- hold: HOLD_POLLS polls with no new call: the answers stay the largest, the database stops
  growing.

A leak (something kept per poll or per call) keeps growing in the hold phase; memory that
only follows the largest answer so far stops with it. Answered calls only: no alert, so
nothing but the poll runs. With RSS_POLL_PROBE=1 the service runs under bench/rss_probe.py
(heap, arenas, SQLite's own memory per sample: workdir/rss-probe.jsonl), and the table
(bench/results/rss-poll.md) gets SQLite's memory and Python's allocated blocks too.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, rss_mb, start_service, stop_quietly, webhook_record
from tests.conftest import TG_TOKEN, telegram_env
from tests.fakes.ria import KYIV, FakeRia
from tests.fakes.telegram import FakeTelegram

RESULTS = REPO / "bench" / "results"
RIA_KEY = "RIAKEY" + "p" * 34
RIA_USER = "1505029"
POLL_S = 15  # RIA_POLL_INTERVAL_MINUTES=0.25, the spread off: ~25 polls of the hour's 30
RAMP_POLLS = int(os.environ.get("RAMP_POLLS", "12"))
RAMP_STEP = int(os.environ.get("RAMP_STEP", "250"))
HOLD_POLLS = int(os.environ.get("HOLD_POLLS", "12"))


async def run(workdir: Path) -> list[dict[str, Any]]:
    env: dict[str, Any] = {
        "RIA_API_KEY": RIA_KEY,
        "RIA_USER_ID": RIA_USER,
        "RIA_POLL_INTERVAL_MINUTES": str(POLL_S / 60),
        "RIA_POLL_SPREAD": "off",
        "RIA_MONTHLY_QUOTA": "100000",
        "CALLBACK_WITHIN_MINUTES": "0",
    }
    argv = None
    if os.environ.get("RSS_POLL_PROBE") == "1":
        argv = [sys.executable, "-m", "bench.rss_probe", "run"]
        env |= {"RSS_PROBE_OUT": str(workdir / "rss-probe.jsonl"), "PYTHONPATH": str(REPO)}
    rows: list[dict[str, Any]] = []
    next_id = 70_000_000
    async with (
        FakeTelegram(token=TG_TOKEN) as telegram,
        FakeRia(api_key=RIA_KEY, user_id=RIA_USER, hourly_limit=1000) as ria,
    ):
        env |= {"RIA_API_URL": ria.url, **telegram_env(telegram)}
        service = await start_service(workdir, argv=argv, **env)
        try:
            for phase, polls, step in (("ramp", RAMP_POLLS, RAMP_STEP), ("hold", HOLD_POLLS, 0)):
                for _ in range(polls):
                    now = datetime.now(KYIV)
                    for _ in range(step):
                        next_id += 1
                        ria.add_calls(webhook_record(next_id, "ANSWER", next_id, now))
                    seen = ria.request_count
                    for _ in range(POLL_S * 6):  # the next poll, 3 intervals at most
                        if ria.request_count > seen:
                            break
                        await asyncio.sleep(0.5)
                    await asyncio.sleep(5)  # the poll's answer stored
                    row = {
                        "phase": phase,
                        "answer_calls": len(ria.calls),
                        "polls": ria.request_count,
                        "rss_mb": round(rss_mb(service.pid), 1),
                        "hwm_mb": round(rss_mb(service.pid, "VmHWM"), 1),
                        **_probed(workdir / "rss-probe.jsonl"),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            await stop_quietly(service)
    return rows


def _probed(path: Path) -> dict[str, Any]:
    """The probe's last sample (under RSS_POLL_PROBE=1): SQLite's memory, Python's blocks."""
    try:
        last = json.loads(path.read_text().splitlines()[-1])
    except (OSError, IndexError, ValueError):
        return {}
    return {"sqlite_mb": last["sqlite_mb"], "py_blocks": last["py_blocks"]}


def markdown(rows: list[dict[str, Any]]) -> str:
    probed = any("sqlite_mb" in r for r in rows)
    lines = [
        "# RSS against the poller's answer (bench/rss_poll.py)",
        "",
        f"A poll every {POLL_S} s; ramp: {RAMP_STEP} more answered calls in the fake RIA before"
        " each poll; hold: none (the answer stays the largest).",
        "",
        "| phase | calls in the answer | RSS (MB) | peak RSS (MB) |"
        + (" SQLite (MB) | Python blocks |" if probed else ""),
        "| --- | ---: | ---: | ---: |" + (" ---: | ---: |" if probed else ""),
    ]
    for r in rows:
        cells = [r["phase"], r["answer_calls"], r["rss_mb"], r["hwm_mb"]]
        cells += [r.get("sqlite_mb", ""), r.get("py_blocks", "")] if probed else []
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ria-rss-poll-"))
    print(f"rss_poll in {workdir}", flush=True)
    rows = asyncio.run(run(workdir))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rss-poll.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
