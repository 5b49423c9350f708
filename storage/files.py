"""The database's files are private: the folder 0700, the database and its side files 0600."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("storage.db")  # the lines users know, under the database's name


# The database holds callers' numbers, recording links, raw payloads and the generated
# webhook secret: only the service's user may read it. SQLite gives the -wal and -shm files
# the main file's mode, so the main file is tightened before it is opened.
FILE_MODE = 0o600
DIR_MODE = 0o700
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def make_private_dir(folder: Path) -> None:
    """Create `folder` (and its parents) 0700; an existing one is left as it is."""
    if not folder.exists():
        folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(folder, DIR_MODE)  # mkdir's mode goes through the umask


def _ours(entry: Path, db_name: str) -> bool:
    """Whether a file beside the database is the service's: the database's own files, the
    config file, backups (the README's /data/backups), a restore's leftovers."""
    if entry.name.startswith(db_name) or entry.name.endswith(".toml"):
        return True
    return entry.name in ("backups", "broken") and entry.is_dir()


def tighten(path: Path, *, folder: bool = True) -> list[str]:
    """Make the database's files 0600 and its folder 0700; returns what was changed.

    The folder is tightened only when it holds nothing but the database's files (and
    backups or the config file next to them): DATABASE_PATH=calls.db in a project folder,
    or /tmp/calls.db, must not lock others out of a folder that is not ours."""
    changed: list[str] = []
    for suffix in _SIDE_FILES:
        file = path.with_name(path.name + suffix)
        try:
            st = file.stat()
        except (FileNotFoundError, NotADirectoryError):
            # nothing there, or its "folder" is a file: no database to protect, and the
            # single config error about DATABASE_PATH says what is wrong with the path
            continue
        if not stat.S_ISREG(st.st_mode):
            continue  # DATABASE_PATH naming a folder: never chmod what is not our file
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            # only taken away: a read-only file stays read-only (a config error to report)
            os.chmod(file, mode & ~0o077)
            changed.append(f"{file} {mode:o}->{mode & ~0o077:o}")
    if not folder:
        return changed
    parent = path.parent
    try:
        if not parent.is_dir():
            return changed
        mode = stat.S_IMODE(parent.stat().st_mode)
        ours = all(_ours(entry, path.name) for entry in parent.iterdir())
    except OSError:
        return changed
    if mode & 0o077:
        if ours:
            os.chmod(parent, mode & ~0o077)
            changed.append(f"{parent}/ {mode:o}->{mode & ~0o077:o}")
        else:
            log.warning(
                "the database's folder %s is open to other users and holds other files: "
                "left as it is (chmod 700 it, or give the database a folder of its own)",
                parent,
            )
    return changed


def tighten_logged(path: Path) -> None:
    try:
        changed = tighten(path)
    except OSError as exc:  # not our file (a read-only mount, another owner): say so, go on
        log.warning("could not make the database private (chmod 600): %s", exc)
        return
    if changed:
        log.info("database files were readable by other users; now private: %s", ", ".join(changed))
