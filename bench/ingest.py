"""Row 2: ingest throughput. Webhook requests a second, each answered only after its call is
committed (WAL, synchronous=FULL, group commit), against a bare aiohttp server that only
parses the JSON, measured the same way in the same run.

Load: 32 keep-alive connections, each sending its next request as soon as the last is
answered, for a fixed time after a warm-up, in rounds that alternate between the two
servers (this machine's speed drifts by tens of percent from one run to the next); the
medians are reported. Every request is one call with its own call_id; one in
`missed_every` is missed, so alerts are queued (for the console: no chat configured, as
`make run` starts) and delivered while the load runs. `wrk` (one thread, a Lua script for
the unique ids) when it is installed; otherwise an aiohttp client in this process, which is
slower than wrk and so understates both servers. Afterwards the service is stopped and
every acknowledged call is looked for in its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import REPO, percentile, start_service, stop_quietly
from bench.report import PEER_WEBHOOKS_S, Row
from tests.fakes.ria import make_call
from tests.service import free_port

RATIO_TARGET = 0.6
P99_TARGET_MS = 20.0
LUA = Path(__file__).with_name("calls.lua")
# call_ids: round n's measured calls start at MEASURED_IDS + n * ROUND_IDS (wrk adds 1e8 per
# thread, and uses one), its warm-up calls WARMUP_IDS above that
MEASURED_IDS = 2_000_000_000
ROUND_IDS = 1_000_000_000
WARMUP_IDS = 500_000_000


@dataclass
class Params:
    connections: int = 32
    seconds: float = 6.0  # per round and server
    rounds: int = 3
    warmup_s: float = 2.0  # before each round
    missed_every: int = 4
    tool: str = "auto"  # auto | wrk | aiohttp
    # one more round each at this many connections (0: none): the row that shows the
    # group commit holding up when many more requests wait at once
    wide_connections: int = 256


def pick_tool(choice: str) -> str:
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "aiohttp"
    return choice


async def wrk_load(url: str, p: Params, seconds: float, first_id: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{p.connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(LUA),
        url,
        "--",
        str(first_id),
        str(p.missed_every),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    text = out.decode()
    if proc.returncode != 0 or "RESULT" not in text:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text}\n{err.decode()}")
    ok = other = accepted = 0
    for line in text.splitlines():
        if line.startswith("RESULT"):
            a, b, c = (int(x) for x in line.split()[1:])
            ok, other, accepted = ok + a, other + b, accepted + c
    rate = float(re.search(r"Requests/sec:\s*([\d.]+)", text)[1])  # type: ignore[index]
    pct = {
        q: _wrk_ms(m[1])
        for q in ("50", "99")
        if (m := re.search(rf"^\s+{q}(?:\.000)?%\s+(\S+)", text, re.M))
    }
    return {
        "rate": rate,
        "ok": ok,
        "errors": other,
        "accepted": accepted,
        "p50_ms": pct.get("50"),
        "p99_ms": pct.get("99"),
    }


def _wrk_ms(text: str) -> float:
    """wrk's '1.85ms' / '512.00us' / '1.02s' in ms."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return round(float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit], 3)


async def _aiohttp_load(url: str, p: Params, seconds: float, first_id: int) -> dict[str, Any]:
    """The same load from this process: `connections` workers, one request in flight each."""
    ids = itertools.count(first_id + 1)
    ok = errors = accepted = 0
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=p.connections)
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, errors, accepted
        while time.monotonic() < deadline:
            call_id = next(ids)
            status = "NOANSWER" if call_id % p.missed_every == 0 else "ANSWER"
            record = make_call(call_id, status, caller=f"067{call_id % 10_000_000:07d}")
            started = time.monotonic()
            async with session.post(url, json=record) as resp:
                body = await resp.json(content_type=None)
            latencies.append(time.monotonic() - started)
            if resp.status == 200:
                ok += 1
                accepted += body.get("accepted") == 1
            else:
                errors += 1

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(p.connections)))
    elapsed = time.monotonic() - started
    return {
        "rate": round(ok / elapsed, 1),
        "ok": ok,
        "errors": errors,
        "accepted": accepted,
        "p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 99) * 1000, 3),
    }


