"""Charts are drawn in a child process: the same PNG, and matplotlib does not stay resident
in the service (issue 14: +34 MB of idle RSS after the first chart)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from bot.summary import chart
from tests.test_summary_e2e import PNG_MAGIC, passed_minute, seed, steady_now, todays_calls, window

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="the [chart] extra is not installed"
)

DATA = chart.ChartData(
    title="Дзвінки, 2026-11-28",
    labels=[f"{h:02d}" for h in range(8, 20)],
    answered=[3, 5, 8, 2, 0, 4, 6, 7, 1, 0, 2, 3],
    missed=[1, 0, 2, 1, 0, 3, 0, 1, 1, 0, 0, 2],
    other=[0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    legend=("відповіли", "пропущені", "інші"),
    x_label="година",
    y_label="дзвінків",
    note="зміна часу",
)


async def test_the_child_draws_the_same_bytes_as_in_process() -> None:
    png = await chart.draw_isolated(DATA)
    assert png.startswith(PNG_MAGIC)
    assert png == chart.draw(DATA)


def _vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _summary_out(service, needle: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(400):
        if needle in service.stdout():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {needle!r} in the output:\n{service.output()}")


async def test_idle_rss_after_a_chart_is_within_5_mb_of_a_summary_without_one(
    services, tmp_path: Path
) -> None:
    """Two services, the same summary through the CLI's `run`: one day without calls (text
    only, no chart), one with calls (and its chart); RSS of each afterwards."""
    now = await steady_now()
    env = {"SUMMARY_TIME": passed_minute(now), "SUMMARY_WEEKLY": "off"}
    plain_dir, chart_dir = tmp_path / "plain", tmp_path / "chart"
    plain_dir.mkdir()
    chart_dir.mkdir()
    seed(str(chart_dir / "calls.db"), todays_calls(now))

    plain = await services(DATABASE_PATH=str(plain_dir / "calls.db"), **env)
    await _summary_out(plain, "📊")
    plain_kb = _vm_rss_kb(plain.proc.pid)
    assert await plain.stop() == 0

    drawn = await services(DATABASE_PATH=str(chart_dir / "calls.db"), **env)
    png = chart_dir / f"summary-{window(now).day:%Y-%m-%d}.png"
    await _summary_out(drawn, f"chart: {png}")
    assert png.read_bytes().startswith(PNG_MAGIC)
    chart_kb = _vm_rss_kb(drawn.proc.pid)
    assert await drawn.stop() == 0
    assert chart_kb - plain_kb <= 5 * 1024, (plain_kb, chart_kb)
