"""One target's worker: the stages every message goes through (Alertmanager's notify
pipeline, in small):

    wait (until something is due, and the target's rate limit allows)
    → coalesce (a backlog becomes one message listing every caller)
    → render → send
    → mark sent / retry / pause the target / give up (bot/delivery/outcome)

Each target has its own worker, so one slow or broken chat never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bot import hours
from bot.delivery import callback, names
from bot.delivery.backlog import Backlog
from bot.delivery.channels.base import Channel, DeliveryError, Outgoing, Slot, acquire
from bot.delivery.coalesce import split_coalesced
from bot.delivery.followup import KINDS, Followups, send_message
from bot.delivery.markup import get_format
from bot.delivery.outcome import Outcomes
from bot.summary.build import payload_image
from storage.model import Call
from storage.outbox import OutboxItem, Target

if TYPE_CHECKING:
    from bot.delivery.dispatcher import Dispatcher

log = logging.getLogger("bot.delivery.dispatcher")

COALESCE_AT = 5  # more alerts than this waiting for one target go out as one message
MAX_MENTIONS = 10  # a coalesced message names at most this many managers (it must still fit)
SLOW_SLOT_S = 5.0  # ...and so do 2+ when the rate limit holds the next send this long


class TargetWorker(Outcomes, Followups):
    def __init__(self, dispatcher: Dispatcher, target: Target, channel: Channel) -> None:
        self.d = dispatcher
        self.target = target
        self.channel = channel
        # the rows this worker holds; a longer backlog waits in the database (bot/backlog)
        self.backlog = Backlog(dispatcher.store, target, dispatcher.clock)
        self.queue = self.backlog.items
        self.wake = asyncio.Event()
        self.not_before = 0.0  # wall clock: the platform asked us to wait (429), or paused
        self.sending = False
        self.sent = 0
        self.last_error: str | None = None
        self.paused: str | None = None
        self.send_to = target.id
        self.task: asyncio.Task[None] | None = None
        self.failures = 0  # consecutive failed sends (transient), for the log's level
        self.picture_refused = False  # logged once per target

    def add(self, items: list[OutboxItem]) -> None:
        self.backlog.add(items)
        self.wake.set()

    def retry_now(self) -> None:
        """The channel has just (re)connected: what waits for a retry goes now, and a paused
        target gets its probe at once, instead of after the rest of its backoff (up to a
        minute) on top of the channel's own reconnect wait."""
        now = self.d.clock()
        for item in self.queue.values():
            item.next_attempt_at = min(item.next_attempt_at, now)
        if self.paused is not None:
            self.not_before = 0.0  # a 429's wait (not paused) is kept: the platform asked it
        self.wake.set()

    def backlog_from(self, first_id: int) -> None:
        self.backlog.from_db(first_id)
        self.wake.set()

    def needs_page(self) -> bool:
        return self.backlog.needs_page()

    def due(self, now: float) -> list[OutboxItem]:
        if now < self.not_before:
            return []
        opening = _Openings(now)
        return [item for item in self.queue.values() if _due_at(item, opening) <= now]

    def idle(self, now: float) -> bool:
        return not self.sending and not self.due(now) and not self.needs_page()

    def status(self) -> dict[str, Any]:
        return {
            "queued": len(self.queue),
            "more_in_database": self.backlog.in_db,
            "sent": self.sent,
            "last_error": self.last_error,
            "paused": self.paused,
        }

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

    # ---- wait ---------------------------------------------------------------------------

    async def _wait(self, now: float) -> None:
        """Sleep until the next item is due or something new arrives."""
        self.wake.clear()
        if self.needs_page():
            return
        opening = _Openings(now)  # digest alerts wait for their hours' opening (bot/hours)
        waits = [_due_at(item, opening) for item in self.queue.values()]
        if self.not_before > now:
            waits = [max(w, self.not_before) for w in waits]
        timeout = max(min(waits) - now, 0.01) if waits else None
        try:
            await asyncio.wait_for(self.wake.wait(), timeout)
        except TimeoutError:
            pass

    # ---- coalesce -----------------------------------------------------------------------

    def _coalesce(self, due: list[OutboxItem]) -> list[OutboxItem]:
        """The items the next message carries: one, or every waiting alert at once."""
        if self.paused is not None:
            return due[:1]  # a probe: one message, until the target works again
        # only alerts for the same forum topic share a message (a topic is a place of its own)
        alerts = [
            item
            for item in due
            if item.kind == "missed_call"
            and item.call is not None
            and item.payload.get("topic") == due[0].payload.get("topic")
            and _digest(item) == _digest(due[0])
            and item.payload.get("hours") == due[0].payload.get("hours")
        ]
        if _digest(due[0]) and due[0] in alerts:
            return alerts  # held until opening: all of them in one message, even one
        if due[0] not in alerts or len(alerts) <= 1:
            return due[:1]
        slot_wait = max(
            (lim.delay(time.monotonic()) for lim in self.channel.limits(self.target.id)),
            default=0.0,
        )
        if len(alerts) > COALESCE_AT or slot_wait > SLOW_SLOT_S:
            return alerts
        return due[:1]

    # ---- render -------------------------------------------------------------------------

    def _render(self, items: list[OutboxItem]) -> list[tuple[list[OutboxItem], Outgoing]]:
        """The messages to send, each with the items it carries."""
        d, fmt = self.d, self.channel.fmt
        if len(items) > 1 or _digest(items[0]):
            return [
                (
                    part,
                    placed(
                        Outgoing(
                            _titled(text, part, fmt, d.lang),
                            callback.caller_buttons(_calls(part), d.lang),
                        ),
                        part,
                        fmt,
                    ),
                )
                for part, text in split_coalesced(items, fmt, d.lang, d.tz, self.channel.text_limit)
            ]
        item = items[0]
        if item.kind == "missed_call" and item.call is not None:
            repeat = item.payload.get("repeat")
            message = callback.alert(
                item.call, fmt, d.lang, d.tz, repeat=repeat if isinstance(repeat, int) else None
            )
            return [(items, placed(message, items, fmt))]
        text = item.payload.get(fmt) or item.payload.get("text") or ""
        return [(items, Outgoing(str(text)))]

    async def _render_or_drop(
        self, items: list[OutboxItem], slot: Slot
    ) -> list[tuple[list[OutboxItem], Outgoing]]:
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

    # ---- send ---------------------------------------------------------------------------

    async def _deliver(self, items: list[OutboxItem], slot: Slot) -> None:
        self.sending = True
        try:
            if items[0].kind in KINDS:  # an edit or a reminder: always alone
                await self._followup(items[0], slot)
                return
            # a coalesced message may be split in parts; each part's items are marked sent
            # with that part's reference as soon as it is confirmed, and each part after the
            # first takes its own slot of the rate limit
            parts = await self._render_or_drop(items, slot)
            for index, (part_items, message) in enumerate(parts):
                if index:
                    slot = await acquire(self.channel.limits(self.target.id))
                try:
                    ref = await self._send(part_items, message)
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

    async def _send(self, items: list[OutboxItem], message: Outgoing) -> dict[str, Any]:
        text = message.text
        # a summary with a chart goes as a picture with its text (bot/summary builds both)
        image = payload_image(items[0]) if len(items) == 1 else None
        if image is not None:
            try:
                return await self.channel.notify_image(self.send_to, text, *image)
            except DeliveryError as exc:
                if not exc.picture_refused:
                    raise
                # the chart is an extra: the text goes out alone (within the same slot,
                # since the platform took nothing), and the log says what to change
                level = logging.DEBUG if self.picture_refused else logging.WARNING
                self.picture_refused = True
                log.log(level, "%s: chart not sent, the text goes alone: %s", self.target, exc)
        return await send_message(self.channel, self.send_to, message)


