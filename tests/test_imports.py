"""What the service loads at start: numpy (matplotlib's) is not among it, though installed."""

from __future__ import annotations

import subprocess
import sys


def test_the_service_starts_without_numpy() -> None:
    code = (
        "import sys, bot.cli, bot.app, handlers.health, bot.check; "
        "import sqlite_utils.db as d; "
        "print('numpy' in sys.modules, d.np is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_numpy_still_imports_afterwards() -> None:
    code = "import storage.db, numpy, matplotlib; print(numpy.zeros(2).sum())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.0"
