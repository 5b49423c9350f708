"""What the running service has in memory: numpy (matplotlib's, for the summary chart) is
installed but not loaded, at start or after a call went through: it would cost ~13 MB of
idle RSS (bench row 5) in a process that may not draw a chart for hours."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.ria import make_call


def _mapped_files(pid: int) -> set[str]:
    """The files the process has mapped: every extension module it imported is one."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {line.split(maxsplit=5)[5] for line in lines if len(line.split(maxsplit=5)) == 6}


async def test_the_running_service_has_not_loaded_numpy(services: Callable[..., Any]) -> None:
    service = await services()
    status, body = await service.post(service.webhook_url, json=make_call(1, "NOANSWER"))
    assert (status, body["accepted"]) == (200, 1)
    assert service.proc is not None
    files = _mapped_files(service.proc.pid)
    assert any("/_sqlite3" in f for f in files)  # the check reads what it should
    assert not [f for f in files if "/numpy" in f]


def test_numpy_still_imports_afterwards() -> None:
    """Whatever keeps numpy out at start must not break the chart's `import numpy` later."""
    code = "import storage.db, numpy, matplotlib; print(numpy.zeros(2).sum())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0.0"
