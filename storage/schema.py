"""Versioned migrations, applied in order; PRAGMA user_version records the last one.

A step is SQL text, or a function of the database for what SQL cannot say in a line:
SQLite's ALTER TABLE cannot change a column's type, constraint or default, and
sqlite-utils' `table.transform(...)` does the twelve-step copy that takes instead (it keeps
the table's indexes, not its triggers: a step that transforms `calls` recreates
calls_prev_caller). The released steps are SQL and stay SQL: see README, Design notes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

Step = str | Callable[[sqlite_utils.Database], None]

# Each entry moves the schema one version up. Never edit a released entry: append a new one.
MIGRATIONS: list[Step] = [
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
        message_ref     TEXT               -- JSON: {chat_id, message_id} / {channel, ts}
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
    # 2: indexes for storage/stats. `/stats month` must stay fast (≤ 50 ms) on a year of
    # history (~85k calls a month): sorting that many rows for a GROUP BY or COUNT(DISTINCT)
    # alone costs more, so every aggregate is a walk over an index in the order it groups by.
    # - calls_by_manager / calls_by_car: one index range per (manager, status, missed) or
    #   car label, found by skipping through the index's distinct keys.
    # - prev_caller_at: started_at of the same caller's previous call (ordered by started_at,
    #   call_id), NULL for their first. The callers in [s, e) are then counted as the calls in
    #   range whose previous call is before s: a range count, no DISTINCT. A trigger keeps it
    #   right when calls arrive out of order (poll, backfill); calls are never updated.
    # - calls_missed / calls_answered_by_caller: /missed's "missed, and not answered since".
    """
    ALTER TABLE calls ADD COLUMN prev_caller_at INTEGER;
    UPDATE calls SET prev_caller_at = p.prev FROM (
        SELECT call_id, LAG(started_at) OVER (
            PARTITION BY caller_e164 ORDER BY started_at, call_id) AS prev
        FROM calls WHERE caller_e164 != ''
    ) AS p WHERE calls.call_id = p.call_id;

    CREATE TRIGGER calls_prev_caller AFTER INSERT ON calls WHEN NEW.caller_e164 != '' BEGIN
        UPDATE calls SET prev_caller_at = (
            SELECT started_at FROM calls AS p WHERE p.caller_e164 = NEW.caller_e164
            AND (p.started_at, p.call_id) < (NEW.started_at, NEW.call_id)
            ORDER BY p.started_at DESC, p.call_id DESC LIMIT 1
        ) WHERE call_id = NEW.call_id;
        -- a call that arrived late slots in before the caller's next one
        UPDATE calls SET prev_caller_at = NEW.started_at WHERE call_id = (
            SELECT call_id FROM calls AS n WHERE n.caller_e164 = NEW.caller_e164
            AND (n.started_at, n.call_id) > (NEW.started_at, NEW.call_id)
            ORDER BY n.started_at, n.call_id LIMIT 1
        );
    END;

    CREATE INDEX calls_by_manager
        ON calls (destination_phone, status, missed, started_at, waiting, duration);
    -- the expression is storage.stats' car label, "Marka Model" or "Marka"
    CREATE INDEX calls_by_car
        ON calls (marka || CASE WHEN model IS NULL OR model = '' THEN '' ELSE ' ' || model END,
                  started_at)
        WHERE marka IS NOT NULL AND marka != '';
    CREATE INDEX calls_first_caller ON calls (started_at, prev_caller_at)
        WHERE caller_e164 != '';
    -- missed / status repeat the partial indexes' WHERE so that SQLite 3.40 reads no table row
    CREATE INDEX calls_missed ON calls (started_at, caller_e164, missed) WHERE missed = 1;
    CREATE INDEX calls_answered_by_caller ON calls (caller_e164, started_at, status)
        WHERE status = 'ANSWER';
    """,
    # 3: retention (storage/retention.py). Deleting a call makes SQLite look for outbox rows
    # that reference it (the foreign key): without an index on outbox.call_id that is a scan
    # of the whole outbox per deleted call. Sent rows are found by age through outbox_sent;
    # it also serves the dispatcher's look at recent sends (rate limits across a restart).
    """
    CREATE INDEX outbox_call ON outbox (call_id);
    CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
    """,
    # 4: the callback loop (storage/resolutions.py): which missed call was called back or got
    # through, when and by whom. A row goes with its call (retention, forget): ON DELETE
    # CASCADE. answered_call_id is no foreign key: retention may drop that call first.
    """
    CREATE TABLE resolutions (
        call_id          INTEGER PRIMARY KEY REFERENCES calls (call_id) ON DELETE CASCADE,
        resolved_at      REAL NOT NULL,     -- UTC epoch seconds
        how              TEXT NOT NULL,     -- button | answered
        by_name          TEXT,              -- the presser's name (button)
        by_user          TEXT,              -- telegram:123 / slack:U.. (button)
        answered_call_id INTEGER,           -- the ANSWER call (answered)
        manager          TEXT,              -- destination_phone of that call (answered)
        target           TEXT               -- telegram:-100.. where the button was pressed
    );
    """,
    # 5: routing (issue 13). calls.account: the [[account]] that reported the call (NULL:
    # the RIA_* account). call_routes: the chats each call was routed to at ingest, for
    # every call (answered too), so that a chat's commands and summaries see its calls.
    """
    ALTER TABLE calls ADD COLUMN account TEXT;
    CREATE TABLE call_routes (
        call_id INTEGER NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
        channel TEXT NOT NULL,   -- telegram | slack | console
        target  TEXT NOT NULL,   -- chat id (a topic shares its chat's row) / channel id
        PRIMARY KEY (call_id, channel, target)
    ) WITHOUT ROWID;
    CREATE INDEX call_routes_target ON call_routes (channel, target, call_id);
    """,
    # 6: several RIA accounts (issue 13): each [[account]] has its own quota, so a request
    # records whose it was (NULL: the RIA_* account, every row made before this step).
    """
    ALTER TABLE ria_requests ADD COLUMN account TEXT;
    CREATE INDEX ria_requests_account_at ON ria_requests (account, at);
    """,
    # 7: the callback figures of `/stats` (storage/missed.episode_times, issue 12) and
    # /missed's episodes read every missed call of the period with its line. calls_missed has
    # no destination_phone, so each call cost a table row (~60 ms for the ~24k missed calls
    # of a month of a year's history). This index holds all they read, in the order they
    # need: by started_at, then one caller's calls of the same second by call_id. missed
    # repeats the WHERE (SQLite 3.40, see step 2). IF NOT EXISTS: the step can run again.
    """
    CREATE INDEX IF NOT EXISTS calls_missed_episodes
        ON calls (started_at, caller_e164, call_id, destination_phone, missed) WHERE missed = 1;
    """,
]


def migrate(conn: sqlite3.Connection, steps: list[Step] | None = None) -> int:
    """Bring the schema to the newest version; returns it. Each step is one transaction."""
    steps = MIGRATIONS if steps is None else steps
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(steps):
        raise RuntimeError(
            f"database schema version {version} is newer than this program knows "
            f"({len(steps)}): upgrade ria-calls-bot"
        )
    for number, step in enumerate(steps[version:], start=version + 1):
        if isinstance(step, str):
            # executescript commits first; wrap the step so it applies whole or not at all
            conn.executescript(f"BEGIN;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;")
        else:
            _run_step(conn, step, number)
    return len(steps)


def _run_step(
    conn: sqlite3.Connection, step: Callable[[sqlite_utils.Database], None], number: int
) -> None:
    # BEGIN IMMEDIATE: another process starting at the same moment waits for this step
    # instead of running it a second time; sqlite-utils nests its own work in savepoints
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] < number:
            step(sqlite_utils.Database(conn))
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
