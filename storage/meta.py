"""Small key/value settings the service keeps for itself (generated secrets, poller state)."""

from __future__ import annotations

import sqlite_utils


def get(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def put(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def get_or_create(db: sqlite_utils.Database, key: str, make) -> str:
    """The stored value, or `make()` stored now. Atomic: two starts never disagree."""
    from storage.db import transaction

    with transaction(db):
        value = get(db, key)
        if value is None:
            value = make()
            put(db, key, value)
    return value
