"""What every chat channel provides: one `notify()` and an error that says if it is final."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


class DeliveryError(Exception):
    """A send failed. `permanent`: retrying cannot help (chat not found, bot blocked, bad
    token). `retry_after`: the platform asked us to wait exactly this long (429).
    `counted`: the platform may have taken the message, so the attempt counts against its
    rate limits; False when it certainly did not (it answered with an error, or was never
    reached), so a failed attempt does not spend the budget that the retry needs.
    `picture_refused`: only the picture was refused (no right to send photos, no scope to
    upload files) and nothing was posted: the text can still go alone; the message says
    what to change.
    `target_problem`: the failure concerns the target, not the message (a refused token, a
    chat the bot is not in or that does not exist, a kicked bot): the operator fixes it, so
    the dispatcher keeps the messages pending and pauses the target instead of giving up.
    `migrate_to`: a Telegram group became this supergroup; deliver there instead.
    `gone`: an edit was refused because the message is too old to edit or no longer exists
    (the dispatcher then says the same in a new message)."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        counted: bool = True,
        picture_refused: bool = False,
        target_problem: bool = False,
        migrate_to: str | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.counted = counted
        self.picture_refused = picture_refused
        self.target_problem = target_problem
        self.migrate_to = migrate_to
        self.gone = gone


@dataclass(frozen=True)
class Button:
    """A "✅ Called back" button: pressing it resolves `call_id` (the press handler checks
    the chat and the message against the stored alert, so the payload needs nothing else)."""

    label: str
    call_id: int


@dataclass(frozen=True)
class Outgoing:
    """A message as the channels send it: text in the channel's format, buttons under it,
    and the message it replies to (a sent message's reference), if any."""

    text: str
    buttons: list[Button] = field(default_factory=list)
    reply_to: dict[str, Any] | None = None
    # routing (issue 13): a Telegram forum topic (message_thread_id), and no sound
    # (disable_notification) for alerts outside working hours; other channels ignore both
    topic: int | None = None
    silent: bool = False


# Telegram's BadRequest answers that concern the chat or the bot's place in it, not the
# message: the operator fixes them (bot/delivery/outcome pauses the target meanwhile)
_TELEGRAM_TARGET_ERRORS = (
    "chat not found",
    "not enough rights to send text",
    "have no rights to send",
    "need administrator rights",
    "chat_write_forbidden",
    "group chat was deactivated",
)


def telegram_target_problem(message: str) -> bool:
    """Whether a Telegram BadRequest concerns the chat (see above) rather than the message."""
    low = message.lower()
    return any(phrase in low for phrase in _TELEGRAM_TARGET_ERRORS)


class RateLimit:
    """At most `count` sends in any `per` seconds (a sliding window, like the platforms')."""

    def __init__(self, count: int, per: float) -> None:
        self.count = count
        self.per = per
        self._sent: list[_Stamp] = []

    def delay(self, now: float) -> float:
        """Seconds to wait before the next send is allowed."""
        self._sent = [s for s in self._sent if now - s.at < self.per]
        if len(self._sent) < self.count:
            return 0.0
        # stamps move forward when their send settles, so they are not kept in order
        times = sorted(s.at for s in self._sent)
        return times[len(times) - self.count] + self.per - now

    def record(self, now: float) -> _Stamp:
        stamp = _Stamp(now)
        self._sent.append(stamp)
        return stamp

    def forget(self, stamp: _Stamp) -> None:
        if stamp in self._sent:
            self._sent.remove(stamp)


class _Stamp:
    """When one send counted against a limit; `settle()` moves it to when the send ended."""

    __slots__ = ("at",)

    def __init__(self, at: float) -> None:
        self.at = at


class Slot:
    """A send that `acquire()` allowed. Once the platform has answered, call `settle()`, or
    `release()` if the platform certainly did not take the message.

    The platform counts a message when it receives it, which is after we counted it (by the
    network's delay, which varies). Counting the send again from the moment its answer came
    back is always at or after the platform's moment, so the next send can never look early
    to it, whatever the latency: the limits are kept, not discovered by a 429.
    """

    def __init__(self, taken: list[tuple[RateLimit, _Stamp]]) -> None:
        self._taken = taken

    def settle(self) -> None:
        now = time.monotonic()
        for _, stamp in self._taken:
            stamp.at = max(stamp.at, now)

    def release(self) -> None:
        for limit, stamp in self._taken:
            limit.forget(stamp)
        self._taken = []

    def close(self, exc: BaseException | None = None) -> None:
        """`settle()`, or `release()` for an error the platform did not count."""
        if isinstance(exc, DeliveryError) and not exc.counted:
            self.release()
        else:
            self.settle()


async def acquire(limits: list[RateLimit]) -> Slot:
    """Wait until every limit allows a send, then count it in each."""
    while True:
        now = time.monotonic()
        wait = max((limit.delay(now) for limit in limits), default=0.0)
        if wait <= 0:
            return Slot([(limit, limit.record(now)) for limit in limits])
        await asyncio.sleep(wait)


async def send_paced(
    limits: list[RateLimit], send: Callable[[], Awaitable[T]], attempts: int = 3
) -> T:
    """Send outside the outbox (command replies) within `limits`, waiting out a 429 a few
    times; each attempt's slot is settled or given back like the dispatcher's."""
    for attempt in range(attempts):
        slot = await acquire(limits)
        try:
            result = await send()
        except DeliveryError as exc:
            slot.close(exc)
            if exc.retry_after is None or attempt == attempts - 1:
                raise
            retry_after = exc.retry_after
        else:
            slot.close()
            return result
        await asyncio.sleep(retry_after)
    raise AssertionError("unreachable")


@runtime_checkable
class Reconnects(Protocol):
    """A channel that connects in the background (Telegram, Slack): it calls `on_ready`
    each time it (re)connects, so the dispatcher retries its targets at once."""

    on_ready: Callable[[], None] | None


class Channel(Protocol):
    name: str  # telegram | slack | console
    fmt: str  # html | mrkdwn | text, for bot.delivery.render
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

    async def send(self, target: str, message: Outgoing) -> dict[str, Any]:
        """`notify()` with buttons and/or as a reply; returns the message reference."""
        ...

    async def edit(self, target: str, message_ref: dict[str, Any], message: Outgoing) -> None:
        """Replace a sent message's text and buttons. "Not modified" is success; a message
        too old to edit or gone raises DeliveryError(gone=True)."""
        ...

    def status(self) -> dict[str, Any]: ...
