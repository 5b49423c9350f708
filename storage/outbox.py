"""The outbox: one row per message per target, kept until a channel confirms delivery."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from storage.db import transaction
from storage.model import Call, call_from_row

PENDING, SENT, FAILED = "pending", "sent", "failed"
# one encoder for every row: json.dumps with an option builds a new one per call (~7 µs)
_READABLE = json.JSONEncoder(ensure_ascii=False)


@dataclass(frozen=True, order=True)
class Target:
    """Where a message goes: a channel kind and an id within it."""

    channel: str  # telegram | slack | console
    id: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.id}"


@dataclass
class OutboxItem:
    dedup_key: str
    kind: str  # missed_call | summary | test
    target: Target
    created_at: float
    next_attempt_at: float
    call_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    id: int | None = None
    call: Call | None = None  # filled for missed_call items

    def with_id(self, id: int | None) -> OutboxItem:
        """A copy with its row id: dataclasses.replace, at a third of the cost (it looks up
        the fields on every call), for each alert on the writer thread."""
        return OutboxItem(
            dedup_key=self.dedup_key,
            kind=self.kind,
            target=self.target,
            created_at=self.created_at,
            next_attempt_at=self.next_attempt_at,
            call_id=self.call_id,
            payload=self.payload,
            attempts=self.attempts,
            id=id,
            call=self.call,
        )

    @classmethod
    def for_call(cls, call: Call, target: Target, *, now: float) -> OutboxItem:
        return cls(
            dedup_key=f"call:{call.call_id}:{target}",
            kind="missed_call",
            target=target,
            created_at=now,
            next_attempt_at=now,
            call_id=call.call_id,
            call=call,
        )


def insert_items(conn: sqlite3.Connection, items: Iterable[OutboxItem]) -> list[OutboxItem]:
    """INSERT OR IGNORE by dedup key; returns the items that were new, with their ids."""
    inserted: list[OutboxItem] = []
    for item in items:
        cur = conn.execute(
            "INSERT OR IGNORE INTO outbox (dedup_key, kind, channel, target, call_id, payload,"
            " created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                item.dedup_key,
                item.kind,
                item.target.channel,
                item.target.id,
                item.call_id,
                _READABLE.encode(item.payload),
                item.created_at,
                item.next_attempt_at,
            ),
        )
        if cur.rowcount:
            inserted.append(item.with_id(cur.lastrowid))
    return inserted


def enqueue(db: sqlite_utils.Database, items: Iterable[OutboxItem]) -> list[OutboxItem]:
    """Insert items in their own transaction (summaries, test messages)."""
    with transaction(db) as conn:
        return insert_items(conn, items)


def _item_from_row(row: sqlite3.Row) -> OutboxItem:
    call = call_from_row(row) if row["c_call_id"] is not None else None
    return OutboxItem(
        id=row["id"],
        dedup_key=row["dedup_key"],
        kind=row["kind"],
        target=Target(row["channel"], row["target"]),
        call_id=row["call_id"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        call=call,
    )


_SELECT = (
    "SELECT o.id, o.dedup_key, o.kind, o.channel, o.target, o.call_id, o.payload, o.attempts,"
    " o.created_at, o.next_attempt_at, c.call_id AS c_call_id, c.* FROM outbox o"
    " LEFT JOIN calls c ON c.call_id = o.call_id"
)


def pending(
    db: sqlite_utils.Database,
    target: Target | None = None,
    *,
    after_id: int = 0,
    limit: int = 1000,
) -> list[OutboxItem]:
    """Pending items (due or not) with an id above `after_id`, oldest first, at most
    `limit`; for one target or all. Callers page through a backlog with `after_id` (the
    last id of the page before), so a backlog of any size is read a page at a time."""
    sql = _SELECT + " WHERE o.state = 'pending' AND o.id > ?"
    args: list[Any] = [after_id]
    if target is not None:
        sql += " AND o.channel = ? AND o.target = ?"
        args += [target.channel, target.id]
    sql += " ORDER BY o.id LIMIT ?"
    args.append(limit)
    return [_item_from_row(r) for r in db.conn.execute(sql, args)]


@dataclass(frozen=True)
class PendingCount:
    target: Target
    count: int
    first_id: int  # the oldest pending row: paging for this target starts just before it


def pending_counts(db: sqlite_utils.Database) -> list[PendingCount]:
    """Per target with pending rows: how many, and the oldest one's id (one pass over the
    pending rows through the outbox_due index; no row is loaded)."""
    return [
        PendingCount(Target(row[0], row[1]), row[2], row[3])
        for row in db.conn.execute(
            "SELECT channel, target, COUNT(*), MIN(id) FROM outbox WHERE state = 'pending'"
            " GROUP BY channel, target ORDER BY channel, target"
        )
    ]


def mark_sent(
    db: sqlite_utils.Database, ids: Sequence[int], message_ref: dict[str, Any], now: float
) -> None:
    ref = json.dumps(message_ref, ensure_ascii=False)
    # one transaction: in autocommit mode executemany commits (and, with synchronous=FULL,
    # fsyncs) once per row, so a coalesced message of 300 alerts cost 300 fsyncs on the
    # writer thread while webhooks waited for it
    with transaction(db) as conn:
        conn.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ?, message_ref = ?,"
            " attempts = attempts + 1, last_error = NULL WHERE id = ?",
            [(now, ref, i) for i in ids],
        )


def reschedule(
    db: sqlite_utils.Database, ids: Sequence[int], next_attempt_at: float, error: str
) -> None:
    with transaction(db) as conn:
        conn.executemany(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
            " WHERE id = ? AND state = 'pending'",
            [(next_attempt_at, error, i) for i in ids],
        )


def mark_failed(db: sqlite_utils.Database, ids: Sequence[int], error: str) -> None:
    with transaction(db) as conn:
        conn.executemany(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?"
            " WHERE id = ? AND state = 'pending'",
            [(error, i) for i in ids],
        )


def backlog(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """Per target: pending and failed counts and the last error, for /healthz."""
    out: dict[str, dict[str, Any]] = {}
    for row in db.conn.execute(
        "SELECT channel, target, state, COUNT(*) AS n FROM outbox"
        " WHERE state IN ('pending', 'failed') GROUP BY channel, target, state"
    ):
        entry = out.setdefault(
            f"{row['channel']}:{row['target']}", {"pending": 0, "failed": 0, "last_error": None}
        )
        entry[row["state"]] = row["n"]
    for key, entry in out.items():
        channel, _, target = key.partition(":")
        row = db.conn.execute(
            "SELECT last_error FROM outbox WHERE channel = ? AND target = ?"
            " AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
            (channel, target),
        ).fetchone()
        entry["last_error"] = row["last_error"] if row else None
    return out


def recent_sends(db: sqlite_utils.Database, since: float) -> list[tuple[Target, float]]:
    """Messages sent since `since` (UTC epoch seconds), oldest first: one per message, not
    per row (a coalesced message marks many rows sent with one reference)."""
    return [
        (Target(row[0], row[1]), row[2])
        for row in db.conn.execute(
            "SELECT channel, target, MIN(sent_at) FROM outbox INDEXED BY outbox_sent"
            " WHERE sent_at >= ? AND state = 'sent' GROUP BY channel, target, message_ref"
            " ORDER BY 3",
            (since,),
        )
    ]
