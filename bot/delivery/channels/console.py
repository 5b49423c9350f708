"""Alerts on standard output: what the service does when no chat is configured."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from bot.delivery.channels.base import Outgoing, RateLimit


class ConsoleChannel:
    name = "console"
    fmt = "text"
    text_limit = 1_000_000

    def __init__(self, image_dir: str | Path = ".") -> None:
        self.sent = 0
        # pictures (the summary's chart) are written here, next to the database, and the
        # console shows their path
        self.image_dir = Path(image_dir)

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        self.sent += 1
        sys.stdout.write(f"\n{text}\n")
        sys.stdout.flush()
        return {"console": self.sent}

    async def send(self, target: str, message: Outgoing) -> dict[str, Any]:
        # no buttons on a terminal: `ria-calls-bot missed` shows who is still waiting
        return await self.notify(target, message.text)

    async def edit(self, target: str, message_ref: dict[str, Any], message: Outgoing) -> None:
        await self.notify(target, message.text)  # a terminal cannot edit: print the new state

    async def notify_image(
        self, target: str, text: str, png: bytes, filename: str
    ) -> dict[str, Any]:
        path = self.image_dir / Path(filename).name  # a bare name: never outside image_dir
        try:
            await asyncio.to_thread(_write, path, png)
            where = f"chart: {path}"
        except OSError as exc:  # the text matters more than the picture
            where = f"chart not saved ({path}: {exc.strerror or exc})"
        self.sent += 1
        sys.stdout.write(f"\n{text}\n{where}\n")
        sys.stdout.flush()
        return {"console": self.sent, "file": str(path)}

    def limits(self, target: str) -> list[RateLimit]:
        return []

    def status(self) -> dict[str, Any]:
        return {"connected": True}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)  # a reader never sees half a file
