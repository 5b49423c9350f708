"""What the figures were measured on: they mean little without it."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def wrk_version() -> str | None:
    path = shutil.which("wrk")
    if path is None:
        return None
    # wrk has no --version that exits 0; its usage banner starts "wrk <version> [epoll] ..."
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    words = (out.stdout or out.stderr).split()
    return f"wrk {words[1]}" if len(words) > 1 else "wrk"


def describe() -> dict[str, Any]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_impl": sys.implementation.name,
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
        "wrk": wrk_version(),
    }


def one_line(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}; "
        f"Python {m['python']}, SQLite {m['sqlite']}, aiohttp {m['aiohttp']}"
        + (f"; {m['wrk']}" if m.get("wrk") else "")
    )