def placed(message: Outgoing, items: list[OutboxItem], fmt: str) -> Outgoing:
    """The message in its items' forum topic, without sound when every item is silent, and
    mentioning the managers whose lines missed the calls (routing, issue 13: the payload
    keys come from ingest; rows without them: the message unchanged)."""
    topic = items[0].payload.get("topic")
    silent = all(item.payload.get("mode") == "silent" for item in items)
    mentions: list[str] = []
    for item in items:
        ref = item.payload.get("mention")
        text = names.mention(fmt, ref if isinstance(ref, str) else None, _manager_phone(item))
        if text and text not in mentions and len(mentions) < MAX_MENTIONS:
            mentions.append(text)
    if topic is None and not silent and not mentions:
        return message
    text = message.text + ("\n👤 " + ", ".join(mentions) if mentions else "")
    return replace(
        message, text=text, topic=int(topic) if topic is not None else None, silent=silent
    )


def _digest(item: OutboxItem) -> bool:
    return item.payload.get("mode") == "digest"


class _Openings:
    """The opening each digest row waits for, as of `now`, computed once per set of hours
    (the global [hours], or a route's own: payload "hours") for one pass over the queue."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._at: dict[object, float] = {}

    def of(self, item: OutboxItem) -> float:
        key = item.payload.get("hours")
        found = self._at.get(key)
        if found is None:
            found = self._at[key] = hours.opening_at(self.now, key)
        return found


def _due_at(item: OutboxItem, opening: _Openings) -> float:
    """When the item may go: a digest alert not before its hours' opening (bot/hours)."""
    return max(item.next_attempt_at, opening.of(item)) if _digest(item) else item.next_attempt_at


def _titled(text: str, items: list[OutboxItem], fmt: str, lang: str) -> str:
    """A digest's message says so in its first line (the list below is the coalesced one)."""
    if not _digest(items[0]):
        return text
    f = get_format(fmt)
    _first, _, rest = text.partition("\n")
    return f"🌙 {f.bold(f.esc(hours.digest_title(lang, len(items))))}\n{rest}"


def _manager_phone(item: OutboxItem) -> str | None:
    return item.call.destination_phone if item.call is not None else None


def _calls(items: list[OutboxItem]) -> list[Call]:
    return [item.call for item in items if item.call is not None]
