"""Resolutions: a missed caller was called back (a button press) or got through (a later
ANSWER call). One row per resolved call in `resolutions` (migration 4); every change to an
alert already sent is an outbox row of kind 'edit', and a broken promise one of kind
'reminder', so both survive restarts, respect rate limits and are sent once.

The unit a team thinks in is the buyer, not the call: a press on any alert of a caller, or
a later answered call from them, resolves every still-open missed call of that number that
started before it. Open missed calls of one caller are therefore always the newest ones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlite_utils

from storage.db import transaction
from storage.model import Call
from storage.outbox import OutboxItem, Target, insert_items

ANSWER = "ANSWER"
BUTTON, ANSWERED = "button", "answered"

_COLUMNS = "call_id, resolved_at, how, by_name, by_user, answered_call_id, manager, target"


@dataclass(frozen=True)
class Resolution:
    call_id: int
    resolved_at: float  # UTC epoch seconds: the press, or the answered call's started_at
    how: str  # 'button' | 'answered'
    by_name: str | None = None  # the presser's display name (button)
    by_user: str | None = None  # 'telegram:123' / 'slack:U..' (button)
    answered_call_id: int | None = None  # the ANSWER call (answered)
    manager: str | None = None  # destination_phone of the answered call (answered)
    target: str | None = None  # 'telegram:-100..' where the button was pressed (button)


def _resolution(row: Sequence[Any]) -> Resolution:
    return Resolution(*row)


@dataclass
class ButtonResult:
    status: Literal["resolved", "already", "not_found"]
    # resolved: the new resolution of the pressed call; already: the one made first
    resolution: Resolution | None = None
    edits: list[OutboxItem] = field(default_factory=list)  # new outbox rows (kind 'edit')
    resolved_call_ids: list[int] = field(default_factory=list)  # the pressed one first
    # resolved: seconds from the caller's first open missed call to the press (metrics)
    waited_s: float | None = None


def message_id_of(message_ref: dict[str, Any]) -> str | None:
    """The platform's id of a sent message: Telegram message_id, Slack ts, else None."""
    for key in ("message_id", "ts"):
        if message_ref.get(key) is not None:
            return str(message_ref[key])
    return None


def _ref_chat(message_ref: dict[str, Any]) -> str | None:
    for key in ("chat_id", "channel"):
        if message_ref.get(key) is not None:
            return str(message_ref[key])
    return None


def resolution_of(db: sqlite_utils.Database, call_ids: Iterable[int]) -> dict[int, Resolution]:
    """The resolutions of those calls that have one (primary-key lookups)."""
    ids = list(dict.fromkeys(call_ids))
    out: dict[int, Resolution] = {}
    for i in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
        chunk = ids[i : i + 500]
        sql = f"SELECT {_COLUMNS} FROM resolutions WHERE call_id IN ({', '.join('?' * len(chunk))})"
        for row in db.conn.execute(sql, chunk):
            out[row[0]] = _resolution(row)
    return out


def enqueue_edits(
    conn: sqlite3.Connection, call_ids: Iterable[int], *, now: float
) -> list[OutboxItem]:
    """One 'edit' row per SENT alert of each call (per target), INSERT OR IGNORE: the
    dispatcher renders the message's current state at send time, so one is enough. Also
    for the dispatcher to call after it marks an alert sent whose call was resolved while
    the alert was on its way (that alert had no message to edit yet)."""
    items: list[OutboxItem] = []
    for call_id in call_ids:
        for channel, target, ref in conn.execute(
            "SELECT channel, target, message_ref FROM outbox WHERE call_id = ?"
            " AND kind = 'missed_call' AND state = 'sent' AND message_ref IS NOT NULL",
            (call_id,),
        ):
            to = Target(channel, target)
            items.append(
                OutboxItem(
                    dedup_key=f"edit:{call_id}:{to}",
                    kind="edit",
                    target=to,
                    created_at=now,
                    next_attempt_at=now,
                    call_id=call_id,
                    payload={"message_ref": json.loads(ref)},
                )
            )
    return insert_items(conn, items)


# The caller's open missed calls that started before a moment (calls_caller_started).
_OPEN_BEFORE = """
SELECT c.call_id FROM calls AS c INDEXED BY calls_caller_started
WHERE c.caller_e164 = ? AND c.started_at <= ? AND c.missed = 1 AND c.call_id != ?
AND NOT EXISTS (SELECT 1 FROM resolutions AS r WHERE r.call_id = c.call_id)
"""


