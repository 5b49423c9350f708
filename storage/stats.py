"""Aggregates over `calls` for a half-open UTC range [start, end) of `started_at`.

Read-only SQL, run on the writer thread (`await store.run(fn, ...)`), so it must be quick:
`/stats month` on a year of history (~81k calls in the month) takes ~45 ms (bench row 4).
Sorting that many rows for a GROUP BY or COUNT(DISTINCT) alone would cost more, so each
aggregate walks an index of migration 2 in its grouping order instead (see
storage/schema.py). With the callback figures (storage/callbacks), the counts run on a
second connection meanwhile (`_beside`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from storage.callbacks import CallbackFigures as CallbackFigures
from storage.callbacks import CallbackStats, Group, callback_stats
from storage.callbacks import ManagerCallbacks as ManagerCallbacks
from storage.missed import Scope

ANSWER = "ANSWER"

# Call.car's label in SQL: "Marka Model", or "Marka" when the model is unknown. It must stay
# textually identical to the expression of the calls_by_car index, or that index goes unused.
_CAR_LABEL = "marka || CASE WHEN model IS NULL OR model = '' THEN '' ELSE ' ' || model END"
_HAS_CAR = "marka IS NOT NULL AND marka != ''"  # the partial index's WHERE, repeated verbatim

# Every (manager, status, missed) key that ever occurred, found by skipping from one key to
# the next in calls_by_manager (a handful of seeks per key, however many calls share it),
# each with its counts inside the range: one index range per key, nothing sorted.
# (A row-value "(a, b, c) > (?, ?, ?)" seek would only use the first column here.)
_BY_MANAGER_SQL = """
WITH RECURSIVE k(d, s, m) AS (
    SELECT * FROM (
        SELECT destination_phone, status, missed FROM calls
        ORDER BY destination_phone, status, missed LIMIT 1)
    UNION ALL
    SELECT c.destination_phone, c.status, c.missed FROM k JOIN calls AS c ON c.rowid = coalesce(
        (SELECT rowid FROM calls WHERE destination_phone = k.d AND status = k.s AND missed > k.m
         ORDER BY destination_phone, status, missed LIMIT 1),
        (SELECT rowid FROM calls WHERE destination_phone = k.d AND status > k.s
         ORDER BY destination_phone, status, missed LIMIT 1),
        (SELECT rowid FROM calls WHERE destination_phone > k.d
         ORDER BY destination_phone, status, missed LIMIT 1))
)
SELECT d, s, m, (
    SELECT json_array(COUNT(*), SUM(waiting), SUM(duration)) FROM calls
    WHERE destination_phone = k.d AND status = k.s AND missed = k.m
    AND started_at >= :start AND started_at < :end
) FROM k
"""

# Likewise for car labels in calls_by_car.
_TOP_CARS_SQL = f"""
WITH RECURSIVE k(label) AS (
    SELECT * FROM (
        SELECT {_CAR_LABEL} AS l FROM calls WHERE {_HAS_CAR} ORDER BY l LIMIT 1)
    UNION ALL
    SELECT (SELECT {_CAR_LABEL} AS l FROM calls WHERE {_HAS_CAR} AND {_CAR_LABEL} > k.label
            ORDER BY l LIMIT 1)
    FROM k WHERE k.label IS NOT NULL
), counted AS MATERIALIZED (
    SELECT label, (
        SELECT COUNT(*) FROM calls WHERE {_HAS_CAR} AND {_CAR_LABEL} = k.label
        AND started_at >= :start AND started_at < :end
    ) AS n FROM k WHERE label IS NOT NULL
)
SELECT label, n FROM counted WHERE n > 0 ORDER BY n DESC, label LIMIT :top
"""

# A chat that sees only the calls routed to it (issue 13): the same figures over a join with
# call_routes (its index call_routes_target gives the chat's calls; usually far fewer).
_SCOPED_CALLS = """
SELECT c.* FROM call_routes AS r JOIN calls AS c ON c.call_id = r.call_id
WHERE r.channel = :channel AND r.target = :target
AND c.started_at >= :start AND c.started_at < :end
"""
_SCOPED_BY_MANAGER_SQL = f"""
SELECT destination_phone, status, missed, json_array(COUNT(*), SUM(waiting), SUM(duration))
FROM ({_SCOPED_CALLS}) GROUP BY destination_phone, status, missed
"""
_SCOPED_UNIQUE_SQL = f"""
SELECT COUNT(DISTINCT caller_e164) FROM ({_SCOPED_CALLS}) WHERE caller_e164 != ''
"""
_SCOPED_TOP_CARS_SQL = f"""
SELECT {_CAR_LABEL} AS label, COUNT(*) AS n FROM ({_SCOPED_CALLS}) WHERE {_HAS_CAR}
GROUP BY label ORDER BY n DESC, label LIMIT :top
"""

# A caller is counted once, on their first call in the range: the one whose previous call
# (prev_caller_at, kept by a trigger) is before the range or does not exist.
_UNIQUE_CALLERS_SQL = """
SELECT COUNT(*) FROM calls
WHERE started_at >= :start AND started_at < :end AND caller_e164 != ''
AND (prev_caller_at IS NULL OR prev_caller_at < :start)
"""


@dataclass(frozen=True)
class ManagerLine:
    """Calls forwarded to one manager's number (RIA's `destination_phone`)."""

    destination_phone: str
    total: int
    answered: int
    missed: int


@dataclass(frozen=True)
class PeriodStats:
    total: int
    answered: int  # status ANSWER
    missed: int  # calls flagged missed at ingest (MISSED_STATUSES)
    by_status: dict[str, int]  # every status seen, unknown ones included
    missed_by_status: dict[str, int]  # the missed calls only, per status (for the breakdown)
    answer_rate: float | None  # answered / total; None without calls
    avg_wait_s: float | None  # mean `waiting` over all calls
    avg_talk_s: float | None  # mean `duration` over answered calls
    unique_callers: int  # distinct caller_e164 (calls with no caller number not counted)
    managers: list[ManagerLine] = field(default_factory=list)  # by total desc
    top_cars: list[tuple[str, int]] = field(default_factory=list)  # (label, calls) desc
    callbacks: CallbackStats | None = None  # filled when period_stats is given within_s

    @property
    def other(self) -> int:
        """Calls neither answered nor missed (FAILED, CONGESTION, unknown statuses...)."""
        return self.total - self.answered - self.missed


def period_stats(
    db: sqlite_utils.Database,
    start: int,
    end: int,
    *,
    top: int = 5,
    within_s: float | None = None,
    scope: Scope = None,
    group: Group = None,
) -> PeriodStats:
    """The figures of `/stats` for calls with start <= started_at < end; with `within_s`
    (the callback promise, seconds) also the callback figures (`callbacks`); with `scope`
    (channel, chat) only the calls routed to that chat (call_routes, issue 13); with `group`
    the manager lines are counted per `group(destination_phone)` (one line per named
    manager, whatever number of lines she has)."""
    params: dict[str, Any] = {"start": start, "end": end, "top": max(top, 0)}  # -1: no limit
    if scope is not None:
        params |= {"channel": scope[0], "target": scope[1]}
    # with the callback figures to compute here, the counts go to a second connection
    beside = within_s is not None and end - start >= BESIDE_FROM_S
    counted = _beside(db, _count, params) if beside else None
    callbacks = (
        None
        if within_s is None
        else callback_stats(db, start, end, within_s=within_s, scope=scope, group=group)
    )
    keys, unique_callers, top_cars = (
        counted.result() if counted is not None else _count(db.conn, params)
    )
    total = answered = missed = wait_sum = talk_sum = 0
    by_status: dict[str, int] = {}
    missed_by_status: dict[str, int] = {}
    managers: dict[str, list[int]] = {}  # phone -> [total, answered, missed]
    for manager, status, is_missed, sums in keys:
        count, waiting, talk = json.loads(sums)
        if not count:
            continue  # a key that occurs only outside the range
        total += count
        wait_sum += waiting
        by_status[status] = by_status.get(status, 0) + count
        line = managers.setdefault(group(manager) if group else manager, [0, 0, 0])
        line[0] += count
        if status == ANSWER:
            answered += count
            talk_sum += talk
            line[1] += count
        if is_missed:
            missed += count
            missed_by_status[status] = missed_by_status.get(status, 0) + count
            line[2] += count

    if total == 0:
        return PeriodStats(0, 0, 0, {}, {}, None, None, None, 0, callbacks=callbacks)
    return PeriodStats(
        total=total,
        answered=answered,
        missed=missed,
        by_status=_sorted_counts(by_status),
        missed_by_status=_sorted_counts(missed_by_status),
        answer_rate=answered / total,
        avg_wait_s=wait_sum / total,
        avg_talk_s=talk_sum / answered if answered else None,
        unique_callers=unique_callers,
        managers=sorted(
            (ManagerLine(phone, *counts) for phone, counts in managers.items()),
            key=lambda m: (-m.total, m.destination_phone),
        ),
        top_cars=top_cars,
        callbacks=callbacks,
    )


# what _count reads: the (manager, status, missed, sums) keys, the callers, the top cars
Counted = tuple[list[tuple[Any, ...]], int, list[tuple[str, int]]]


def _count(conn: sqlite3.Connection, params: dict[str, Any]) -> Counted:
    queries = (_BY_MANAGER_SQL, _UNIQUE_CALLERS_SQL, _TOP_CARS_SQL)
    if "channel" in params:  # a scope
        queries = (_SCOPED_BY_MANAGER_SQL, _SCOPED_UNIQUE_SQL, _SCOPED_TOP_CARS_SQL)
    keys = [tuple(row) for row in conn.execute(queries[0], params)]
    unique = conn.execute(queries[1], params).fetchone()[0]
    cars = [(label, n) for label, n in conn.execute(queries[2], params)]
    return keys, unique, cars


_reader: ThreadPoolExecutor | None = None
# A second connection costs ~2 ms to open and prepare for: worth it from about a week of a
# busy dealer's calls (bench database: a week ~12 ms either way, a month 55 -> 45 ms).
BESIDE_FROM_S = 8 * 86400


def _beside(
    db: sqlite_utils.Database, fn: Callable[..., Counted], *args: Any
) -> Future[Counted] | None:
    """`fn(conn, *args)` on a connection of its own to the same file, on a thread of its own,
    while this one computes the callback figures. In WAL mode readers do not wait for each
    other, and SQLite lets go of the GIL while it steps, so on two cores `/stats month` takes
    about the longer of the two (the counts, ~30 ms) instead of their sum (~50 ms: bench
    row 4, 55 -> 45 ms median). Only the writer thread writes, and it waits here, so both
    connections see the same calls unless another process deletes some meanwhile (as when
    the statements ran one after the other). None, to run it here after all, for a
    database without a file, or inside a transaction: the second connection would not see
    its changes. The connection is opened per call (with its statements prepared, ~2 ms:
    hence BESIDE_FROM_S): one kept open would outlive its database (tests, a restore) and
    hold its files."""
    global _reader
    conn = db.conn
    if conn.in_transaction:
        return None
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if not path:
        return None
    if _reader is None:
        _reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stats-reader")
    return _reader.submit(_on_own_connection, path, fn, *args)


def _on_own_connection(path: str, fn: Callable[..., Counted], *args: Any) -> Counted:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    try:
        return fn(conn, *args)
    finally:
        conn.close()


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    """Biggest first, then by name: the order the reply lists them in."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class MissedCaller:
    """A caller who missed us in the period and has not got through since."""

    caller_e164: str
    caller_phone: str  # as RIA sent it, from the last missed call
    attempts: int  # missed calls in the period
    last_missed_at: int  # UTC epoch seconds of the last missed call in the period
    last_status: str  # status of that call
    car: str | None  # car label of that call
    waiting: int  # seconds they waited on that call


