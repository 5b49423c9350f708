"""The benchmarks in a tiny configuration, so the bench code cannot rot unnoticed.

Every row module runs end to end (services started through the CLI, fakes, load, the
generated database, the simulated month), then the table and the JSON are produced. No
timing is asserted: only that each row ran, counted what it should, and lost nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bench import __main__ as runner
from bench import ingest
from bench.gen_calls import generate
from bench.report import README_BEGIN, README_END, update_readme

# the module fixture below is costly: one worker builds it once, not each worker
pytestmark = pytest.mark.xdist_group("bench")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = tmp_path_factory.mktemp("bench")
    return asyncio.run(
        runner.run_all(list(runner.MODULES), runner.QUICK, workdir, lambda line: None)
    )


def test_every_row_ran(quick: dict) -> None:
    assert set(quick) == set(runner.MODULES)
    assert {name: r.get("error") for name, r in quick.items()} == dict.fromkeys(quick)


def test_latency_saw_every_alert(quick: dict) -> None:
    r = quick["latency"]
    assert r["ok_answers"] == r["webhooks"] == r["alerts_received"]
    assert r["missing"] == 0 and r["rate_limited"] == 0
    assert r["p50_ms"] > 0


def test_ingest_lost_nothing(quick: dict) -> None:
    r = quick["ingest"]
    assert r["service"]["ok"] > 0 and r["bare"]["ok"] > 0
    assert r["errors"] == 0
    assert r["stored"] >= r["acknowledged"] > 0
    assert r["lost"] == 0


def test_ingest_reports_the_service_cpu_per_webhook(quick: dict) -> None:
    """Row 2's steadier figure: the service's CPU per request, per thread (from /proc)."""
    cpu = quick["ingest"]["service"]["cpu_us"]
    if not Path("/proc/self/task").is_dir():
        assert cpu is None
        return
    assert cpu["total"] == pytest.approx(cpu["loop"] + cpu["threads"], abs=1)
    assert cpu["loop"] > 0 and cpu["threads"] > 0  # the loop and the writer both worked


def test_burst_shows_every_caller(quick: dict) -> None:
    r = quick["burst"]
    assert r["ok_answers"] == r["calls"]
    assert r["missing"] == 0 and r["all_visible_s"] is not None
    assert r["messages"] >= 1 and r["rss_after_mb"] > 0


def test_stats_and_footprint_and_quota(quick: dict) -> None:
    assert quick["stats"]["database"]["calls"] == runner.QUICK["stats"].calls
    assert quick["stats"]["month_calls"] > 0 and quick["stats"]["day_calls"] > 0
    assert quick["footprint"]["idle_rss_mb"] > 0
    assert len(quick["footprint"]["starts"]) == runner.QUICK["footprint"].starts
    default, low = quick["quota"]["default"], quick["quota"]["too_low"]
    assert default["requests"] == default["polls"] == 48  # 2 days, hourly
    assert low["max_clock_hour"] <= 30 and low["rate_limited"] == 0


def test_callback_press_is_confirmed_before_its_edit(quick: dict) -> None:
    r = quick["callback"]
    assert r["presses"] == runner.QUICK["callback"].presses
    assert 0 < r["confirm_p99_ms"] < 1000  # the issue: within a second, the outbox busy
    assert r["edit_p50_ms"] >= r["confirm_p50_ms"]


def test_table_and_json(quick: dict, tmp_path: Path) -> None:
    rows = runner.table_rows(quick)
    assert {row.number for row in rows} == {1, 2, 3, 4, 5, 6, 7, 8}
    text = runner.table(rows)
    assert text.count("\n") == len(rows) + 1  # header, rule, one line a row
    out = tmp_path / "latest.json"
    runner.write_json(out, {"cpu": "x"}, rows, quick)
    data = json.loads(out.read_text())
    assert len(data["rows"]) == len(rows) and set(data["results"]) == set(quick)


def test_readme_section_is_replaced_in_place(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n{README_BEGIN}\nold\n{README_END}\n\n## Next\n")
    update_readme(readme, "new table")
    assert readme.read_text() == (
        f"# x\n\n## Performance\n{README_BEGIN}\nnew table\n{README_END}\n\n## Next\n"
    )


def test_generated_prev_caller_at_is_what_the_trigger_keeps(tmp_path: Path) -> None:
    tz = ZoneInfo("Europe/Kyiv")
    path = tmp_path / "calls.db"
    generate(path, calls=2000, days=10, end=datetime(2026, 3, 31, 23, 0), tz=tz)
    with sqlite3.connect(path) as conn:
        wrong = conn.execute(
            "SELECT COUNT(*) FROM (SELECT prev_caller_at, LAG(started_at) OVER ("
            "PARTITION BY caller_e164 ORDER BY started_at, call_id) AS prev FROM calls)"
            " WHERE prev IS NOT prev_caller_at"
        ).fetchone()[0]
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        assert wrong == 0
        assert [name for (name,) in triggers] == ["calls_prev_caller"]


def test_quick_cannot_overwrite_the_real_results() -> None:
    with pytest.raises(SystemExit):
        runner.main(["--quick"])


def test_ingest_falls_back_to_aiohttp_without_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.shutil, "which", lambda name: None)
    assert ingest.pick_tool("auto") == "aiohttp"


async def test_the_aiohttp_load_generator(tmp_path: Path) -> None:
    # the quick run above used wrk if this machine has it; CI's may not
    params = ingest.Params(connections=4, seconds=0.5, warmup_s=0, tool="aiohttp")
    async with ingest.bare_server(tmp_path) as url:
        result = await ingest._load(url, params, "aiohttp", ingest.MEASURED_IDS)
    assert result["ok"] > 0 and result["errors"] == 0 and result["accepted"] == result["ok"]
