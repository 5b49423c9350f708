"""Versioned migrations, applied in order; PRAGMA user_version records the last one."""

from __future__ import annotations

import sqlite3

# Each entry moves the schema one version up. Never edit a released entry: append a new one.
MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE calls (
        call_id           INTEGER PRIMARY KEY,
        started_at        INTEGER NOT NULL,  -- UTC epoch seconds of RIA's local `date`
        local_date        TEXT NOT NULL,     -- RIA's `date` as given: YYYY-MM-DDTHH:MM:SS, local
        status            TEXT NOT NULL,     -- normalised: BYSY -> BUSY, upper case
        missed            INTEGER NOT NULL,  -- 1 when status is in MISSED_STATUSES at ingest
        caller_phone      TEXT NOT NULL,     -- as RIA sent it
        caller_e164       TEXT NOT NULL,     -- +380..., or the raw number when unparseable
        destination_phone TEXT NOT NULL,
        phone             TEXT NOT NULL,     -- the tracking (substitute) number
        duration          INTEGER NOT NULL,
        waiting           INTEGER NOT NULL,  -- RIA's `waighting`
        link              TEXT NOT NULL,
        marka             TEXT,
        marka_id          INTEGER,
        model             TEXT,
        model_id          INTEGER,
        price             INTEGER,
        raw               TEXT NOT NULL,     -- the record exactly as received, JSON
        source            TEXT NOT NULL,     -- webhook | poll | backfill
        received_at       REAL NOT NULL      -- UTC epoch seconds
    );
    CREATE INDEX calls_started_at ON calls (started_at);
    CREATE INDEX calls_caller_started ON calls (caller_e164, started_at);

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup_key       TEXT NOT NULL UNIQUE,
        kind            TEXT NOT NULL,      -- missed_call | summary | test
        channel         TEXT NOT NULL,      -- telegram | slack | console
        target          TEXT NOT NULL,      -- chat id / channel id
        call_id         INTEGER REFERENCES calls (call_id),
        payload         TEXT NOT NULL DEFAULT '{}',
        state           TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
        attempts        INTEGER NOT NULL DEFAULT 0,
        created_at      REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        sent_at         REAL,
        last_error      TEXT,
        message_ref     TEXT               -- JSON: {"chat_id":..,"message_id":..} / {"channel":..,"ts":..}
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);

    CREATE TABLE rejected_payloads (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  REAL NOT NULL,
        source       TEXT NOT NULL,
        content_type TEXT,
        reason       TEXT NOT NULL,
        body         BLOB NOT NULL
    );

    CREATE TABLE ria_requests (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          REAL NOT NULL,      -- UTC epoch seconds
        purpose     TEXT NOT NULL,      -- poll | backfill | check
        status      INTEGER,            -- HTTP status, NULL when no answer came
        error       TEXT
    );
    CREATE INDEX ria_requests_at ON ria_requests (at);

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this program knows "
            f"({len(MIGRATIONS)}): upgrade ria-calls-bot"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; wrap the step so it applies whole or not at all
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return len(MIGRATIONS)
