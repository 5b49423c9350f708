"""`ria-calls-bot check | head`: a reader that goes away early ends the command quietly
(exit 141 like other command-line tools), with no "Broken pipe" error on stderr."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.service import BIN, base_env


@pytest.mark.parametrize("command", [["check"], ["--help"]])
def test_a_closed_stdout_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    env = base_env(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -0`: the reader is gone before the first line
    try:
        proc = subprocess.run(
            [str(BIN), *command],
            env=env,
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode in (0, 141), err
    assert "Broken pipe" not in err and "BrokenPipeError" not in err, err
    assert "Exception ignored" not in err and "Traceback" not in err, err
