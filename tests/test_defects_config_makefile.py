"""Issue 10 item 19: `make` recreates a .venv made by another Python or by an install that
failed, instead of failing the same way for ever. Runs the real Makefile in a scratch folder
with a tiny pyproject.toml (no dependencies), so each install takes seconds."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "makefile-probe"
version = "0"
requires-python = "{requires}"

[project.optional-dependencies]
test = []

[tool.setuptools]
py-modules = []
"""
IDENTITY = "import os, sys; print(os.path.realpath(sys.executable), sys.version.split()[0])"


def _works(python: str) -> bool:
    try:
        return (
            subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def old_python() -> str | None:
    """A real interpreter older than 3.11, if this machine has one."""
    names = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    names += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    return next((n for n in names if n and _works(n)), None)


def make(folder: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", f"PYTHON={python}", ".venv/.installed"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MAKEFLAGS": ""},
    )


def identity(python: str) -> str:
    return subprocess.run(
        [python, "-c", IDENTITY], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_makefile_remakes_a_venv_of_another_python_or_a_failed_install(tmp_path: Path) -> None:
    old = old_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine")
    new = os.path.realpath(sys.executable)  # the interpreter behind this test's .venv
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(PYPROJECT.format(requires=">=3.11"))
    venv = tmp_path / ".venv"
    stamp = venv / ".installed"

    # an old Python is refused before anything is made, saying what to do
    done = make(tmp_path, old)
    assert done.returncode != 0
    assert "needs Python 3.11 or newer" in done.stderr and "PYTHON=python3.11" in done.stderr
    assert not venv.exists()

    # a .venv an older Makefile made with that old Python (even with a stamp) is made again
    subprocess.run([old, "-m", "venv", str(venv)], check=True)
    stamp.touch()
    done = make(tmp_path, new)
    assert done.returncode == 0, done.stdout + done.stderr
    assert identity(str(venv / "bin" / "python")) == identity(new)
    assert stamp.read_text().strip() == identity(new)  # the stamp records the interpreter

    # nothing to do the next time: the .venv is kept
    (venv / "marker").touch()
    done = make(tmp_path, new)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (venv / "marker").exists()

    # an install that fails leaves no stamp, and the next run starts from a clean .venv
    pyproject.write_text(PYPROJECT.format(requires=">=3.99"))
    done = make(tmp_path, new)
    assert done.returncode != 0
    assert not stamp.exists()
    (venv / "marker").touch()
    pyproject.write_text(PYPROJECT.format(requires=">=3.11"))
    done = make(tmp_path, new)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (venv / "marker").exists()
    assert stamp.read_text().strip() == identity(new)
