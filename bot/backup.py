"""`ria-calls-bot backup FILE [--keep N]`: a consistent copy while the service runs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import Settings
from storage.backup import backup


async def run(settings: Settings, file: str, keep: int) -> int:
    if keep < 1:
        print(f"backup: --keep {keep}: keep at least 1 copy", file=sys.stderr)
        return 2
    # a thread: the copy of a large database must not look like a hung process to a
    # signal, and this keeps the CLI's commands alike (async all the way)
    try:
        result = await asyncio.to_thread(
            backup, Path(settings.database_path), Path(file), keep=keep
        )
    except ValueError as exc:  # FILE is the database itself: one line, not a traceback
        print(f"backup: {file}: {exc}; give another file", file=sys.stderr)
        return 2
    print(
        f"backup: {result.path} ({result.calls} calls, {result.size / 1024:.0f} KiB, integrity ok)"
    )
    if result.rotated:
        print("older backups: " + ", ".join(p.name for p in result.rotated))
    for path in result.deleted:
        print(f"deleted the oldest backup {path.name} (--keep {keep})")
    return 0
