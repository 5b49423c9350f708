"""The soak's RSS verdict (bench/soak.py) and the memory probe's /proc reading (bench/rss_probe.py).

The verdict must tell growth that stops (warm-up: RIA's answer filling, SQLite's page cache
reaching its cap) from growth that goes on, and must keep the restarted process apart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import rss_probe
from bench.soak import FLAT_MB_PER_MIN, passed, rss_trend, slope

MINUTES = 30


def samples(rss_at: Any, pid: int = 1, start: float = 0, end: float = 1350) -> list[dict]:
    return [
        {"pid": pid, "t": float(t), "rss_mb": round(rss_at(t), 1), "fds": 15, "db_mb": 1.0}
        for t in range(int(start), int(end), 10)
    ]


def result(trend: dict[str, Any], lost: int = 0) -> dict[str, Any]:
    return {"calls_lost": lost, "duplicates_ok": True, "outbox_left": 0, "rss": trend}


def test_slope_is_mb_a_minute() -> None:
    points = [{"t": t, "rss_mb": 80 + 0.5 * t / 60} for t in (0, 60, 120, 600)]
    assert abs(slope(points) - 0.5) < 1e-9
    assert slope(points[:1]) == 0.0


def test_growth_that_stops_in_warm_up_is_flat() -> None:
    # +8 MB over the first 10 minutes, then a plateau with noise of a few hundred kB
    def rss(t: float) -> float:
        return 79 + min(t, 600) / 75 + (0.3 if int(t / 10) % 7 == 0 else 0)

    trend = rss_trend(samples(rss), MINUTES * 60)
    assert trend["flat"] is True
    assert passed(result(trend))


def test_steady_growth_fails_however_small_its_start() -> None:
    # the first soak's figure: 0.4 MB a minute all along
    trend = rss_trend(samples(lambda t: 79 + 0.4 * t / 60), MINUTES * 60)
    assert trend["flat"] is False
    assert trend["late"]["mb_per_min"] > FLAT_MB_PER_MIN
    assert not passed(result(trend))


def test_restart_is_reported_apart_and_not_judged() -> None:
    # flat first process; the restarted one warms up again from a lower RSS
    first = samples(lambda t: 85.0)
    again = samples(lambda t: 78 + (t - 1350) / 60, pid=2, start=1360, end=1800)
    trend = rss_trend(first + again, MINUTES * 60)
    assert trend["flat"] is True
    assert trend["late"]["to_s"] < 1350
    assert trend["restarted"]["first_mb"] == 78.2
    assert trend["restarted"]["last_mb"] > 84


def test_short_run_is_not_judged_but_other_failures_still_fail() -> None:
    trend = rss_trend(samples(lambda t: 79 + t / 60, end=240), 5 * 60)
    assert trend["flat"] is None
    assert passed(result(trend))
    assert not passed(result(trend, lost=1))


def test_probe_reads_this_process() -> None:
    row, types = rss_probe.sample(0.0, None)
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines()
    )
    vm_rss_kb = int(status["VmRSS"].split()[0])
    # smaps and status are read a moment apart: the same figure within a few MB
    assert abs(row["rss_kb"] - vm_rss_kb) < 4096
    assert row["kinds_kb"]["file"] > 0 and row["py_blocks"] > 0
    assert row["malloc"]["in_use_mb"] > 0
    assert types["function"] > 0
