"""`make soak`: a realistic day compressed into SOAK_MINUTES (30 by default), then a report.

The service runs as users run it (`ria-calls-bot run`, environment variables) against the
test suite's fake Telegram (flood limits on) and fake RIA (its quota on). Every call is
made in the fake RIA first (RIA has them all) and most are also pushed by webhook, in a
steady trickle with bursts; the poller (every minute) must find the rest. Meanwhile:
commands, presses of the alerts' buttons, a Telegram outage in the middle, one SIGKILL and
restart. The report: calls lost (must be 0), duplicate alerts (at most one per crash and
target), RSS, open fds and database size over time, outbox rows left.

    SOAK_MINUTES=5 python -m bench.soak      # bench/results/soak-latest.{md,json}
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import REPO, start_service, stop_quietly, webhook_record
from tests.conftest import GROUP, TG_TOKEN, telegram_env
from tests.fakes.ria import KYIV, FakeRia
from tests.fakes.telegram import FakeTelegram
from tests.service import Service

RESULTS = REPO / "bench" / "results"
RIA_KEY = "RIAKEY" + "s" * 34
RIA_USER = "1505029"
PHONE = re.compile(r"\+380\d{9}")


class Soak:
    def __init__(self, minutes: float, workdir: Path) -> None:
        self.seconds = minutes * 60
        self.workdir = workdir
        self.rng = random.Random(14)
        self.next_id = 50_000_000
        self.made: list[int] = []  # every call id, in the fake RIA
        self.missed: dict[int, str] = {}  # missed call id -> caller's number
        self.webhooks = Counter[str]()
        self.samples: list[dict[str, Any]] = []
        self.events: list[str] = []
        self.crashes = 0
        self.presses = self.commands = 0
        self.started = time.monotonic()

    def t(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def new_call(self, ria: FakeRia) -> dict[str, Any]:
        self.next_id += 1
        status = self.rng.choice(["ANSWER", "ANSWER", "NOANSWER", "BUSY", "CANCEL"])
        record = webhook_record(self.next_id, status, self.next_id, datetime.now(KYIV))
        ria.add_calls(record)
        self.made.append(self.next_id)
        if status != "ANSWER":
            self.missed[self.next_id] = f"+38{record['caller_phone']}"
        return record

    async def traffic(self, ria: FakeRia, service: list[Service]) -> None:
        """~1 call a second, a burst of 20-40 every ~90 s; 1 in 10 never comes by webhook."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            next_burst = 60.0
            while self.t() < self.seconds:
                n = 1
                if self.t() >= next_burst:
                    n, next_burst = self.rng.randint(20, 40), self.t() + self.rng.uniform(60, 120)
                for _ in range(n):
                    record = self.new_call(ria)
                    if self.rng.random() < 0.1:
                        self.webhooks["skipped"] += 1
                        continue
                    try:
                        async with http.post(service[0].webhook_url, json=record) as resp:
                            self.webhooks[str(resp.status)] += 1
                    except (TimeoutError, aiohttp.ClientError):
                        self.webhooks["no answer"] += 1  # the poller must find it
                await asyncio.sleep(self.rng.uniform(0.5, 1.5))

    async def users(self, telegram: FakeTelegram) -> None:
        """A command every ~20 s; a press of a random alert's button every ~10 s."""
        while self.t() < self.seconds:
            await asyncio.sleep(self.rng.uniform(5, 15))
            if self.rng.random() < 0.4:
                telegram.push_command(GROUP, self.rng.choice(["/stats today", "/missed"]))
                self.commands += 1
                continue
            buttons = [
                (m["message_id"], b["callback_data"])
                for m in telegram.messages_for(GROUP)[-50:]
                if m.get("message_id") and isinstance(m.get("reply_markup"), dict)
                for row in m["reply_markup"].get("inline_keyboard", [])
                for b in row
                if b.get("callback_data")
            ]
            if buttons:
                telegram.push_callback_query(GROUP, *self.rng.choice(buttons))
                self.presses += 1

    async def faults(self, telegram: FakeTelegram, service: list[Service]) -> None:
        outage = 120.0 if self.seconds >= 600 else self.seconds / 5
        await asyncio.sleep(self.seconds / 2 - outage / 2)
        telegram.mode = "down_500"
        self.events.append(f"{self.t()} s: Telegram down (HTTP 500) for {outage:.0f} s")
        await asyncio.sleep(outage)
        telegram.mode = "ok"
        self.events.append(f"{self.t()} s: Telegram back")
        await asyncio.sleep(max(0.0, self.seconds * 0.75 - self.t()))
        old = service[0]
        assert old.proc is not None
        old.proc.send_signal(signal.SIGKILL)
        await old.proc.wait()
        self.crashes += 1
        self.events.append(f"{self.t()} s: SIGKILL")
        service[0] = await start_service(self.workdir, **old_env(old))
        self.events.append(f"{self.t()} s: restarted and healthy")

    async def sample(self, service: list[Service]) -> None:
        db = self.workdir / "calls.db"
        while self.t() < self.seconds + 1:
            proc = service[0].proc
            if proc is not None and proc.returncode is None:
                try:
                    self.samples.append(
                        {
                            "t": self.t(),
                            "rss_mb": _status_mb(proc.pid, "VmRSS"),
                            "fds": len(os.listdir(f"/proc/{proc.pid}/fd")),
                            "db_mb": round(_size(db) / 2**20, 2),
                        }
                    )
                except OSError:
                    pass
            await asyncio.sleep(10)


def _is_alert(text: str) -> bool:
    """An alert (one missed call, or several coalesced), not a /missed answer, which lists
    the same numbers under another title."""
    first = text.split("\n", 1)[0]
    return first.startswith("🔴") and ("Пропущен" in first or "issed call" in first)