@dataclass(frozen=True)
class MissedReport:
    """`callers` is cut to the limit; the two counts are over the whole period."""

    callers: list[MissedCaller]  # still waiting, newest last miss first, at most `limit`
    waiting: int  # how many callers are still waiting (>= len(callers))
    reached: int  # callers who missed in the period but had an ANSWER call after it


# Missed callers in the range, each with whether an ANSWER call came from them after their
# last miss. Without statistics (no ANALYZE) SQLite picks a worse index of the same columns
# here, hence INDEXED BY. The empty caller is dropped in Python: naming `caller_e164 != ''`
# in SQL would draw the planner to calls_first_caller instead.
_MISSED_SQL = """
WITH m AS (
    SELECT caller_e164, COUNT(*) AS attempts, MAX(started_at) AS last_at
    FROM calls INDEXED BY calls_missed
    WHERE started_at >= ? AND started_at < ? AND missed = 1
    GROUP BY caller_e164
)
SELECT caller_e164, attempts, last_at, EXISTS (
    SELECT 1 FROM calls AS a INDEXED BY calls_answered_by_caller
    WHERE a.status = 'ANSWER' AND a.caller_e164 = m.caller_e164 AND a.started_at > m.last_at
) FROM m
"""


_ROUTED_TO = " AND call_id IN (SELECT call_id FROM call_routes WHERE channel = ? AND target = ?)"


