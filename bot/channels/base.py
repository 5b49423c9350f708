"""What every chat channel provides: one `notify()` and an error that says if it is final."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Protocol


class DeliveryError(Exception):
    """A send failed. `permanent`: retrying cannot help (chat not found, bot blocked, bad
    token). `retry_after`: the platform asked us to wait exactly this long (429)."""

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class RateLimit:
    """At most `count` sends in any `per` seconds (a sliding window, like the platforms')."""

    def __init__(self, count: int, per: float) -> None:
        self.count = count
        self.per = per
        self._sent: deque[float] = deque()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send is allowed."""
        while self._sent and now - self._sent[0] >= self.per:
            self._sent.popleft()
        if len(self._sent) < self.count:
            return 0.0
        return self._sent[0] + self.per - now

    def record(self, now: float) -> None:
        self._sent.append(now)


async def acquire(limits: list[RateLimit]) -> None:
    """Wait until every limit allows a send, then count it in each."""
    while True:
        now = time.monotonic()
        wait = max((limit.delay(now) for limit in limits), default=0.0)
        if wait <= 0:
            for limit in limits:
                limit.record(now)
            return
        await asyncio.sleep(wait)


class Channel(Protocol):
    name: str  # telegram | slack | console
    fmt: str  # html | mrkdwn | text, for bot.render
    text_limit: int  # longest message the platform takes

    async def notify(self, target: str, text: str) -> dict[str, Any]:
        """Send `text` to `target`; returns the message reference. Raises DeliveryError."""
        ...

    async def notify_image(
        self, target: str, text: str, png: bytes, filename: str
    ) -> dict[str, Any]:
        """Send a picture with `text` (a caption, or a message beside it when too long for
        one); returns the reference of the message that carries the text."""
        ...

    def limits(self, target: str) -> list[RateLimit]:
        """The rate limits a send to `target` must respect (shared objects where shared)."""
        ...

    def status(self) -> dict[str, Any]: ...
