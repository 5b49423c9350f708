"""`make soak`: a realistic day compressed into SOAK_MINUTES (30 by default), then a report.

The service runs as users run it (`ria-calls-bot run`, environment variables) against the
test suite's fake Telegram (flood limits on) and fake RIA (its quota on). Every call is
made in the fake RIA first (RIA has them all) and most are also pushed by webhook, in a
steady trickle with bursts; the poller (every minute) must find the rest. Meanwhile:
commands, presses of the alerts' buttons, a Telegram outage in the middle, one SIGKILL and
restart. The report: calls lost (must be 0), duplicate alerts (at most one per crash and
target), RSS, open fds and database size over time, outbox rows left.

RIA's answer to a poll (yesterday..today) holds the calls of the last SOAK_RIA_WINDOW_S
(300) seconds only, ~400 calls: about two days of a busy account. A call leaves the fake RIA
only once it is stored (so the poller still has to find every call the webhook missed).
With every call of the soak in it instead (SOAK_RIA_WINDOW_S=0), each poll reads all the
calls so far, 2,300 by the end, and RSS follows the largest answer (the poll's peak, ~2.5 kB
a call: bench/rss_poll.py): growth that stops where days roll over, which no soak of a
compressed day reaches.

The database starts with SOAK_HISTORY_DAYS (6) past days of SOAK_HISTORY_PER_DAY (2,000)
calls each, as a service that has run a while has, and `/stats week` is among the commands
(one comes at the start): reading that history fills the writer's SQLite page cache to its
2 MB cap early. From an empty database the cache only fills as the soak's own calls grow
the file, over ~25 minutes: growth that stops, but past any warm-up a 30-minute run can
afford. The RSS verdict: its slope over the first process's last half, after a warm-up.

    SOAK_MINUTES=5 python -m bench.soak      # bench/results/soak-latest.{md,json}
    SOAK_PROBE=1 ...                         # under bench/rss_probe.py: where memory goes
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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import REPO, BenchService, start_service, stop_quietly, webhook_record
from handlers.ria.records import parse_records
from storage.calls import ingest
from storage.db import connect
from tests.conftest import GROUP, TG_TOKEN, telegram_env
from tests.fakes.ria import KYIV, FakeRia
from tests.fakes.telegram import FakeTelegram

RESULTS = REPO / "bench" / "results"
RIA_KEY = "RIAKEY" + "s" * 34
RIA_USER = "1505029"
PHONE = re.compile(r"\+380\d{9}")
# the RSS verdict: the first process's RSS after WARM_SHARE of the soak, its slope over the
# last half of the rest at most FLAT_MB_PER_MIN (3 MB an hour; the growth this replaced was
# 0.4 MB a minute); runs shorter than JUDGE_MINUTES are too short to judge
WARM_SHARE = 0.25
FLAT_MB_PER_MIN = 0.05
JUDGE_MINUTES = 20


class Soak:
    def __init__(self, minutes: float, workdir: Path, window_s: float = 300.0) -> None:
        self.seconds = minutes * 60
        self.window_s = window_s  # RIA answers the calls of this many seconds (0: all)
        self.answer_max = 0  # the most calls RIA held (the largest answer to a poll)
        self.history = 0  # calls of past days in the database before the start
        self.workdir = workdir
        self.rng = random.Random(14)
        self.next_id = 50_000_000
        self.made: list[int] = []  # every call id, in the fake RIA
        self.made_at: dict[int, float] = {}  # call id -> self.t() when made
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
        self.made_at[self.next_id] = self.t()
        if status != "ANSWER":
            self.missed[self.next_id] = f"+38{record['caller_phone']}"
        return record

    async def traffic(self, ria: FakeRia, service: list[BenchService]) -> None:
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
            if self.commands == 0 or self.rng.random() < 0.4:
                commands = ["/stats today", "/stats today", "/missed", "/missed", "/stats week"]
                telegram.push_command(
                    GROUP, "/stats week" if not self.commands else self.rng.choice(commands)
                )
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

    async def ria_window(self, ria: FakeRia, db: Path) -> None:
        """Every 30 s: the calls older than the window that are stored leave the fake RIA."""
        while self.window_s and self.t() < self.seconds:
            await asyncio.sleep(30)
            self.answer_max = max(self.answer_max, len(ria.calls))
            cutoff = self.t() - self.window_s
            old = [r["call_id"] for r in ria.calls if self.made_at[r["call_id"]] < cutoff]
            if not old:
                continue
            with sqlite3.connect(db) as conn:
                stored = {
                    row[0]
                    for row in conn.execute(
                        "SELECT call_id FROM calls WHERE call_id BETWEEN ? AND ?",
                        (min(old), max(old)),
                    )
                }
            gone = stored.intersection(old)
            ria.calls[:] = [r for r in ria.calls if r["call_id"] not in gone]

    async def faults(self, telegram: FakeTelegram, service: list[BenchService]) -> None:
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
        if old.session is not None:
            await old.session.close()
        self.crashes += 1
        self.events.append(f"{self.t()} s: SIGKILL")
        service[0] = await start_service(self.workdir, argv=old.argv, **old_env(old))
        self.events.append(f"{self.t()} s: restarted and healthy")

    async def sample(self, service: list[BenchService]) -> None:
        db = self.workdir / "calls.db"
        while self.t() < self.seconds + 1:
            proc = service[0].proc
            if proc is not None and proc.returncode is None:
                try:
                    self.samples.append(
                        {
                            "pid": proc.pid,
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


def old_env(service: BenchService) -> dict[str, Any]:
    keep = ("TELEGRAM", "RIA", "CALL", "RSS_PROBE", "PYTHON")
    return {k: v for k, v in service.env.items() if k.startswith(keep)}


def probe(workdir: Path) -> tuple[list[str] | None, dict[str, str]]:
    """SOAK_PROBE=1: the service runs under bench/rss_probe.py (where its memory goes, in
    workdir/rss-probe.jsonl); RSS_PROBE_* settings pass through. Else the plain CLI."""
    if os.environ.get("SOAK_PROBE") != "1":
        return None, {}
    env = {k: v for k, v in os.environ.items() if k.startswith("RSS_PROBE_")}
    env |= {"RSS_PROBE_OUT": str(workdir / "rss-probe.jsonl"), "PYTHONPATH": str(REPO)}
    return [sys.executable, "-m", "bench.rss_probe", "run"], env


def seed_history(db: Path, days: int, per_day: int) -> int:
    """`days` past days of `per_day` calls each (a fifth missed, no alert: they are old),
    stored as the service stores them; the callers are not the soak's (numbers apart)."""
    rng = random.Random(7)
    today = datetime.now(KYIV).replace(hour=0, minute=0, second=0, microsecond=0)
    conn = connect(db)
    try:
        for day in range(days, 0, -1):
            records = [
                webhook_record(
                    40_000_000 + day * per_day + i,
                    rng.choice(["ANSWER"] * 4 + ["NOANSWER"]),
                    5_000_000 + rng.randrange(per_day * days),
                    today
                    - timedelta(days=day)
                    + timedelta(seconds=8 * 3600 + i * 36_000 / per_day),
                )
                for i in range(per_day)
            ]
            calls, _ = parse_records(records, KYIV)
            ingest(
                conn,
                calls,
                source="poll",
                received_at=time.time(),
                missed_statuses=("NOANSWER", "CANCEL", "BUSY"),
                targets=[],
                alert_max_age_s=0,
            )
    finally:
        conn.conn.close()
    return days * per_day


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