def _insert(conn: sqlite3.Connection, res: Resolution) -> bool:
    cur = conn.execute(
        f"INSERT OR IGNORE INTO resolutions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            res.call_id,
            res.resolved_at,
            res.how,
            res.by_name,
            res.by_user,
            res.answered_call_id,
            res.manager,
            res.target,
        ),
    )
    return bool(cur.rowcount)


def resolve_answered(
    conn: sqlite3.Connection, call: Call, *, now: float, waits: list[float] | None = None
) -> list[OutboxItem]:
    """Inside the ingest transaction, for a NEW ANSWER call: every open missed call of the
    same caller that started before it is resolved as 'answered' (resolved_at = this call's
    started_at, manager = its destination_phone); returns the edit rows queued. `waits`
    gets the seconds from the caller's first open missed call to this one (metrics)."""
    if call.status != ANSWER or not call.caller_e164:
        return []
    resolved: list[int] = []
    for (call_id,) in conn.execute(
        _OPEN_BEFORE + " AND (c.started_at, c.call_id) < (?, ?)",
        (call.caller_e164, call.started_at, call.call_id, call.started_at, call.call_id),
    ).fetchall():
        res = Resolution(
            call_id,
            float(call.started_at),
            ANSWERED,
            answered_call_id=call.call_id,
            manager=call.destination_phone or None,
        )
        if _insert(conn, res):
            resolved.append(call_id)
    if not resolved:
        return []
    first = _first_started(conn, resolved)
    if waits is not None and first is not None:
        waits.append(call.started_at - first)
    return enqueue_edits(conn, resolved, now=now)


