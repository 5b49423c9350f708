"""The one table: rows with their targets and the peer's figures, as Markdown (readable in a
terminal and in the README), and the JSON file of everything measured."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The nearest open-source peer, measured on this kind of machine (figures from the issue).
PEER_P50_MS = 9.5
PEER_P99_MS = 15.6
PEER_WEBHOOKS_S = 150
PEER_START_S = 3.4
PEER_IDLE_MB = 212
PEER_ON_429 = "loses alerts on any 429"

README_BEGIN = "<!-- bench:begin (written by `python -m bench --readme`) -->"
README_END = "<!-- bench:end -->"


@dataclass
class Row:
    number: int  # the row of the issue it belongs to (1-6)
    what: str
    measured: str
    target: str = "—"
    peer: str = "—"
    met: bool | None = None  # None: no target, or nothing to compare
    note: str = ""


def fmt_ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def table(rows: list[Row]) -> str:
    header = ["#", "What", "Measured", "Target", "Meets", "Peer", "How / note"]
    lines = [header, ["---"] * len(header)]
    for r in sorted(rows, key=lambda r: r.number):
        meets = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append([str(r.number), r.what, r.measured, r.target, meets, r.peer, r.note])
    return "\n".join(
        "| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in lines
    )


def write_json(path: Path, machine: dict[str, Any], rows: list[Row], results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"machine": machine, "rows": [asdict(r) for r in rows], "results": results}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def update_readme(readme: Path, section: str) -> None:
    """Replace what lies between the bench markers (they must exist once each)."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if len(pattern.findall(text)) != 1:
        raise RuntimeError(f"{readme}: expected one {README_BEGIN!r} ... {README_END!r} block")
    readme.write_text(pattern.sub(lambda _: f"{README_BEGIN}\n{section}\n{README_END}", text))
