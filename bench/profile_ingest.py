"""Where the ingest path spends its time: the service under row 2's load, sampled by py-spy.

`python -m bench.profile_ingest --out DIR [--seconds 10] [--connections 32] [--name before]`
starts the service as row 2 does (the real CLI, no chat configured: alerts to the console),
loads it with wrk, and records it with py-spy twice over the same load: a flame graph
(DIR/flame-ingest-NAME.svg) and the raw stacks, which it sums into a table of the frames
that take the most of each thread's samples (DIR/ingest-profile-NAME.txt). Needs wrk and
py-spy (in .venv/bin); py-spy needs ptrace rights over the service (same user suffices on
most machines).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import start_service, stop_quietly
from bench.ingest import Params, wrk_load

PY_SPY = Path(sys.executable).with_name("py-spy")


async def _wrk(url: str, connections: int, seconds: float, first_id: int) -> str:
    """Row 2's load (bench/ingest.py runs wrk the same way), its figures as one line."""
    found = await wrk_load(url, Params(connections=connections), seconds, first_id)
    return json.dumps(found)


async def _spy(pid: int, seconds: float, fmt: str, out: Path, *extra: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(PY_SPY),
        "record",
        *extra,
        "-p",
        str(pid),
        "-d",
        str(round(seconds)),
        "-r",
        "200",
        "--threads",
        "--idle",
        "-f",
        fmt,
        "-o",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()


def summarise(raw: Path, top: int = 30) -> str:
    """py-spy's raw (collapsed) stacks as text: per thread, how busy it was and the
    functions taking the most of its busy samples, by their own time (self) and with what
    they call (inclusive)."""
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    idle: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = frames[0]
        totals[thread] += count
        if _waiting(frames[-1]):
            idle[thread] += count
            continue
        functions = [_function(f) for f in frames[1:]]
        for function in dict.fromkeys(functions):
            inclusive[thread][function] += count
        own[thread][functions[-1]] += count
    lines: list[str] = []
    for thread, total in totals.most_common():
        if total < 20:
            continue
        busy = total - idle[thread]
        lines.append(f"## {thread}: {total} samples, busy {100 * busy / total:.0f} %")
        lines.append("self (share of busy samples):")
        for frame, n in own[thread].most_common(top):
            lines.append(f"  {100 * n / max(busy, 1):5.1f} %  {frame}")
        lines.append("inclusive (share of busy samples):")
        for frame, n in inclusive[thread].most_common(top * 2):
            lines.append(f"  {100 * n / max(busy, 1):5.1f} %  {frame}")
        lines.append("")
    return "\n".join(lines)


# a thread blocked here is waiting for work, not doing it
_IDLE = (
    "select (selectors.py",
    "_worker (concurrent/futures/thread.py:81)",
    "wait (threading.py",
    "Event.wait (threading.py",
    "Condition.wait (threading.py",
)


def _waiting(leaf: str) -> bool:
    return any(mark in leaf for mark in _IDLE)


def _function(frame: str) -> str:
    """'handle (handlers/ria/webhook.py:97)' -> 'handle (handlers/ria/webhook.py)'."""
    return re.sub(r":\d+\)$", ")", _short(frame))


def _short(frame: str) -> str:
    # "handle (handlers/ria/webhook.py:97)" -> keep; strip site-packages prefixes
    return frame.replace(str(Path(sys.prefix)), "venv").split("site-packages/")[-1]


async def main_async(args: argparse.Namespace) -> None:
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        service = await start_service(Path(tmp))
        try:
            url = service.webhook_url
            await _wrk(url, args.connections, 3, 3_000_000_000)  # warm-up
            svg = out / f"flame-ingest-{args.name}.svg"
            raw = out / f"flame-ingest-{args.name}.raw"
            gil = out / f"flame-ingest-{args.name}-gil.raw"
            load = asyncio.create_task(_wrk(url, args.connections, args.seconds + 2, 3_100_000_000))
            await asyncio.sleep(1)
            await _spy(service.pid, args.seconds, "flamegraph", svg)
            await load
            load = asyncio.create_task(_wrk(url, args.connections, args.seconds + 2, 3_200_000_000))
            await asyncio.sleep(1)
            await _spy(service.pid, args.seconds, "raw", raw)
            text = await load
            # only the thread holding the GIL: where the Python time goes, without the time
            # a thread spends waiting for its turn
            load = asyncio.create_task(_wrk(url, args.connections, args.seconds + 2, 3_300_000_000))
            await asyncio.sleep(1)
            await _spy(service.pid, args.seconds, "raw", gil, "--gil")
            await load
        finally:
            await stop_quietly(service)
    summary = summarise(raw) + "\n# holding the GIL only\n" + summarise(gil)
    (out / f"ingest-profile-{args.name}.txt").write_text(text + "\n" + summary)
    print(text)
    print(summary)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ingest")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="now")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk") or not PY_SPY.exists():
        sys.exit("needs wrk and .venv/bin/py-spy")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
