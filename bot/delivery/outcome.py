"""The last stage of a send, for one target's worker (bot/delivery/worker):

mark sent (with the message reference)
or retry (exactly `retry_after` after a 429; backoff with jitter otherwise)
or pause the target (the failure concerns the target, not the message: a refused token,
   a chat the bot is not in, a chat that does not exist); its messages stay pending
   and one message probes it every `probe_s` until the operator fixes it
or give up (permanent errors at once; anything after `max_age_s`)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.delivery.channels.base import DeliveryError
from bot.delivery.followup import mark_sent_checked
from handlers import metrics
from handlers.backoff import backoff as _backoff
from storage import outbox
from storage.outbox import OutboxItem, Target

if TYPE_CHECKING:
    from bot.delivery.dispatcher import Dispatcher

log = logging.getLogger("bot.delivery.dispatcher")  # one logger name for the whole stage

BACKOFF_BASE_S = 2.0
# A missed call is worth little an hour later: after an outage, alerts must go out within a
# minute of the platform coming back, and one retry a minute per target costs nothing.
BACKOFF_MAX_S = 60.0
PROBE_S = 60.0  # a paused target is tried again with one message this often
STORE_RETRY_S = (0.5, 30.0)  # first and longest wait when the database refuses a write


def backoff(attempts: int) -> float:
    """Exponential from 2 s, capped at 60 s, ±20 % jitter (handlers/backoff)."""
    return _backoff(attempts, base=BACKOFF_BASE_S, cap=BACKOFF_MAX_S)


def what_to_fix(target: Target, error: str) -> str:
    """The operator's side of a target problem, in words."""
    low = error.lower()
    if target.channel == "telegram":
        if "chat not found" in low:
            return f"check {target.id} in TELEGRAM_CHAT_IDS, and that the bot was added there"
        if "unauthorized" in low or "token" in low or "not found" in low:
            return "check TELEGRAM_BOT_TOKEN"
        return f"add the bot to chat {target.id} again (or unblock it), with the right to post"
    if target.channel == "slack" and "(" in error:
        return "see the hint in parentheses"  # channels/slack_errors.describe wrote one
    return f"check the bot's token and that the bot is in {target.id}"