def _first_started(conn: sqlite3.Connection, call_ids: list[int]) -> float | None:
    """When the first of these calls started (the start of the caller's wait)."""
    marks = ", ".join("?" * len(call_ids[:500]))
    row = conn.execute(
        f"SELECT MIN(started_at) FROM calls WHERE call_id IN ({marks})", call_ids[:500]
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


# For a new missed call: how many missed calls the caller had earlier the same local day
# (local_date's date part) and how many of those are open, and the first ANSWER call after
# it (a call that arrived late, by poll or backfill, may already have been got through).
# One statement, index seeks in calls_caller_started and calls_answered_by_caller.
_MISSED_CONTEXT = """
SELECT
    (SELECT json_array(COUNT(*), COALESCE(SUM(r.call_id IS NULL), 0))
     FROM calls AS c INDEXED BY calls_caller_started
     LEFT JOIN resolutions AS r ON r.call_id = c.call_id
     WHERE c.caller_e164 = :caller AND c.started_at >= :started - 90000
     AND (c.started_at, c.call_id) < (:started, :id) AND c.missed = 1
     AND substr(c.local_date, 1, 10) = :day),
    (SELECT json_array(a.call_id, a.started_at, a.destination_phone)
     FROM calls AS a INDEXED BY calls_answered_by_caller
     WHERE a.status = 'ANSWER' AND a.caller_e164 = :caller AND a.started_at > :started
     ORDER BY a.started_at LIMIT 1)
"""


def on_new_missed(conn: sqlite3.Connection, call: Call) -> int | None:
    """Inside the ingest transaction, for a NEW missed call: its repeat number N (2 for the
    2nd missed call today) when the caller has an open missed call earlier the same local
    day, else None. A call already got through by a later ANSWER is resolved at once."""
    if not call.caller_e164:
        return None
    counts, answer = conn.execute(
        _MISSED_CONTEXT,
        {
            "caller": call.caller_e164,
            "started": call.started_at,
            "id": call.call_id,
            "day": call.local_date[:10],
        },
    ).fetchone()
    if answer is not None:
        answered_id, answered_at, manager = json.loads(answer)
        _insert(
            conn,
            Resolution(
                call.call_id,
                float(answered_at),
                ANSWERED,
                answered_call_id=answered_id,
                manager=manager or None,
            ),
        )
    earlier, open_earlier = json.loads(counts)
    return earlier + 1 if open_earlier else None


def resolve_by_button(
    db: sqlite_utils.Database,
    call_id: int,
    target: Target,
    message_id: str,
    by_name: str | None,
    by_user: str | None,
    now: float,
) -> ButtonResult:
    """A press of "✅ Called back" under the message `message_id` in `target`.

    Accepted only when a SENT alert of that call went to that chat (by the configured target
    id, or the chat id the platform reported for the message) as that very message. Resolves
    the call and every other open missed call of the same caller that started before `now`
    (the buyer was called back), and queues the edits. One transaction."""
    with transaction(db) as conn:
        rows = conn.execute(
            "SELECT target, message_ref FROM outbox WHERE call_id = ? AND kind = 'missed_call'"
            " AND channel = ? AND state = 'sent' AND message_ref IS NOT NULL",
            (call_id, target.channel),
        ).fetchall()
        if not any(_same_message(t, ref, target, message_id) for t, ref in rows):
            return ButtonResult("not_found")
        existing = conn.execute(
            f"SELECT {_COLUMNS} FROM resolutions WHERE call_id = ?", (call_id,)
        ).fetchone()
        if existing is not None:
            return ButtonResult("already", _resolution(existing))
        ids = [call_id]
        caller = conn.execute("SELECT caller_e164 FROM calls WHERE call_id = ?", (call_id,))
        row = caller.fetchone()
        if row is not None and row[0]:
            ids += [r[0] for r in conn.execute(_OPEN_BEFORE, (row[0], now, call_id))]
        resolutions = [
            Resolution(i, now, BUTTON, by_name, by_user, target=str(target)) for i in ids
        ]
        for res in resolutions:
            _insert(conn, res)
        edits = enqueue_edits(conn, ids, now=now)
        first = _first_started(conn, ids)
        waited = None if first is None else now - first
        return ButtonResult("resolved", resolutions[0], edits, ids, waited)


def _same_message(row_target: str, ref_text: str, target: Target, message_id: str) -> bool:
    ref = json.loads(ref_text)
    if not isinstance(ref, dict) or message_id_of(ref) != str(message_id):
        return False
    return target.id in (row_target, _ref_chat(ref))


def due_reminders(
    db: sqlite_utils.Database,
    now: float,
    within_s: float,
    max_age_s: float,
    due: Callable[[float, str | None], bool] | None = None,
) -> list[OutboxItem]:
    """Queue one reminder per alert message (per target and message) whose call is still
    open `within_s` after it started and at most `max_age_s` old; returns only the rows new
    this time (dedup key per message: a message is reminded of once, ever). A coalesced
    message gets one reminder listing all its open calls, oldest first. payload:
    {"message_ref": ..., "call_ids": [...]}; call_id is the oldest open call. `due`
    (started_at, the alert's payload "hours" or None) replaces the wall-clock test: opening
    hours, the route's own if it had them (issue 13)."""
    if within_s <= 0:
        return []
    groups: dict[tuple[str, str, str], list[tuple[int, int]]] = {}
    hours_of: dict[tuple[str, str, str], str | None] = {}
    for channel, target, ref, call_id, started, key in db.conn.execute(
        "SELECT o.channel, o.target, o.message_ref, c.call_id, c.started_at,"
        " json_extract(o.payload, '$.hours')"
        " FROM calls AS c INDEXED BY calls_started_at JOIN outbox AS o ON o.call_id = c.call_id"
        " WHERE c.started_at >= ? AND c.started_at <= ? AND o.kind = 'missed_call'"
        " AND o.state = 'sent' AND o.message_ref IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM resolutions AS r WHERE r.call_id = c.call_id)",
        (now - max_age_s, now),
    ):
        groups.setdefault((channel, target, ref), []).append((started, call_id))
        hours_of.setdefault((channel, target, ref), key if isinstance(key, str) else None)
    items: list[OutboxItem] = []
    for (channel, target, ref_text), calls in sorted(groups.items()):
        calls.sort()
        hours = hours_of[(channel, target, ref_text)]
        if (calls[0][0] + within_s > now) if due is None else not due(calls[0][0], hours):
            continue  # the oldest open call in it is not due yet (`due`: by opening hours)
        ref = json.loads(ref_text)
        to = Target(channel, target)
        key = message_id_of(ref) if isinstance(ref, dict) else None
        items.append(
            OutboxItem(
                dedup_key=f"reminder:{to}:{key or ref_text}",
                kind="reminder",
                target=to,
                created_at=now,
                next_attempt_at=now,
                call_id=calls[0][1],
                payload={"message_ref": ref, "call_ids": [c for _, c in calls]},
            )
        )
    if not items:
        return []
    with transaction(db) as conn:
        return insert_items(conn, items)