async def _load(url: str, p: Params, tool: str, first_id: int) -> dict[str, Any]:
    generate = wrk_load if tool == "wrk" else _aiohttp_load
    warm = 0
    if p.warmup_s > 0:
        warmup = await generate(url, p, p.warmup_s, WARMUP_IDS + first_id)
        warm = warmup["ok"] + warmup["errors"]
    result = await generate(url, p, p.seconds, first_id)
    result["warmup_requests"] = warm
    return result


@contextlib.asynccontextmanager
async def bare_server(workdir: Path) -> AsyncIterator[str]:
    """`python -m bench.bare_server` on a free port; yields its webhook URL."""
    port = free_port()
    log = (workdir / "bare.out").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_server",
        "--port",
        str(port),
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    try:
        await _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}/webhooks/ria/bare"
    finally:
        proc.terminate()
        await proc.wait()
        log.close()


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"bare server exited {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError("bare server did not listen")


def _count_calls(db: Path, first_id: int) -> int:
    """Calls of one measured round in the database (warm-up calls have other ids)."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT COUNT(*) FROM calls WHERE call_id > ? AND call_id < ?",
            (first_id, first_id + WARMUP_IDS),
        ).fetchone()[0]


async def run(params: Params, workdir: Path) -> dict[str, Any]:
    tool = pick_tool(params.tool)
    workdir = workdir / "ingest"
    workdir.mkdir(parents=True, exist_ok=True)
    bare_rounds: list[dict[str, Any]] = []
    service_rounds: list[dict[str, Any]] = []
    async with bare_server(workdir) as bare_url:
        service = await start_service(workdir)
        try:
            # rounds alternate between the two servers, so that a slow patch of the
            # (shared, virtual) machine costs both alike; medians are reported
            for n in range(params.rounds):
                bare_rounds.append(await _load(bare_url, params, tool, _first_id(n)))
                before = thread_cpu(service.pid)
                measured = await _load(service.webhook_url, params, tool, _first_id(n))
                measured["cpu_us"] = cpu_per_request(before, thread_cpu(service.pid), measured)
                service_rounds.append(measured)
            wide = await _wide_rounds(bare_url, service.webhook_url, params, tool)
        finally:
            await stop_quietly(service)
    db = Path(service.env["DATABASE_PATH"])
    stored = sum(_count_calls(db, _first_id(n)) for n in range(params.rounds))
    accepted = sum(r["accepted"] for r in service_rounds)
    bare, measured = _median_round(bare_rounds), _median_round(service_rounds)
    return {
        "tool": tool,
        "connections": params.connections,
        "seconds": params.seconds,
        "rounds": params.rounds,
        "missed_every": params.missed_every,
        "bare": bare,
        "service": measured,
        "bare_rates": [r["rate"] for r in bare_rounds],
        "service_rates": [r["rate"] for r in service_rounds],
        "ratio": round(measured["rate"] / bare["rate"], 3) if bare["rate"] else None,
        "acknowledged": accepted,
        "stored": stored,
        # every call acknowledged with "accepted": 1 must be in the database
        "lost": max(0, accepted - stored),
        "errors": sum(r["errors"] for r in service_rounds),
        "wide": wide,
    }


async def _wide_rounds(
    bare_url: str, service_url: str, params: Params, tool: str
) -> dict[str, Any] | None:
    """One round each, bare then service, at `wide_connections` (after the main rounds,
    so its calls are not counted in theirs: ids from a range of their own)."""
    if not params.wide_connections:
        return None
    wide = replace(params, connections=params.wide_connections)
    first = _first_id(params.rounds)
    bare = await _load(bare_url, wide, tool, first)
    service = await _load(service_url, wide, tool, first)
    return {
        "connections": params.wide_connections,
        "bare": bare,
        "service": service,
        "ratio": round(service["rate"] / bare["rate"], 3) if bare["rate"] else None,
    }


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by each thread of a process ("loop": the main thread, which
    runs the event loop; the others by thread id), from /proc; {} where there is none.
    The warm-up's share is included: callers take the difference around a measured load."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue  # a thread that ended
        fields = stat[stat.rindex(")") + 2 :].split()
        name = "loop" if int(tid) == pid else tid
        out[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def cpu_per_request(
    before: dict[str, float], after: dict[str, float], load: dict[str, Any]
) -> dict[str, int] | None:
    """The service's CPU per answered request, in µs: the event loop's thread, the other
    threads together (the SQLite writer, the checkpointer), and the total. Steadier than
    the rate on a shared machine: a slow patch lowers the rate more than the work per
    request. Includes the warm-up run just before the measured one (same kind of load)."""
    answered = load["ok"] + load["errors"]
    if not before or not after or not answered:
        return None
    used = {k: after[k] - before.get(k, 0.0) for k in after}
    loop = used.pop("loop", 0.0)
    others = sum(used.values())
    warm = load.get("warmup_requests", 0)
    n = answered + warm
    return {
        "loop": round(loop / n * 1e6),
        "threads": round(others / n * 1e6),
        "total": round((loop + others) / n * 1e6),
    }


def _first_id(round_number: int) -> int:
    return MEASURED_IDS + round_number * ROUND_IDS


def _median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate (the lower middle one of an even count)."""
    ordered = sorted(rounds, key=lambda r: r["rate"])
    return ordered[(len(ordered) - 1) // 2]


def rows(result: dict[str, Any]) -> list[Row]:
    service, bare = result["service"], result["bare"]
    ratio = result["ratio"] or 0.0
    main = [
        Row(
            2,
            "ingest: webhooks/s, durable commit each",
            f"{service['rate']:,.0f}/s",
            "—",
            f"{PEER_WEBHOOKS_S}/s",
            note=(
                f"{result['tool']}, {result['connections']} connections, median of "
                f"{result['rounds']} rounds of {result['seconds']:g} s "
                f"({', '.join(f'{r:,.0f}' for r in result['service_rates'])}); 1 call in "
                f"{result['missed_every']} missed, alerts to the console (no chat configured); "
                f"answered in {service['p50_ms']} ms p50 / {service['p99_ms']} ms p99; "
                f"{_cpu_note(service.get('cpu_us'))}"
                f"{result['acknowledged']:,} acknowledged, {result['stored']:,} in the "
                f"database, {result['lost']} lost, {result['errors']} errors"
            ),
        ),
        Row(
            2,
            "ingest vs bare aiohttp (JSON parse only)",
            f"{ratio:.2f}",
            f"≥ {RATIO_TARGET}",
            met=ratio >= RATIO_TARGET and result["lost"] == 0,
            note=(
                f"bare handler: {bare['rate']:,.0f}/s "
                f"({', '.join(f'{r:,.0f}' for r in result['bare_rates'])}), same load, "
                "rounds alternating with the service's"
            ),
        ),
    ]
    return main + _extra_rows(result)


def _cpu_note(cpu: dict[str, int] | None) -> str:
    if not cpu:
        return ""
    return (
        f"service CPU per webhook {cpu['total']} µs (event loop {cpu['loop']}, "
        f"writer and other threads {cpu['threads']}); "
    )


def _extra_rows(result: dict[str, Any]) -> list[Row]:
    service = result["service"]
    p99 = service.get("p99_ms")
    out = [
        Row(
            2,
            f"ingest p99 answer time, {result['connections']} connections",
            f"{p99} ms",
            f"≤ {P99_TARGET_MS:g} ms",
            met=p99 is not None and p99 <= P99_TARGET_MS,
            note=f"the median round's; bare handler: {result['bare'].get('p99_ms')} ms",
        )
    ]
    wide = result.get("wide")
    if wide:
        ws, wb = wide["service"], wide["bare"]
        out.append(
            Row(
                2,
                f"ingest at {wide['connections']} connections",
                f"{ws['rate']:,.0f}/s",
                "—",
                note=(
                    f"one round of {result['seconds']:g} s; {wide['ratio']} of the bare "
                    f"handler's {wb['rate']:,.0f}/s; answered in {ws['p50_ms']} ms p50 / "
                    f"{ws['p99_ms']} ms p99 (bare {wb['p50_ms']} / {wb['p99_ms']} ms); "
                    f"{ws['errors']} errors"
                ),
            )
        )
    return out