class Outcomes:
    """Mixin of TargetWorker: what happens after the platform answered."""

    d: Dispatcher
    target: Target
    queue: dict[int, OutboxItem]
    not_before: float
    sent: int
    failures: int
    last_error: str | None
    paused: str | None  # why this target is paused (a target problem), None when it is not
    send_to: str  # the target's id, or the supergroup a Telegram group became

    async def _sent(self, items: list[OutboxItem], ref: dict[str, Any]) -> None:
        ids = [item.id for item in items if item.id is not None]
        for i in ids:  # delivered: never send these again from this process
            self.queue.pop(i, None)
        self.sent += len(ids)
        metrics.sent(self.target.channel, items, self.d.clock())
        if self.paused is not None:
            log.warning(
                "%s: delivering again (it was paused: %s); %d message(s) waiting go out now",
                self.target,
                self.paused,
                len(self.queue),
            )
            self.paused = None
            self.failures = 0
        if self.failures:
            log.info(
                "%s: delivering again after %d failed attempt(s) (last: %s)",
                self.target,
                self.failures,
                self.last_error,
            )
            self.failures = 0
        self.last_error = None
        if len(ids) > 1:
            log.info("%s: sent %d alerts in one message", self.target, len(ids))
        # Until the database records it, this message is the one whose delivery a crash
        # would forget (the at-least-once window). Keep trying rather than send more
        # messages to this target meanwhile: that keeps the window at one message.
        wait, longest = STORE_RETRY_S
        while True:
            try:
                call_ids = [i.call_id for i in items if i.kind == "missed_call" and i.call_id]
                edits = await self.d.store.write(  # shares a COMMIT with the webhooks
                    mark_sent_checked, ids, ref, self.d.clock(), call_ids
                )
                if edits:  # resolved while on its way: the new alert gets its ✅ line
                    self.d.submit(edits)
                return
            except Exception as exc:
                log.error(
                    "%s: sent, but cannot record it (%s); retrying in %.1f s",
                    self.target,
                    exc,
                    wait,
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, longest)

    async def _store(self, fn: Callable[..., Any], *args: Any) -> None:
        """Record a failure; if the database refuses, the row stays pending there and is
        retried after a restart, which is the safe side."""
        try:
            await self.d.store.run(fn, *args)
        except Exception as exc:
            log.error("%s: cannot record a failed send: %s", self.target, exc)

    async def _give_up(self, items: list[OutboxItem], error: str) -> None:
        metrics.failed(self.target.channel, items)
        for item in items:
            self.queue.pop(item.id or 0, None)
        await self._store(outbox.mark_failed, [i.id for i in items if i.id is not None], error)

    async def _failed(self, items: list[OutboxItem], exc: DeliveryError) -> None:
        now = self.d.clock()
        error = str(exc) or type(exc).__name__
        if exc.migrate_to is not None and exc.migrate_to != self.send_to:
            await self._migrated(items, exc.migrate_to, error, now)
            return
        pause = exc.target_problem and self.d.pause_targets
        # an outage fails every retry the same way: say it at WARNING when it starts (or
        # the error changes), then at INFO, and once more when a send gets through
        repeated = self.failures > 0 and error == self.last_error
        self.last_error = error
        if exc.permanent and not pause:
            log.error("%s: giving up on %d message(s): %s", self.target, len(items), error)
            await self._give_up(items, error)
            return
        # a paused target may hold messages older than a day that no probe carried
        pool = list(self.queue.values()) if pause else items
        expired = [item for item in pool if now - item.created_at > self.d.max_age_s]
        if expired:
            log.error(
                "%s: %d message(s) undelivered for too long, marked failed: %s",
                self.target,
                len(expired),
                error,
            )
            await self._give_up(expired, error)
        retry = [item for item in items if item not in expired]
        if not retry:
            return
        self.failures += 1
        if pause:
            delay = self.d.probe_s
            self.not_before = now + delay
            self._log_pause(error, repeated)
        elif exc.retry_after is not None:
            delay = exc.retry_after  # exactly what the platform asked, for this target only
            self.not_before = now + delay
        else:
            delay = backoff(min(item.attempts for item in retry))
        if not pause:
            log.log(
                logging.INFO if repeated else logging.WARNING,
                "%s: send failed (%s); retrying %d message(s) in %.1f s",
                self.target,
                error,
                len(retry),
                delay,
            )
        await self._retry(retry, now + delay, error)

    async def _retry(self, items: list[OutboxItem], at: float, error: str) -> None:
        for item in items:
            item.attempts += 1
            item.next_attempt_at = at
        await self._store(outbox.reschedule, [i.id for i in items], at, error)

    def _log_pause(self, error: str, repeated: bool) -> None:
        if self.paused is not None and repeated:
            log.info("%s: still paused: %s", self.target, error)
            return
        self.paused = error
        log.error(
            "%s: PAUSED: %s. To fix: %s. Its %d message(s) stay pending (for up to %.0f h) "
            "and go out once it works: tried again every %.0f s and at the next start",
            self.target,
            error,
            what_to_fix(self.target, error),
            len(self.queue),
            self.d.max_age_s / 3600,
            self.d.probe_s,
        )

    async def _migrated(self, items: list[OutboxItem], new_id: str, error: str, now: float) -> None:
        """A Telegram group became a supergroup: deliver to it from now on (this process),
        and tell the operator to update the configuration."""
        log.warning(
            "%s: the group became supergroup %s; delivering there. Put %s in "
            "TELEGRAM_CHAT_IDS instead of %s",
            self.target,
            new_id,
            new_id,
            self.target.id,
        )
        self.send_to = new_id
        await self._retry(items, now, error)
