"""Erasing one caller: their calls (with the raw JSON kept in each), the messages about
those calls, and rejected payloads that contain their number, in one transaction.

The caller is matched by every spelling the service may hold: `caller_e164` (the form
storage normalises to) and the number exactly as RIA sent it. Rejected payloads are raw
bodies, so they are searched for the spellings RIA and people write a Ukrainian number in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from storage.db import transaction


@dataclass(frozen=True)
class Forgotten:
    calls: int
    alerts: int  # outbox rows of kind missed_call
    other_messages: int  # edits and reminders about those calls (a shared reminder: trimmed)
    rejected_payloads: int


def forget_caller(db: sqlite_utils.Database, *, e164: str, spellings: Sequence[str]) -> Forgotten:
    """Delete everything about the caller `e164` (also written as any of `spellings`)."""
    forms = sorted({e164, *spellings} - {""})
    marks = ",".join("?" * len(forms))
    calls_where = f"caller_e164 IN ({marks}) OR caller_phone IN ({marks})"
    # secure_delete: the deleted rows' bytes are overwritten, not just marked free
    db.conn.execute("PRAGMA secure_delete = ON")
    try:
        with transaction(db) as conn:
            ids = {
                row[0]
                for row in conn.execute(
                    f"SELECT call_id FROM calls WHERE {calls_where}", (*forms, *forms)
                )
            }
            others = _trim_reminders(conn, ids)
            found = tuple(sorted(ids))
            id_marks = ",".join("?" * len(found))
            alerts = conn.execute(
                f"DELETE FROM outbox WHERE kind = 'missed_call' AND call_id IN ({id_marks})",
                found,
            ).rowcount
            others += conn.execute(
                f"DELETE FROM outbox WHERE call_id IN ({id_marks})", found
            ).rowcount
            calls = conn.execute(
                f"DELETE FROM calls WHERE {calls_where}", (*forms, *forms)
            ).rowcount
            # a raw body is bytes in whatever encoding came: search it as text, per spelling
            matches = " OR ".join("instr(CAST(body AS TEXT), ?) > 0" for _ in forms)
            rejected = conn.execute(
                f"DELETE FROM rejected_payloads WHERE {matches}", tuple(forms)
            ).rowcount
    finally:
        db.conn.execute("PRAGMA secure_delete = OFF")
    # the old pages may still sit in the WAL: copy the new ones over the main file and
    # empty it (best effort: a reader of the running service may hold the WAL for a moment)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Forgotten(calls=calls, alerts=alerts, other_messages=others, rejected_payloads=rejected)


def _trim_reminders(conn: sqlite3.Connection, ids: set[int]) -> int:
    """A reminder about a coalesced message lists several callers' calls in its payload
    (call_id is only the oldest of them): take this caller's calls out of each, and drop a
    reminder left with none. Returns how many reminders were changed or deleted."""
    if not ids:
        return 0
    touched = 0
    for row_id, payload_text in conn.execute(
        "SELECT id, payload FROM outbox WHERE kind = 'reminder'"
    ).fetchall():
        payload = json.loads(payload_text or "{}")
        listed = [int(i) for i in payload.get("call_ids") or []]
        if not ids.intersection(listed):
            continue
        rest = [i for i in listed if i not in ids]
        touched += 1
        if not rest:
            conn.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            continue
        payload["call_ids"] = rest  # oldest first still: call_id is the oldest left
        conn.execute(
            "UPDATE outbox SET payload = ?, call_id = ? WHERE id = ?",
            (json.dumps(payload), rest[0], row_id),
        )
    return touched