async def run(
    minutes: float, workdir: Path, window_s: float, history: tuple[int, int] = (6, 2000)
) -> dict[str, Any]:
    seeded = seed_history(workdir / "calls.db", *history)
    soak = Soak(minutes, workdir, window_s)
    soak.history = seeded
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
        argv, probe_env = probe(workdir)
        service: list[BenchService] = [await start_service(workdir, argv=argv, **(env | probe_env))]
        try:
            await asyncio.gather(
                soak.traffic(ria, service),
                soak.users(telegram),
                soak.faults(telegram, service),
                soak.sample(service),
                soak.ria_window(ria, workdir / "calls.db"),
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
        "history_calls": soak.history,
        "ria_window_s": soak.window_s,
        "ria_answer_max": soak.answer_max,
        "rss": rss_trend(soak.samples, soak.seconds),
        "db_mb": round(_size(db) / 2**20, 2),
        "events": soak.events,
        "samples": soak.samples,
    }


def slope(points: list[dict[str, Any]]) -> float:
    """The least-squares slope of the samples' RSS, in MB a minute (0 with fewer than two)."""
    if len(points) < 2:
        return 0.0
    ts = [p["t"] / 60 for p in points]
    ys = [p["rss_mb"] for p in points]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


def _span(points: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "from_s": points[0]["t"] if points else None,
        "to_s": points[-1]["t"] if points else None,
        "first_mb": points[0]["rss_mb"] if points else None,
        "last_mb": points[-1]["rss_mb"] if points else None,
        "max_mb": max(p["rss_mb"] for p in points) if points else None,
        "mb_per_min": round(slope(points), 3),
    }


