"""Aggregates over `calls` for a half-open UTC range [start, end) of `started_at`.

Everything here is read-only SQL run on the writer thread (`await store.run(fn, ...)`), so
the queries are shaped to stay fast on a year of history: each aggregate reads only the
range of the covering index `calls_period` (migration 2) and never touches the table rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlite_utils

ANSWER = "ANSWER"

# Call.car's label in SQL: "Marka Model", or "Marka" when the model is unknown.
_CAR_LABEL = "marka || CASE WHEN model IS NULL OR model = '' THEN '' ELSE ' ' || model END"


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

    @property
    def other(self) -> int:
        """Calls neither answered nor missed (FAILED, CONGESTION, unknown statuses...)."""
        return self.total - self.answered - self.missed


def period_stats(db: sqlite_utils.Database, start: int, end: int, *, top: int = 5) -> PeriodStats:
    conn = db.conn
    # One pass for the counters: grouped by (status, missed, manager) the result is tiny,
    # and every per-status, per-manager and overall figure is a sum over it.
    groups = conn.execute(
        "SELECT status, missed, destination_phone, COUNT(*), SUM(waiting),"
        " SUM(CASE WHEN status = ? THEN duration ELSE 0 END)"
        " FROM calls WHERE started_at >= ? AND started_at < ?"
        " GROUP BY status, missed, destination_phone",
        (ANSWER, start, end),
    ).fetchall()

    total = answered = missed = wait_sum = talk_sum = 0
    by_status: dict[str, int] = {}
    missed_by_status: dict[str, int] = {}
    managers: dict[str, list[int]] = {}
    for status, is_missed, manager, count, waiting, talk in groups:
        total += count
        wait_sum += waiting
        by_status[status] = by_status.get(status, 0) + count
        line = managers.setdefault(manager, [0, 0, 0])
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
        # nothing in range: skip the other scans
        return PeriodStats(0, 0, 0, {}, {}, None, None, None, 0)

    unique_callers = conn.execute(
        "SELECT COUNT(DISTINCT caller_e164) FROM calls"
        " WHERE started_at >= ? AND started_at < ? AND caller_e164 != ''",
        (start, end),
    ).fetchone()[0]
    top_cars = [
        (label, count)
        for label, count in conn.execute(
            f"SELECT {_CAR_LABEL} AS label, COUNT(*) AS n FROM calls"
            " WHERE started_at >= ? AND started_at < ? AND marka IS NOT NULL AND marka != ''"
            " GROUP BY label ORDER BY n DESC, label LIMIT ?",
            (start, end, top),
        )
    ]
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
    )


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


def missed_report(
    db: sqlite_utils.Database, start: int, end: int, *, limit: int = 50
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
    rows = conn.execute(
        "WITH m AS ("
        "  SELECT caller_e164, COUNT(*) AS attempts, MAX(started_at) AS last_at"
        "  FROM calls WHERE started_at >= ? AND started_at < ? AND missed = 1"
        "  AND caller_e164 != '' GROUP BY caller_e164"
        ") SELECT caller_e164, attempts, last_at, EXISTS ("
        "  SELECT 1 FROM calls a WHERE a.status = ? AND a.caller_e164 = m.caller_e164"
        "  AND a.started_at > m.last_at"
        ") FROM m",
        (start, end, ANSWER),
    ).fetchall()
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
    conn, start: int, end: int, caller: str, attempts: int, last_at: int
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
