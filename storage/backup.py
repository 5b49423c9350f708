"""A consistent copy of the live database with SQLite's online backup API.

A file copy of a WAL database can miss what is still in the WAL, or catch a page half
written; `sqlite3.Connection.backup` reads one snapshot (a WAL reader never blocks the
service's writer) and writes a complete database. The copy is made next to its final name
and renamed into place only once it is complete and checked, so a failed backup never
replaces a good one.

Rotation (`keep`): FILE is always the newest backup; the one before is FILE.1, then
FILE.2, ... up to FILE.<keep-1>; older ones are deleted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.db import NoDatabase
from storage.files import FILE_MODE


@dataclass(frozen=True)
class BackupResult:
    path: Path
    calls: int
    size: int
    rotated: list[Path]  # older backups, newest first, after rotation
    deleted: list[Path]  # backups dropped by the rotation


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def rotate(path: Path, keep: int) -> tuple[list[Path], list[Path]]:
    """Make room for a new FILE: FILE.(k) -> FILE.(k+1), FILE -> FILE.1; keep `keep` in all.
    Returns (the older backups kept, the ones deleted)."""

    def numbered(i: int) -> Path:
        return path.with_name(f"{path.name}.{i}")

    deleted: list[Path] = []
    # the oldest kept one would move past the limit; what lies beyond it goes too (after
    # --keep was lowered)
    i = max(keep - 1, 1)
    while numbered(i).exists():
        numbered(i).unlink()
        deleted.append(numbered(i))
        i += 1
    for i in range(keep - 2, 0, -1):
        if numbered(i).exists():
            os.replace(numbered(i), numbered(i + 1))
    if keep > 1 and path.exists():
        os.replace(path, numbered(1))
    kept = [numbered(i) for i in range(1, keep) if numbered(i).exists()]
    return kept, deleted


def backup(source: Path, dest: Path, *, keep: int = 1) -> BackupResult:
    """Copy the database at `source` to `dest` (0600), rotating older copies (see above)."""
    source = source.resolve()
    if not source.is_file():
        raise NoDatabase(source)
    dest = dest.resolve()
    if dest == source:
        raise ValueError("the backup file is the database itself")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, FILE_MODE))
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True, timeout=10.0)
    try:
        dst = sqlite3.connect(str(tmp))
        try:
            src.execute("PRAGMA busy_timeout = 10000")
            # pages=-1: the whole database in one step, from one snapshot
            src.backup(dst, pages=-1)
            # a standalone file: no -wal beside it to lose when it is copied elsewhere
            dst.execute("PRAGMA journal_mode = DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"the copy failed its integrity check: {check}")
            calls = dst.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        finally:
            dst.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    kept, deleted = rotate(dest, keep) if keep > 1 else ([], [])
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return BackupResult(dest, calls, dest.stat().st_size, kept, deleted)
