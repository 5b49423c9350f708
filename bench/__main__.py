"""`make bench` / `python -m bench`: every row in one run, one table, one JSON file.

    python -m bench             # the full run, ~4 min on 2 cores: bench/results/latest.json
    python -m bench --readme    # ... and the table into README.md's Performance section
    python -m bench --quick --out /tmp/b.json    # tiny sizes: checks the code, not speed
    python -m bench --only latency,quota --out /tmp/b.json

Generated databases and service output go to a temporary folder (kept with --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import burst, callback, footprint, ingest, latency, quota, routing, stats
from bench.common import REPO, now_iso
from bench.machine import describe, one_line
from bench.report import Row, table, update_readme, write_json

RESULTS = REPO / "bench" / "results" / "latest.json"
README = REPO / "README.md"

# The order they run in: the idle footprint first, on a quiet machine; the stats row's
# big database last but one, so its page cache does not crowd the services' memory.
MODULES: dict[str, Any] = {
    "footprint": footprint,
    "latency": latency,
    "ingest": ingest,
    "burst": burst,
    "stats": stats,
    "quota": quota,
    "callback": callback,
    "routing": routing,
}

# Tiny sizes for `--quick` and the smoke test: every code path, a few seconds in all.
QUICK: dict[str, Any] = {
    "footprint": footprint.Params(starts=1, idle_s=0.2),
    "latency": latency.Params(rate=20, seconds=0.5, warmup=2, drain_s=10),
    "ingest": ingest.Params(
        connections=4, seconds=1, rounds=1, warmup_s=0, missed_every=2, wide_connections=8
    ),
    "burst": burst.Params(calls=8, seconds=0.4, timeout_s=20),
    "stats": stats.Params(
        calls=3000, days=40, repeats=1, summary_args=["--calls", "3000", "--runs", "1"]
    ),
    "quota": quota.Params(days=2, low_interval_min=1, low_days=0.25),
    "callback": callback.Params(presses=3, busy=4, gap_s=0.2, timeout_s=60),
    "routing": routing.Params(calls=200, rounds=1),
}


def table_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, module in MODULES.items():
        result = results.get(name)
        if result is None:
            continue
        if "error" in result:
            rows.append(Row(_number(name), name, "error", note=result["error"]))
        elif name == "footprint":
            burst_result = results.get("burst")
            ok = burst_result if burst_result and "error" not in burst_result else None
            rows += footprint.rows(result, ok)
        else:
            rows += module.rows(result)
    return rows


def _number(name: str) -> int:
    return {
        "latency": 1,
        "ingest": 2,
        "burst": 3,
        "stats": 4,
        "footprint": 5,
        "quota": 6,
        "callback": 7,
        "routing": 8,
    }[name]


async def run_all(
    names: list[str], params: dict[str, Any], workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Run the named rows in MODULES order; a row that fails is recorded, not fatal."""
    results: dict[str, Any] = {}
    for name in [n for n in MODULES if n in names]:
        module = MODULES[name]
        log(f"{name}: running ({params[name]})")
        started = time.monotonic()
        try:
            run: Callable[[Any, Path], Awaitable[dict[str, Any]]] = module.run
            result = await run(params[name], workdir)
        except Exception as exc:
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        result["params"] = asdict(params[name])
        result["elapsed_s"] = round(time.monotonic() - started, 1)
        log(f"{name}: done in {result['elapsed_s']} s")
        results[name] = result
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--only", default="", help="comma-separated rows: " + ",".join(MODULES))
    parser.add_argument("--out", type=Path, help=f"JSON results (default {RESULTS})")
    parser.add_argument("--readme", action="store_true", help="update README's Performance")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(MODULES)
    unknown = set(names) - MODULES.keys()
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    partial = args.quick or set(names) != MODULES.keys()
    if partial and args.out is None:
        parser.error("--quick and --only need --out: the committed results are a full run")
    if partial and args.readme:
        parser.error("--readme takes a full run")
    params = QUICK if args.quick else {n: m.Params() for n, m in MODULES.items()}

    def log(line: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    machine = describe()
    started_at, started = now_iso(), time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ria-bench-"))
    try:
        results = asyncio.run(run_all(names, params, workdir, log))
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    duration = time.monotonic() - started
    rows = table_rows(results)
    text = table(rows)
    heading = f"ria-calls-bot benchmarks, {started_at}, {duration / 60:.1f} min" + (
        " (--quick: tiny sizes, figures mean nothing)" if args.quick else ""
    )
    print(f"\n{heading}\nMachine: {one_line(machine)}\n\n{text}\n")
    out = args.out or RESULTS
    meta = {"started_at": started_at, "duration_s": round(duration, 1), "quick": args.quick}
    write_json(out, machine | {"run": meta}, rows, results)
    print(f"results: {out}")
    if args.readme:
        update_readme(README, readme_section(machine, started_at, duration, text))
        print(f"updated: {README}")
    return 1 if any("error" in r for r in results.values()) else 0


def readme_section(machine: dict[str, Any], started_at: str, duration: float, text: str) -> str:
    return (
        f"Measured by `make bench` on {started_at[:10]} in {duration / 60:.1f} min, on "
        f"{one_line(machine)}.\n\n{text}"
    )


if __name__ == "__main__":
    sys.exit(main())
