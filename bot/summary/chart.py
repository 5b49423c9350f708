"""The summary's chart: calls per hour (or per day), answered / missed / other, stacked.

matplotlib is optional (the `[chart]` extra) and heavy (~40 MB resident once imported), so
it is imported here, on the first chart, never at start-up; without it the summary goes out
as text and this is logged once. The service draws in a child process (`draw_isolated`:
`python -m bot.summary.chart`, ChartData as JSON in, the PNG out), so that matplotlib's
~34 MB leave with it and idle RSS returns to where it was; the PNG is the same bytes, drawn
by the same `draw`. Drawing uses the object API (Figure + Agg canvas), never
pyplot: no global figure state, so a chart can be drawn on a worker thread while the event
loop goes on; a lock keeps two charts from sharing matplotlib's caches at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import io
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

WIDTH_PX, HEIGHT_PX, DPI = 1000, 500, 100
COLOURS = {"answered": "#2e9e5b", "missed": "#d64541", "other": "#a0a4a8"}

_lock = threading.Lock()
_missing_logged = False


@dataclass(frozen=True)
class ChartData:
    title: str
    labels: Sequence[str]  # one per bar
    answered: Sequence[int]
    missed: Sequence[int]
    other: Sequence[int]
    legend: tuple[str, str, str]  # answered, missed, other
    x_label: str = ""
    y_label: str = ""
    note: str = ""  # a line under the title (the clocks moved that day)


def available() -> bool:
    """Whether a chart can be drawn; logs once when matplotlib is not installed."""
    global _missing_logged
    if importlib.util.find_spec("matplotlib") is not None:
        return True
    if not _missing_logged:
        _missing_logged = True
        log.warning(
            "matplotlib is not installed: summaries go out without a chart "
            "(pip install 'ria-calls-bot[chart]')"
        )
    return False


def draw(data: ChartData) -> bytes:
    """A WIDTH_PX × HEIGHT_PX PNG. CPU-bound (~0.1 s): call it through asyncio.to_thread."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # never a GUI backend, whatever is installed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with _lock:
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        x = range(len(data.labels))
        bottom = [0] * len(data.labels)
        for name, values, label in zip(
            ("answered", "missed", "other"),
            (data.answered, data.missed, data.other),
            data.legend,
            strict=True,
        ):
            if name == "other" and not any(values):
                continue  # a third colour only when there is something to show
            ax.bar(x, values, bottom=bottom, color=COLOURS[name], label=label, width=0.8)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks(list(x), list(data.labels), fontsize=9)
        ax.set_xlim(-0.6, len(data.labels) - 0.4)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max(max(bottom, default=0), 1) * 1.25)  # room for the legend
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if data.x_label:
            ax.set_xlabel(data.x_label)
        if data.y_label:
            ax.set_ylabel(data.y_label)
        ax.legend(loc="upper left", frameon=False, ncols=3)
        fig.suptitle(data.title, fontsize=13)
        if data.note:
            ax.set_title(data.note, fontsize=9, color="#555555")
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI)
        return out.getvalue()


# What the child needs of our environment: never the tokens and keys (it only draws)
_CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME")
CHILD_TIMEOUT_S = 120.0


class ChartFailed(RuntimeError):
    pass


def to_json(data: ChartData) -> bytes:
    return json.dumps(dataclasses.asdict(data), ensure_ascii=False).encode()


def from_json(raw: bytes) -> ChartData:
    fields = json.loads(raw)
    fields["legend"] = tuple(fields["legend"])
    return ChartData(**fields)


async def draw_isolated(data: ChartData) -> bytes:
    """`draw` in a child process that exits afterwards: the same PNG, and matplotlib
    never stays resident in the service."""
    env = {k: v for k, v in os.environ.items() if k in _CHILD_ENV}
    env["MPLBACKEND"] = "Agg"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.summary.chart",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        png, err = await asyncio.wait_for(proc.communicate(to_json(data)), CHILD_TIMEOUT_S)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0 or not png.startswith(b"\x89PNG"):
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ChartFailed(f"chart process exited {proc.returncode}: {tail[0][:300]}")
    return png


def main() -> None:
    """The child: ChartData as JSON on stdin, the PNG on stdout."""
    sys.stdout.buffer.write(draw(from_json(sys.stdin.buffer.read())))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
