"""Erasing one caller: their calls (with the raw JSON kept in each), the messages about
those calls, and rejected payloads that contain their number, in one transaction.

The caller is matched by every spelling the service may hold: `caller_e164` (the form
storage normalises to) and the number exactly as RIA sent it. Rejected payloads are raw
bodies, so they are searched for the spellings RIA and people write a Ukrainian number in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from storage.db import transaction


@dataclass(frozen=True)
class Forgotten:
    calls: int
    messages: int  # outbox rows: alerts, reminders, edits about those calls
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
            messages = conn.execute(
                "DELETE FROM outbox WHERE call_id IN"
                f" (SELECT call_id FROM calls WHERE {calls_where})",
                (*forms, *forms),
            ).rowcount
            calls = conn.execute(
                f"DELETE FROM calls WHERE {calls_where}", (*forms, *forms)
            ).rowcount
            # a raw body is bytes in whatever encoding came: search it as text, per spelling
            found = " OR ".join("instr(CAST(body AS TEXT), ?) > 0" for _ in forms)
            rejected = conn.execute(
                f"DELETE FROM rejected_payloads WHERE {found}", tuple(forms)
            ).rowcount
    finally:
        db.conn.execute("PRAGMA secure_delete = OFF")
    # the old pages may still sit in the WAL: copy the new ones over the main file and
    # empty it (best effort: a reader of the running service may hold the WAL for a moment)
    db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return Forgotten(calls=calls, messages=messages, rejected_payloads=rejected)
