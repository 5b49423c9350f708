"""Issue 10 item 19: `make` recreates a .venv made by another Python or by an install that
failed, instead of failing the same way for ever. Runs the real Makefile in a scratch folder
with a tiny pyproject.toml (no dependencies) whose build backend is a file beside it, so an
install downloads and builds nothing (setuptools in an isolated build environment was most
of the test's time)."""

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
requires = []
build-backend = "probe_backend"
backend-path = ["."]

[project]
name = "makefile-probe"
version = "0"
requires-python = "{requires}"

[project.optional-dependencies]
test = []
"""
# The PEP 517/660 hooks pip calls for `pip install -e '.[test]'`: an empty wheel whose
# metadata carries requires-python, which pip checks (the failing install below)
BACKEND = """\
import base64, hashlib, os, re, zipfile

INFO = "makefile_probe-0.dist-info"


def _files():
    text = open("pyproject.toml").read()
    requires = re.search(r'requires-python = "([^"]*)"', text).group(1)
    return {
        INFO + "/METADATA": "Metadata-Version: 2.1\\nName: makefile-probe\\nVersion: 0\\n"
        + "Requires-Python: " + requires + "\\nProvides-Extra: test\\n",
        INFO + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: probe\\nRoot-Is-Purelib: true\\n"
        + "Tag: py3-none-any\\n",
    }


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    for path, text in _files().items():
        os.makedirs(os.path.join(metadata_directory, INFO), exist_ok=True)
        with open(os.path.join(metadata_directory, path), "w") as f:
            f.write(text)
    return INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "makefile_probe-0-py3-none-any.whl"
    files = {p: t.encode() for p, t in _files().items()}
    record = ""
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record += path + ",sha256=" + digest.decode() + "," + str(len(data)) + "\\n"
    files[INFO + "/RECORD"] = (record + INFO + "/RECORD,,\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name


get_requires_for_build_editable = get_requires_for_build_wheel
prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel
build_editable = build_wheel
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
    (tmp_path / "probe_backend.py").write_text(BACKEND)
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
    # (the Makefile judges a .venv by its interpreter alone: no pip needed in it)
    subprocess.run([old, "-m", "venv", "--without-pip", str(venv)], check=True)
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
