"""Small key/value settings the service keeps for itself (generated secrets, poller state)."""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils
from sqlite_utils.db import NotFoundError

from storage.db import transaction


def get(db: sqlite_utils.Database, key: str) -> str | None:
    try:
        return str(db.table("meta").get(key)["value"])
    except NotFoundError:
        return None


def put(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.table("meta").upsert({"key": key, "value": value}, pk="key")


def get_or_create(db: sqlite_utils.Database, key: str, make: Callable[[], str]) -> str:
    """The stored value, or `make()` stored now. Atomic: two starts never disagree."""
    with transaction(db):
        value = get(db, key)
        if value is None:
            value = make()
            put(db, key, value)
    return value
