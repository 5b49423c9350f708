"""Alerts on standard output: what the service does when no chat is configured."""

from __future__ import annotations

import sys
from typing import Any

from bot.channels.base import RateLimit


class ConsoleChannel:
    name = "console"
    fmt = "text"
    text_limit = 1_000_000

    def __init__(self) -> None:
        self.sent = 0

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        self.sent += 1
        sys.stdout.write(f"\n{text}\n")
        sys.stdout.flush()
        return {"console": self.sent}

    def limits(self, target: str) -> list[RateLimit]:
        return []

    def status(self) -> dict[str, Any]:
        return {"connected": True}
