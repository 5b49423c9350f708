"""Delivers the outbox: one worker per target (bot/delivery/worker), each running the same
small stages for every message:

    wait (until something is due, and the target's rate limit allows)
    → coalesce (a backlog becomes one message listing every caller)
    → render → send
    → mark sent (with the message reference)
      or retry (exactly `retry_after` after a 429; backoff with jitter otherwise)
      or pause the target (a refused token, a chat the bot is not in: the operator fixes it,
         the messages wait, one message probes the target every minute)
      or give up (permanent errors at once; anything after `max_age_s`)

Delivery is at least once: a message is marked sent after the platform confirms it, so a
crash in between (at most one in-flight send per target) can repeat that one message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from bot.delivery.channels.base import Channel, Reconnects
from bot.delivery.outcome import BACKOFF_BASE_S, BACKOFF_MAX_S, PROBE_S, backoff
from bot.delivery.worker import TargetWorker
from storage import outbox
from storage.db import Store
from storage.outbox import OutboxItem, Target

__all__ = ["BACKOFF_BASE_S", "BACKOFF_MAX_S", "Dispatcher", "TargetWorker", "backoff"]

log = logging.getLogger(__name__)

MAX_AGE_S = 24 * 3600.0  # a message not delivered in a day is marked failed
RECENT_S = 60.0  # the longest rate-limit window: sends this recent still count


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
        probe_s: float = PROBE_S,
        pause_targets: bool = True,
        targets: Iterable[Target] | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.lang = lang
        self.tz = tz
        self.clock = clock
        self.max_age_s = max_age_s
        self.probe_s = probe_s  # how often a paused target is tried again
        # False for a one-shot send (send-test, `summary --send`): a target problem fails
        # the message at once, so the operator hears it now rather than after the timeout
        self.pause_targets = pause_targets
        # None: every target of a configured channel. Otherwise only these: a chat taken out
        # of the configuration must not get the customers' numbers still queued for it.
        self.targets = None if targets is None else frozenset(targets)
        self.workers: dict[Target, TargetWorker] = {}
        self._missing_logged: set[str] = set()
        for name, channel in channels.items():
            if isinstance(channel, Reconnects):
                channel.on_ready = functools.partial(self.retry_now, name)

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

    def retry_now(self, channel: str) -> None:
        """Called by a channel when it connects: its targets retry at once."""
        for target, worker in self.workers.items():
            if target.channel == channel:
                worker.retry_now()

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
        """Per target: queued, sent, last error, and why it is paused (None if it is not);
        a last error makes /healthz say "degraded"."""
        return {str(t): w.status() for t, w in self.workers.items()}