def rss_trend(samples: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """RSS of the first process (until the SIGKILL) after a warm-up of WARM_SHARE of the
    soak, in two halves: growth that stops shows in the first, a leak in both. `flat`:
    the last half's slope at most FLAT_MB_PER_MIN (None: a run too short to judge). The
    restarted process is reported apart (a warm-up of its own)."""
    pids = list(dict.fromkeys(s["pid"] for s in samples))
    first = [s for s in samples if pids and s["pid"] == pids[0]]
    after = [s for s in first if s["t"] >= seconds * WARM_SHARE]
    mid = (after[0]["t"] + after[-1]["t"]) / 2 if after else 0.0
    late = [s for s in after if s["t"] >= mid]
    judged = seconds >= JUDGE_MINUTES * 60 and len(late) >= 10
    return {
        "warm_up_s": seconds * WARM_SHARE,
        "early": _span([s for s in after if s["t"] < mid]),
        "late": _span(late),
        "restarted": _span([s for s in samples if s["pid"] != pids[0]]) if pids else None,
        "flat": slope(late) <= FLAT_MB_PER_MIN if judged else None,
    }


def passed(r: dict[str, Any]) -> bool:
    """Nothing lost, no duplicate beyond the crash's, nothing left; RSS flat when judged."""
    ok = r["calls_lost"] == 0 and r["duplicates_ok"] and r["outbox_left"] == 0
    return ok and r["rss"]["flat"] is not False


def rss_lines(rss: dict[str, Any]) -> list[str]:
    early, late, again = rss["early"], rss["late"], rss["restarted"]
    verdict = {None: "not judged (a run under 20 minutes)", True: "**flat**", False: "**GROWING**"}
    lines = [
        f"- RSS after warm-up ({rss['warm_up_s']:.0f} s): {verdict[rss['flat']]}: "
        f"{late['mb_per_min']:+.3f} MB/min over {late['from_s']}-{late['to_s']} s "
        f"({late['first_mb']} → {late['last_mb']} MB, at most {FLAT_MB_PER_MIN} to pass); "
        f"before it {early['mb_per_min']:+.3f} MB/min over {early['from_s']}-{early['to_s']} s "
        f"({early['first_mb']} → {early['last_mb']} MB)"
    ]
    if again and again["from_s"] is not None:
        lines.append(
            f"- RSS after the restart: {again['first_mb']} → {again['last_mb']} MB "
            f"(max {again['max_mb']}) over {again['from_s']}-{again['to_s']} s, its own warm-up"
        )
    return lines


def markdown(r: dict[str, Any]) -> str:
    window = (
        f"the calls of the last {r['ria_window_s']:g} s, at most {r['ria_answer_max']}"
        if r["ria_window_s"]
        else "every call of the soak"
    )
    lines = [
        f"# Soak report ({r['minutes']} min{'' if r['minutes'] >= 30 else ', shortened'})",
        "",
        f"Verdict: **{'pass' if passed(r) else 'FAIL'}**",
        "",
        f"- calls made: {r['calls_made']} ({r['missed_calls']} missed); webhooks: {r['webhooks']}"
        f"; past days' calls in the database at the start: {r['history_calls']}",
        f"- calls lost: **{r['calls_lost']}** {r['lost_ids'] or ''}",
        f"- missed calls alerted: {r['missed_alerted']}; duplicate alerts: "
        f"**{r['duplicate_alerts']}** (crashes: {r['crashes']}, one target)",
        f"- commands: {r['commands']}; button presses: {r['button_presses']}",
        f"- RIA requests: {r['ria_requests']} ({r['ria_429']} answered 429); its answer: {window}",
        f"- outbox left pending: **{r['outbox_left']}**",
        *rss_lines(r["rss"]),
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
    window_s = float(os.environ.get("SOAK_RIA_WINDOW_S", "300"))
    history = (
        int(os.environ.get("SOAK_HISTORY_DAYS", "6")),
        int(os.environ.get("SOAK_HISTORY_PER_DAY", "2000")),
    )
    workdir = Path(tempfile.mkdtemp(prefix="ria-soak-"))
    print(f"soak: {minutes:g} min in {workdir}", flush=True)
    result = asyncio.run(run(minutes, workdir, window_s, history))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak-latest.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (RESULTS / "soak-latest.md").write_text(text)
    print(text)
    return 0 if passed(result) else 1


if __name__ == "__main__":
    sys.exit(main())
