"""`python -m bench.unpaced run`: the service's own CLI with Telegram's send pacing lifted.

For the latency row only. The service paces sends to what Telegram allows (1 a second per
private chat, 20 a minute per group, 30 a second overall), and every chat gets every alert,
so at 20 missed calls a second no configuration of chats keeps the pacing out of the
measurement: it would time the rate limiter (and coalescing), which the burst row measures.
Here `TelegramChannel.limits` returns no limits; everything else is `ria-calls-bot`.
"""

from __future__ import annotations

import sys

from bot.cli import main
from bot.delivery.channels.base import RateLimit
from bot.delivery.channels.telegram import TelegramChannel


def _no_limits(self: TelegramChannel, target: str) -> list[RateLimit]:
    return []


def run() -> int:
    TelegramChannel.limits = _no_limits  # type: ignore[method-assign]
    return main()


if __name__ == "__main__":
    sys.exit(run())