def missed_report(
    db: sqlite_utils.Database, start: int, end: int, *, limit: int = 50, scope: Scope = None
) -> MissedReport:
    """Callers with a missed call in [start, end) and whether they got through later.

    "Got through later" means an ANSWER call from the same caller_e164 that started after
    their last missed call in the period, at any time since (not only inside the period):
    a caller who missed at 10:00 on Monday and was answered on Tuesday is no longer waiting.
    RIA only reports incoming calls, so a manager's call back is invisible here; a caller
    calling again and being answered is what we can see. Calls without a caller number
    cannot be called back and are left out.
    """
    conn = db.conn
    sql = _MISSED_SQL
    params: tuple[object, ...] = (start, end)
    if scope is not None:  # a route's chat: its routed missed calls (issue 13)
        sql = sql.replace("AND missed = 1", "AND missed = 1" + _ROUTED_TO)
        params = (start, end, *scope)
    rows = [r for r in conn.execute(sql, params) if r[0] != ""]
    waiting = [(caller, attempts, last_at) for caller, attempts, last_at, got in rows if not got]
    waiting.sort(key=lambda r: (-r[2], r[0]))
    callers = [_missed_caller(conn, start, end, *r) for r in waiting[: max(limit, 0)]]
    return MissedReport(callers=callers, waiting=len(waiting), reached=len(rows) - len(waiting))


def missed_callers(
    db: sqlite_utils.Database, start: int, end: int, *, limit: int = 50
) -> list[MissedCaller]:
    """`missed_report(...).callers`: the callers still waiting, newest last miss first."""
    return missed_report(db, start, end, limit=limit).callers


def _missed_caller(
    conn: sqlite3.Connection, start: int, end: int, caller: str, attempts: int, last_at: int
) -> MissedCaller:
    # the last missed call's details; call_id breaks a tie within the same second
    row = conn.execute(
        f"SELECT caller_phone, status, waiting, CASE WHEN marka IS NULL OR marka = ''"
        f" THEN NULL ELSE {_CAR_LABEL} END FROM calls"
        " WHERE caller_e164 = ? AND started_at = ? AND missed = 1"
        " AND started_at >= ? AND started_at < ? ORDER BY call_id DESC LIMIT 1",
        (caller, last_at, start, end),
    ).fetchone()
    caller_phone, status, waited, car = row
    return MissedCaller(
        caller_e164=caller,
        caller_phone=caller_phone,
        attempts=attempts,
        last_missed_at=last_at,
        last_status=status,
        car=car,
        waiting=waited,
    )
