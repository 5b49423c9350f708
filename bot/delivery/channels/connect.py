"""Connect in the background until it works: the one retry loop both chat channels use
(Telegram's initialize and setWebhook, Slack's auth.test and Socket Mode).

An attempt returns its result, raises `Retry` when time may fix the failure (the platform is
unreachable or answers 5xx), or raises anything else to give up (a refused token). The loop
waits `handlers.backoff.backoff()` between attempts and logs an outage the way an operator
wants to read it: WARNING when it starts or its reason changes, INFO while it lasts, and one
line when the platform answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from handlers.backoff import backoff

T = TypeVar("T")

BASE_S = 1.0
CAP_S = 60.0


class Retry(Exception):
    """An attempt failed in a way that time may fix; the message says how (no secrets)."""


async def until_it_works(
    attempt: Callable[[], Awaitable[T]],
    *,
    log: logging.Logger,
    name: str,
    what: str,
    on_error: Callable[[str], None],
    base: float = BASE_S,
    cap: float = CAP_S,
) -> T:
    """`await attempt()` until it returns; `on_error(text)` after each failure (the
    channel's status), `name` prefixes log lines, `what` names what answers again."""
    failures = 0
    last: str | None = None
    while True:
        try:
            result = await attempt()
        except Retry as exc:
            error = str(exc)
            delay = backoff(failures, base=base, cap=cap)
            level = logging.INFO if failures and error == last else logging.WARNING
            last = error
            failures += 1
            on_error(error)
            log.log(level, "%s: %s; retrying in %.0f s", name, error, delay)
            await asyncio.sleep(delay)
            continue
        if failures:
            log.info("%s: %s works again after %d failed attempt(s)", name, what, failures)
        return result
