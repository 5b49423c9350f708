"""Payloads we could not use, kept raw so that nothing RIA sent is ever lost."""

from __future__ import annotations

import sqlite_utils


def keep(
    db: sqlite_utils.Database,
    *,
    body: bytes,
    reason: str,
    source: str,
    content_type: str | None,
    received_at: float,
) -> int:
    row = {
        "received_at": received_at,
        "source": source,
        "content_type": content_type,
        "reason": reason,
        "body": body,
    }
    return int(db.table("rejected_payloads").insert(row).last_rowid or 0)


def count(db: sqlite_utils.Database) -> int:
    return db.table("rejected_payloads").count
