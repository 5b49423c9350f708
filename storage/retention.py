"""Forgetting old data, a chunk at a time: calls and delivered messages after RETENTION_DAYS,
rejected payloads after REJECTED_DAYS.

Nothing that is still needed goes: a call with an outbox row still pending (its alert not
yet delivered) is kept whatever its age, and so is the row. Each step deletes at most
`chunk` rows in its own short transaction, so webhooks waiting for the writer thread are
never held up for long by a large first purge.
"""

from __future__ import annotations

import sqlite_utils

from storage.db import transaction

DAY_S = 86400
REJECTED_DAYS = 30  # long enough to notice and replay a payload RIA changed the shape of
CHUNK = 2000

# Each statement deletes at most :chunk rows (a subquery with LIMIT: SQLite is usually
# built without DELETE ... LIMIT). Sent rows are found by age in outbox_sent (without the
# hint the planner walks every sent row through outbox_due); failed ones are few.
_OLD_OUTBOX = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox INDEXED BY outbox_sent WHERE sent_at < :cutoff AND state = 'sent'
    UNION ALL
    SELECT id FROM outbox WHERE state = 'failed' AND created_at < :cutoff
    LIMIT :chunk)
"""
# a call still referenced by any outbox row stays: pending rows (undelivered alerts) always
# do, and the foreign key forbids deleting a call under a newer sent or failed row
_OLD_CALLS = """
DELETE FROM calls WHERE call_id IN (
    SELECT call_id FROM calls WHERE started_at < :cutoff
    AND NOT EXISTS (SELECT 1 FROM outbox WHERE outbox.call_id = calls.call_id)
    LIMIT :chunk)
"""
_OLD_REJECTED = """
DELETE FROM rejected_payloads WHERE id IN (
    SELECT id FROM rejected_payloads WHERE received_at < :cutoff LIMIT :chunk)
"""


def purge_step(
    db: sqlite_utils.Database,
    *,
    now: float,
    retention_days: int,
    rejected_days: int = REJECTED_DAYS,
    chunk: int = CHUNK,
) -> dict[str, int]:
    """Delete up to `chunk` rows of each kind that is due; returns how many went of each.
    Call again until it returns all zeros. `retention_days` 0 keeps calls for ever."""
    done = {"outbox": 0, "calls": 0, "rejected_payloads": 0}
    with transaction(db) as conn:
        if retention_days > 0:
            cutoff = now - retention_days * DAY_S
            # outbox rows first: they may be what still holds a call
            args = {"cutoff": cutoff, "chunk": chunk}
            done["outbox"] = conn.execute(_OLD_OUTBOX, args).rowcount
            done["calls"] = conn.execute(_OLD_CALLS, args).rowcount
        if rejected_days > 0:
            args = {"cutoff": now - rejected_days * DAY_S, "chunk": chunk}
            done["rejected_payloads"] = conn.execute(_OLD_REJECTED, args).rowcount
    return done
