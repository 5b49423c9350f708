"""Delivers the outbox. Each target has its own worker, so one slow or broken chat never
delays another; each worker runs the same small stages for every message:

    wait (until something is due, and the target's rate limit allows)
    → coalesce (a backlog becomes one message listing every caller)
    → render → send → mark sent (with the message reference)
    or, on failure → retry (exactly `retry_after` after a 429; backoff with jitter otherwise)
                   → give up (permanent errors at once; anything after `max_age_s`)

Delivery is at least once: a message is marked sent after the platform confirms it, so a
crash in between (at most one in-flight send per target) can repeat that one message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from bot.delivery import render
from bot.delivery.backlog import Backlog
from bot.delivery.channels.base import Channel, DeliveryError, Slot, acquire
from bot.delivery.coalesce import split_coalesced as _split_coalesced
from bot.summary.build import payload_image
from storage import outbox
from storage.db import Store
from storage.outbox import OutboxItem, Target

log = logging.getLogger(__name__)

COALESCE_AT = 5  # more alerts than this waiting for one target go out as one message
SLOW_SLOT_S = 5.0  # ...and so do 2+ when the rate limit holds the next send this long
BACKOFF_BASE_S = 2.0
# A missed call is worth little an hour later: after an outage, alerts must go out within a
# minute of the platform coming back, and one retry a minute per target costs nothing.
BACKOFF_MAX_S = 60.0
MAX_AGE_S = 24 * 3600.0  # a message not delivered in a day is marked failed
RECENT_S = 60.0  # the longest rate-limit window: sends this recent still count
STORE_RETRY_S = (0.5, 30.0)  # first and longest wait when the database refuses a write


def backoff(attempts: int) -> float:
    """Exponential, capped, with ±20 % jitter so many targets do not retry in step."""
    return min(BACKOFF_BASE_S * 2**attempts, BACKOFF_MAX_S) * random.uniform(0.8, 1.2)


class TargetWorker:
    def __init__(self, dispatcher: Dispatcher, target: Target, channel: Channel) -> None:
        self.d = dispatcher
        self.target = target
        self.channel = channel
        # the rows this worker holds; a longer backlog waits in the database (bot/backlog)
        self.backlog = Backlog(dispatcher.store, target)
        self.queue = self.backlog.items
        self.wake = asyncio.Event()
        self.not_before = 0.0  # wall clock: the platform asked us to wait (429)
        self.sending = False
        self.sent = 0
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None
        self.failures = 0  # consecutive failed sends (transient), for the log's level
        self.picture_refused = False  # logged once per target

    def add(self, items: list[OutboxItem]) -> None:
        self.backlog.add(items)
        self.wake.set()

    def backlog_from(self, first_id: int) -> None:
        self.backlog.from_db(first_id)
        self.wake.set()

    def needs_page(self) -> bool:
        return self.backlog.needs_page()

    def due(self, now: float) -> list[OutboxItem]:
        if now < self.not_before:
            return []
        return [item for item in self.queue.values() if item.next_attempt_at <= now]

    def idle(self, now: float) -> bool:
        return not self.sending and not self.due(now) and not self.needs_page()

    async def run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # a bug, or the database failing outside _sent (which retries on its own):
                # the rows are still pending there, so keep the worker alive and go on
                log.exception("%s: delivery step failed", self.target)
                await asyncio.sleep(1.0)

    async def _step(self) -> None:
        if self.needs_page():
            await self.backlog.page()
        now = self.d.clock()
        due = self.due(now)
        if not due:
            await self._wait(now)
            return
        slot = await acquire(self.channel.limits(self.target.id))
        due = self.due(self.d.clock())  # more may have arrived while we waited
        if due:
            await self._deliver(self._coalesce(due), slot)
        else:
            slot.release()

    async def _wait(self, now: float) -> None:
        """Sleep until the next item is due or something new arrives."""
        self.wake.clear()
        if self.needs_page():
            return
        waits = [item.next_attempt_at for item in self.queue.values()]
        if self.not_before > now:
            waits = [max(w, self.not_before) for w in waits]
        timeout = max(min(waits) - now, 0.01) if waits else None
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
        except TimeoutError:
            pass

    def _coalesce(self, due: list[OutboxItem]) -> list[OutboxItem]:
        """The items the next message carries: one, or every waiting alert at once."""
        alerts = [item for item in due if item.kind == "missed_call" and item.call is not None]
        if due[0] not in alerts or len(alerts) <= 1:
            return due[:1]
        slot_wait = max(
            (lim.delay(time.monotonic()) for lim in self.channel.limits(self.target.id)),
            default=0.0,
        )
        if len(alerts) > COALESCE_AT or slot_wait > SLOW_SLOT_S:
            return alerts
        return due[:1]

    def _render(self, items: list[OutboxItem]) -> list[tuple[list[OutboxItem], str]]:
        """The messages to send, each with the items it carries."""
        d, fmt = self.d, self.channel.fmt
        if len(items) > 1:
            return _split_coalesced(items, fmt, d.lang, d.tz, self.channel.text_limit)
        item = items[0]
        if item.kind == "missed_call" and item.call is not None:
            return [(items, render.alert(item.call, fmt, d.lang, d.tz))]
        text = item.payload.get(fmt) or item.payload.get("text") or ""
        return [(items, str(text))]

    async def _deliver(self, items: list[OutboxItem], slot: Slot) -> None:
        self.sending = True
        try:
            # a coalesced message may be split in parts; each part's items are marked sent
            # with that part's reference as soon as it is confirmed, and each part after the
            # first takes its own slot of the rate limit
            parts = await self._render_or_drop(items, slot)
            for index, (part_items, text) in enumerate(parts):
                if index:
                    slot = await acquire(self.channel.limits(self.target.id))
                try:
                    ref = await self._send(part_items, text)
                except DeliveryError as exc:
                    slot.close(exc)
                    await self._failed(
                        part_items + [i for p, _ in parts[index + 1 :] for i in p], exc
                    )
                    return
                except Exception as exc:  # a bug or an unexpected client error: retry
                    slot.close(exc)
                    log.exception("%s: unexpected error while sending", self.target)
                    await self._failed(part_items, DeliveryError(type(exc).__name__))
                    return
                slot.close()
                await self._sent(part_items, ref)
        finally:
            self.sending = False

    async def _send(self, items: list[OutboxItem], text: str) -> dict[str, Any]:
        # a summary with a chart goes as a picture with its text (bot/summary builds both)
        image = payload_image(items[0]) if len(items) == 1 else None
        if image is not None:
            try:
                return await self.channel.notify_image(self.target.id, text, *image)
            except DeliveryError as exc:
                if not exc.picture_refused:
                    raise
                # the chart is an extra: the text goes out alone (within the same slot,
                # since the platform took nothing), and the log says what to change
                level = logging.DEBUG if self.picture_refused else logging.WARNING
                self.picture_refused = True
                log.log(level, "%s: chart not sent, the text goes alone: %s", self.target, exc)
        return await self.channel.notify(self.target.id, text)

    async def _render_or_drop(
        self, items: list[OutboxItem], slot: Slot
    ) -> list[tuple[list[OutboxItem], str]]:
        """`_render(items)`; if that fails (a bug), the messages that cannot be rendered even
        alone are given up, so that one bad row never blocks its target for ever."""
        try:
            return self._render(items)
        except Exception:
            log.exception("%s: cannot render %d message(s)", self.target, len(items))
        bad = [item for item in items if not self._renders(item)]
        if not bad:
            return self._render(items[:1])  # only the list of them failed: one at a time
        slot.release()
        await self._failed(
            bad,
            DeliveryError("cannot render the message (see the log)", permanent=True),
        )
        return []

    def _renders(self, item: OutboxItem) -> bool:
        try:
            self._render([item])
        except Exception:
            return False
        return True

    async def _sent(self, items: list[OutboxItem], ref: dict[str, Any]) -> None:
        ids = [item.id for item in items if item.id is not None]
        for i in ids:  # delivered: never send these again from this process
            self.queue.pop(i, None)
        self.sent += len(ids)
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
                await self.d.store.run(outbox.mark_sent, ids, ref, self.d.clock())
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

    async def _failed(self, items: list[OutboxItem], exc: DeliveryError) -> None:
        now = self.d.clock()
        error = str(exc) or type(exc).__name__
        # an outage fails every retry the same way: say it at WARNING when it starts (or
        # the error changes), then at INFO, and once more when a send gets through
        repeated = self.failures > 0 and error == self.last_error
        self.last_error = error
        ids = [item.id for item in items if item.id is not None]
        if exc.permanent:
            log.error("%s: giving up on %d message(s): %s", self.target, len(ids), error)
            for i in ids:
                self.queue.pop(i, None)
            await self._store(outbox.mark_failed, ids, error)
            return
        expired = [item for item in items if now - item.created_at > self.d.max_age_s]
        if expired:
            log.error(
                "%s: %d message(s) undelivered for too long, marked failed: %s",
                self.target,
                len(expired),
                error,
            )
            for item in expired:
                self.queue.pop(item.id or 0, None)
            await self._store(outbox.mark_failed, [i.id for i in expired], error)
        retry = [item for item in items if item not in expired]
        if not retry:
            return
        self.failures += 1
        if exc.retry_after is not None:
            delay = exc.retry_after  # exactly what the platform asked, for this target only
            self.not_before = now + delay
        else:
            delay = backoff(min(item.attempts for item in retry))
        log.log(
            logging.INFO if repeated else logging.WARNING,
            "%s: send failed (%s); retrying %d message(s) in %.1f s",
            self.target,
            error,
            len(retry),
            delay,
        )
        for item in retry:
            item.attempts += 1
            item.next_attempt_at = now + delay
        await self._store(outbox.reschedule, [i.id for i in retry], now + delay, error)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        channels: dict[str, Channel],
        *,
        lang: str,
        tz: ZoneInfo,
        clock: Callable[[], float] = time.time,
        max_age_s: float = MAX_AGE_S,
        targets: Iterable[Target] | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.lang = lang
        self.tz = tz
        self.clock = clock
        self.max_age_s = max_age_s
        # None: every target of a configured channel. Otherwise only these: a chat taken out
        # of the configuration must not get the customers' numbers still queued for it.
        self.targets = None if targets is None else frozenset(targets)
        self.workers: dict[Target, TargetWorker] = {}
        self._missing_logged: set[str] = set()

    def submit(self, items: list[OutboxItem]) -> None:
        """Hand new outbox rows (already committed) to their targets' workers."""
        by_target: dict[Target, list[OutboxItem]] = {}
        for item in items:
            by_target.setdefault(item.target, []).append(item)
        for target, group in by_target.items():
            worker = self._worker(target)
            if worker is not None:
                worker.add(group)

    def _worker(self, target: Target) -> TargetWorker | None:
        worker = self.workers.get(target)
        if worker is None:
            if self.targets is not None and target not in self.targets:
                if str(target) not in self._missing_logged:
                    self._missing_logged.add(str(target))
                    log.warning(
                        "outbox has messages for %s, which is no longer configured; "
                        "they wait until it is",
                        target,
                    )
                return None
            channel = self.channels.get(target.channel)
            if channel is None:
                if target.channel not in self._missing_logged:
                    self._missing_logged.add(target.channel)
                    log.warning(
                        "outbox has messages for %s, which is not configured; "
                        "they wait until it is",
                        target.channel,
                    )
                return None
            worker = self.workers[target] = TargetWorker(self, target, channel)
        if worker.task is None or worker.task.done():
            worker.task = asyncio.create_task(worker.run(), name=f"deliver {target}")
        return worker

    async def start(self) -> None:
        """Pick up what an earlier run left in the outbox, and count what it sent lately
        against the rate limits (a restart must not look like a fresh budget to the
        platform)."""
        now = self.clock()
        recent = await self.store.run(outbox.recent_sends, now - RECENT_S)
        mono = time.monotonic()
        for target, sent_at in recent:
            channel = self.channels.get(target.channel)
            if channel is not None:
                for limit in channel.limits(target.id):
                    limit.record(mono - max(now - sent_at, 0.0))
        # only counts here: each worker pages its own backlog in (memory stays bounded),
        # and rows of targets no longer configured are never read, so they block nobody
        for entry in await self.store.run(outbox.pending_counts):
            if not self._configured(entry.target):
                log.warning(
                    "outbox: %d message(s) for %s, which is no longer configured, are left "
                    "as they are (they go out if it is configured again)",
                    entry.count,
                    entry.target,
                )
                self._missing_logged.add(str(entry.target))
                self._missing_logged.add(entry.target.channel)
                continue
            log.info(
                "outbox: %d message(s) for %s left from before, delivering",
                entry.count,
                entry.target,
            )
            worker = self._worker(entry.target)
            if worker is not None:
                worker.backlog_from(entry.first_id)

    def _configured(self, target: Target) -> bool:
        if self.targets is not None and target not in self.targets:
            return False
        return target.channel in self.channels

    async def flush(self, timeout: float) -> bool:
        """Wait until nothing is due anywhere (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.clock()
            if all(worker.idle(now) for worker in self.workers.values()):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self) -> None:
        tasks = [w.task for w in self.workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        return {
            str(t): {
                "queued": len(w.queue),
                "more_in_database": w.backlog.in_db,
                "sent": w.sent,
                "last_error": w.last_error,
            }
            for t, w in self.workers.items()
        }