def old_env(service: Service) -> dict[str, Any]:
    return {k: v for k, v in service.env.items() if k.startswith(("TELEGRAM", "RIA", "CALL"))}


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


async def _drained(db: Path, timeout: float) -> int:
    """Wait until the outbox has no pending row (or the timeout); the pending count."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            left = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        if left == 0 or time.monotonic() > deadline:
            return int(left)
        await asyncio.sleep(1)


async def _all_stored(db: Path, ids: list[int], timeout: float) -> list[int]:
    """The ids not in the database, once they all are or at the timeout (polls catch up)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(db) as conn:
            have = {r[0] for r in conn.execute("SELECT call_id FROM calls")}
        lost = [i for i in ids if i not in have]
        if not lost or time.monotonic() > deadline:
            return lost
        await asyncio.sleep(2)


async def run(minutes: float, workdir: Path) -> dict[str, Any]:
    soak = Soak(minutes, workdir)
    telegram_fake = FakeTelegram(token=TG_TOKEN)
    async with telegram_fake as telegram, FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        env: dict[str, Any] = {
            **telegram_env(telegram),
            "RIA_API_KEY": RIA_KEY,
            "RIA_USER_ID": RIA_USER,
            "RIA_API_URL": ria.url,
            "RIA_POLL_INTERVAL_MINUTES": "1",
            "CALLBACK_WITHIN_MINUTES": "0",  # reminders would count as repeated alerts
        }
        service: list[Service] = [await start_service(workdir, **env)]
        try:
            await asyncio.gather(
                soak.traffic(ria, service),
                soak.users(telegram),
                soak.faults(telegram, service),
                soak.sample(service),
            )
            db = workdir / "calls.db"
            # the poller finds the rest: a poll every two minutes (RIA's 30 an hour spread
            # over it), at most 6 minutes apart where the hour's 30 are spent (HOUR_LEAD)
            lost = await _all_stored(db, soak.made, 420)
            left = await _drained(db, 120)
        finally:
            await stop_quietly(service[0])
        per_number = Counter(
            number
            for m in telegram.messages_for(GROUP)
            if m["method"] == "sendMessage" and _is_alert(m.get("plain_text") or "")
            for number in set(PHONE.findall(m.get("plain_text") or m.get("text") or ""))
        )
        alerted = {n for n in soak.missed.values() if per_number[n]}
        duplicates = sum(per_number[n] - 1 for n in alerted if per_number[n] > 1)
        ria_requests, ria_429 = ria.request_count, ria.rate_limited
    return report_data(soak, lost, left, duplicates, len(alerted), ria_requests, ria_429, db)


def report_data(
    soak: Soak,
    lost: list[int],
    left: int,
    duplicates: int,
    alerted: int,
    ria_requests: int,
    ria_429: int,
    db: Path,
) -> dict[str, Any]:
    warm = [s for s in soak.samples if s["t"] >= soak.seconds * 0.2]
    rss = [s["rss_mb"] for s in warm] or [0.0]
    return {
        "minutes": round(soak.seconds / 60, 1),
        "calls_made": len(soak.made),
        "missed_calls": len(soak.missed),
        "webhooks": dict(soak.webhooks),
        "calls_lost": len(lost),
        "lost_ids": lost[:20],
        "missed_alerted": alerted,
        "duplicate_alerts": duplicates,
        "crashes": soak.crashes,
        "duplicates_ok": duplicates <= soak.crashes,  # one target
        "commands": soak.commands,
        "button_presses": soak.presses,
        "ria_requests": ria_requests,
        "ria_429": ria_429,
        "outbox_left": left,
        "rss_after_warmup_mb": {"first": rss[0], "last": rss[-1], "max": max(rss)},
        "db_mb": round(_size(db) / 2**20, 2),
        "events": soak.events,
        "samples": soak.samples,
    }


def markdown(r: dict[str, Any]) -> str:
    ok = r["calls_lost"] == 0 and r["duplicates_ok"] and r["outbox_left"] == 0
    lines = [
        f"# Soak report ({r['minutes']} min{'' if r['minutes'] >= 30 else ', shortened'})",
        "",
        f"Verdict: **{'pass' if ok else 'FAIL'}**",
        "",
        f"- calls made: {r['calls_made']} ({r['missed_calls']} missed); webhooks: {r['webhooks']}",
        f"- calls lost: **{r['calls_lost']}** {r['lost_ids'] or ''}",
        f"- missed calls alerted: {r['missed_alerted']}; duplicate alerts: "
        f"**{r['duplicate_alerts']}** (crashes: {r['crashes']}, one target)",
        f"- commands: {r['commands']}; button presses: {r['button_presses']}",
        f"- RIA requests: {r['ria_requests']} ({r['ria_429']} answered 429)",
        f"- outbox left pending: **{r['outbox_left']}**",
        f"- RSS after warm-up: first {r['rss_after_warmup_mb']['first']} MB, last "
        f"{r['rss_after_warmup_mb']['last']} MB, max {r['rss_after_warmup_mb']['max']} MB",
        f"- database (with WAL): {r['db_mb']} MB",
        "",
        "Events: " + "; ".join(r["events"]),
        "",
        "| t (s) | RSS (MB) | open fds | database (MB) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {s['t']} | {s['rss_mb']} | {s['fds']} | {s['db_mb']} |" for s in r["samples"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    workdir = Path(tempfile.mkdtemp(prefix="ria-soak-"))
    result = asyncio.run(run(minutes, workdir))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak-latest.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (RESULTS / "soak-latest.md").write_text(text)
    print(text)
    ok = result["calls_lost"] == 0 and result["duplicates_ok"] and result["outbox_left"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
