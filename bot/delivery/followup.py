"""Edits and reminders (the callback loop, issue 12): outbox rows of kind 'edit' and
'reminder', delivered by a target's worker like alerts (same rate limits, retries, never
twice), but one at a time and never coalesced with alerts.

- edit: the alert message re-rendered from its CURRENT state (every call it carries, with
  their resolutions, read at send time), through `Channel.edit`. A platform that refuses
  because the message is too old or gone gets a short new message saying the same (a reply
  where it can), not a failure; "not modified" is success (the channels say so).
- reminder: "⏰ Not called back for 15 min: ..." as a reply to the alert, listing the calls
  still open at send time; skipped (marked sent with no message) when all were resolved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlite_utils

from bot.delivery import callback
from bot.delivery.channels.base import Channel, DeliveryError, Outgoing, Slot, acquire
from storage import outbox
from storage.db import transaction
from storage.model import Call, call_from_row
from storage.outbox import OutboxItem, Target
from storage.resolutions import Resolution, enqueue_edits, resolution_of

if TYPE_CHECKING:
    from bot.delivery.dispatcher import Dispatcher

log = logging.getLogger("bot.delivery.dispatcher")

KINDS = frozenset({"edit", "reminder"})
SKIPPED = {"skipped": "resolved"}  # the message_ref of a reminder that had nothing to say


@dataclass
class MessageState:
    """What an alert message carries now: its calls (oldest first), their resolutions,
    and the 🔁 number of a single alert."""

    calls: list[Call] = field(default_factory=list)
    resolutions: dict[int, Resolution] = field(default_factory=dict)
    repeat: int | None = None


# The alert rows that went out as one message: same target, same sent_at (mark_sent gives
# every row of a message the same one; found through outbox_sent) and same reference.
_MESSAGE_SQL = """
SELECT o.payload AS o_payload, c.* FROM outbox AS o JOIN calls AS c ON c.call_id = o.call_id
WHERE o.sent_at = ? AND o.channel = ? AND o.target = ? AND o.kind = 'missed_call'
AND o.state = 'sent' AND o.message_ref = ?
"""


def message_state(db: sqlite_utils.Database, item: OutboxItem) -> MessageState:
    """The current state of the alert message an edit or reminder refers to."""
    conn = db.conn
    to = item.target
    if item.kind == "reminder":
        ids = [int(i) for i in item.payload.get("call_ids") or [item.call_id] if i is not None]
        calls = _calls(db, ids)
        return MessageState(calls, resolution_of(db, ids))
    ref = json.dumps(item.payload.get("message_ref"), ensure_ascii=False)
    row = conn.execute(
        "SELECT sent_at, message_ref FROM outbox WHERE call_id = ? AND channel = ?"
        " AND target = ? AND kind = 'missed_call' AND state = 'sent'",
        (item.call_id, to.channel, to.id),
    ).fetchone()
    if row is None:
        return MessageState()
    sent_at, stored_ref = row
    if stored_ref is not None and json.loads(stored_ref) == item.payload.get("message_ref"):
        ref = stored_ref  # byte for byte as stored
    state = MessageState()
    for r in conn.execute(_MESSAGE_SQL, (sent_at, to.channel, to.id, ref)):
        state.calls.append(call_from_row(r))
        payload = json.loads(r["o_payload"] or "{}")
        if isinstance(payload, dict) and payload.get("repeat"):
            state.repeat = int(payload["repeat"])
    state.calls.sort(key=lambda c: (c.started_at, c.call_id))
    state.resolutions = resolution_of(db, [c.call_id for c in state.calls])
    return state


def _calls(db: sqlite_utils.Database, ids: Sequence[int]) -> list[Call]:
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    rows = db.conn.execute(f"SELECT * FROM calls WHERE call_id IN ({marks})", list(ids))
    return sorted((call_from_row(r) for r in rows), key=lambda c: (c.started_at, c.call_id))


def mark_sent_checked(
    db: sqlite_utils.Database,
    ids: Sequence[int],
    message_ref: dict[str, Any],
    now: float,
    call_ids: Sequence[int],
) -> list[OutboxItem]:
    """`outbox.mark_sent`, and for alerts whose call was resolved while they were on their
    way (a later answered call), the edits that add the resolved line: those alerts had no
    message to edit when the resolution was made. One primary-key lookup per call."""
    outbox.mark_sent(db, ids, message_ref, now)
    if not call_ids:
        return []
    resolved = list(resolution_of(db, call_ids))
    if not resolved:
        return []
    with transaction(db) as conn:
        return enqueue_edits(conn, resolved, now=now)


async def send_message(channel: Channel, target: str, message: Outgoing) -> dict[str, Any]:
    """`channel.send`, or `notify` for a plain text (channels without buttons need no
    more than that)."""
    placed = message.topic is not None or message.silent  # routing: a topic, no sound
    if not message.buttons and not message.reply_to and not placed:
        return await channel.notify(target, message.text)
    return await channel.send(target, message)


class Followups:
    """Mixin of TargetWorker: delivering one edit or reminder row."""

    d: Dispatcher
    target: Target
    channel: Channel
    send_to: str

    if TYPE_CHECKING:  # provided by Outcomes (bot/delivery/outcome)

        async def _sent(self, items: list[OutboxItem], ref: dict[str, Any]) -> None: ...

        async def _failed(self, items: list[OutboxItem], exc: DeliveryError) -> None: ...

    async def _followup(self, item: OutboxItem, slot: Slot) -> None:
        try:
            state = await self.d.store.run(message_state, item)
            ref = await self._followup_send(item, state, slot)
        except DeliveryError as exc:
            await self._failed([item], exc)
            return
        except Exception as exc:  # a bug or an unexpected client error: retry
            log.exception("%s: unexpected error while sending an %s", self.target, item.kind)
            await self._failed([item], DeliveryError(type(exc).__name__))
            return
        await self._sent([item], ref)

    async def _followup_send(self, item: OutboxItem, state: MessageState, slot: Slot) -> Any:
        """Send it within `slot` (closed here); the reference to record."""
        d, fmt = self.d, self.channel.fmt
        ref = item.payload.get("message_ref") or {}
        if item.kind == "reminder":
            still_open = [c for c in state.calls if c.call_id not in state.resolutions]
            if not still_open:
                slot.release()  # all called back meanwhile: nothing to remind of
                return SKIPPED
            message = callback.reminder(still_open, fmt, d.lang, d.clock(), ref)
            return await _closing(slot, send_message(self.channel, self.send_to, message))
        if not state.calls:
            slot.release()  # the alert is gone from the database (retention): nothing to edit
            return SKIPPED
        if len(state.calls) == 1:
            call = state.calls[0]
            message = callback.alert(
                call,
                fmt,
                d.lang,
                d.tz,
                repeat=state.repeat,
                resolution=state.resolutions.get(call.call_id),
            )
        else:
            message = callback.coalesced(state.calls, fmt, d.lang, d.tz, state.resolutions)
        try:
            await _closing(slot, self.channel.edit(self.send_to, ref, message))
            return ref
        except DeliveryError as exc:
            if not exc.gone:
                raise
            log.info("%s: cannot edit the alert (%s): saying it in a new message", self.target, exc)
            # too old: a reply to it; deleted: a message of its own (no thread to reply in)
            deleted = "not_found" in str(exc) or "not found" in str(exc)
        note = callback.gone_note(
            state.calls, fmt, d.lang, d.tz, state.resolutions, None if deleted else ref
        )
        if note is None:
            return SKIPPED
        slot = await acquire(self.channel.limits(self.target.id))
        return await _closing(slot, send_message(self.channel, self.send_to, note))


async def _closing(slot: Slot, request: Any) -> Any:
    """Await a send, then settle the slot (or give it back if the platform took nothing)."""
    try:
        result = await request
    except BaseException as exc:
        slot.close(exc)
        raise
    slot.close()
    return result
