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
    cur = db.conn.execute(
        "INSERT INTO rejected_payloads (received_at, source, content_type, reason, body)"
        " VALUES (?, ?, ?, ?, ?)",
        (received_at, source, content_type, reason, body),
    )
    return int(cur.lastrowid or 0)


def count(db: sqlite_utils.Database) -> int:
    return db.conn.execute("SELECT COUNT(*) FROM rejected_payloads").fetchone()[0]
