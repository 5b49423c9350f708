"""Missed callers and their outcome (the callback loop): for `/missed` and the callback
figures of storage/stats.

A caller's missed calls in a period are read with their resolutions, oldest first. Since a
press or a later answered call resolves every open missed call of that caller at once, the
caller's state is that of their last missed call: open (still waiting since the first of
the open calls at the end), or resolved (the calls resolved by that same act, i.e. with the
same resolved_at, form the episode: time to callback = resolved_at - its first call).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

from storage.resolutions import Resolution, resolution_of

_CAR = (
    "CASE WHEN marka IS NULL OR marka = '' THEN NULL"
    " ELSE marka || CASE WHEN model IS NULL OR model = '' THEN '' ELSE ' ' || model END END"
)

# Missed calls in the range through calls_missed, each with its resolution's time (a
# primary-key lookup); the order is fixed in Python (the index is by started_at already).
_MISSED_CALLS_SQL = """
SELECT c.caller_e164, c.started_at, c.call_id, r.resolved_at, c.destination_phone
FROM calls AS c INDEXED BY calls_missed
LEFT JOIN resolutions AS r ON r.call_id = c.call_id
WHERE c.started_at >= ? AND c.started_at < ? AND c.missed = 1
"""


@dataclass(frozen=True)
class CallerOutcome:
    """One caller with missed calls in the period, as they stand now."""

    caller_e164: str
    caller_phone: str  # as RIA sent it, on the last missed call
    destination_phone: str  # the manager line of the last missed call
    attempts: int  # missed calls in the period
    last_missed_at: int  # UTC epoch seconds
    last_status: str
    car: str | None  # car label of the last missed call
    since: int  # started_at of the first call of the last episode (waiting since)
    call_ids: list[int]  # the calls of the last episode, oldest first
    resolution: Resolution | None  # of the last missed call; None: still waiting

    @property
    def open(self) -> bool:
        return self.resolution is None

    @property
    def callback_s(self) -> float | None:
        """Time from the first call of the episode to its resolution; None while open."""
        if self.resolution is None:
            return None
        return max(self.resolution.resolved_at - self.since, 0.0)

    def waited_s(self, now: float) -> float:
        """How long they have waited (open) or waited (resolved)."""
        if self.resolution is None:
            return max(now - self.since, 0.0)
        return self.callback_s or 0.0


@dataclass(frozen=True)
class Episode:
    """A caller's last episode in a period: the figures need no more than this."""

    caller_e164: str
    destination_phone: str  # of the last missed call
    since: int  # started_at of the episode's first call
    call_ids: list[int]  # oldest first
    attempts: int  # missed calls of the caller in the period
    resolved_at: float | None  # None: still waiting


# a chat outside TELEGRAM_CHAT_IDS / SLACK_CHANNEL_IDS: only the calls routed to it (issue 13)
_SCOPED = " AND c.call_id IN (SELECT call_id FROM call_routes WHERE channel = ? AND target = ?)"

# (channel, target id) of a chat that sees only its routed calls; None: every call
Scope = tuple[str, str] | None


def episodes(
    db: sqlite_utils.Database, start: int, end: int, *, scope: Scope = None
) -> list[Episode]:
    """Per caller (with a number) who missed us in [start, end): their last episode."""
    by_caller: dict[str, list[tuple[int, int, float | None, str]]] = {}
    sql = _MISSED_CALLS_SQL + (_SCOPED if scope is not None else "")
    params: tuple[object, ...] = (start, end, *(scope or ()))
    for caller, started, call_id, resolved_at, dest in db.conn.execute(sql, params):
        if caller:
            by_caller.setdefault(caller, []).append((started, call_id, resolved_at, dest))
    out: list[Episode] = []
    for caller, calls in by_caller.items():
        calls.sort()
        last = calls[-1][2]
        first = len(calls) - 1
        # the trailing run of calls in the same state (all open / the same resolved_at)
        while first > 0 and calls[first - 1][2] == last:
            first -= 1
        episode = calls[first:]
        out.append(
            Episode(caller, calls[-1][3], episode[0][0], [c[1] for c in episode], len(calls), last)
        )
    return out


def caller_outcomes(
    db: sqlite_utils.Database, start: int, end: int, *, scope: Scope = None
) -> list[CallerOutcome]:
    """Every caller (with a number) who missed us in [start, end), oldest episode first."""
    conn = db.conn
    found = episodes(db, start, end, scope=scope)
    resolutions = resolution_of(db, [e.call_ids[-1] for e in found])
    out: list[CallerOutcome] = []
    for e in found:
        caller, since, ids, attempts = e.caller_e164, e.since, e.call_ids, e.attempts
        row = conn.execute(
            f"SELECT caller_phone, destination_phone, started_at, status, {_CAR}"
            " FROM calls WHERE call_id = ?",
            (ids[-1],),
        ).fetchone()
        out.append(
            CallerOutcome(
                caller_e164=caller,
                caller_phone=row[0],
                destination_phone=row[1],
                attempts=attempts,
                last_missed_at=row[2],
                last_status=row[3],
                car=row[4],
                since=since,
                call_ids=ids,
                resolution=resolutions.get(ids[-1]),
            )
        )
    out.sort(key=lambda o: (o.since, o.caller_e164))
    return out


@dataclass(frozen=True)
class OpenReport:
    callers: list[CallerOutcome]  # still waiting, longest wait first, at most `limit`
    waiting: int  # how many are still waiting (>= len(callers))
    resolved: int  # callers of the period who were called back or got through


def open_callers(
    db: sqlite_utils.Database, start: int, end: int, *, limit: int = 50, scope: Scope = None
) -> OpenReport:
    """`/missed` without argument: only callers still waiting (their last missed call is
    neither called back nor got through), the longest waiting first. The waited time is
    `outcome.waited_s(now)`."""
    outcomes = caller_outcomes(db, start, end, scope=scope)
    waiting = [o for o in outcomes if o.open]
    return OpenReport(waiting[: max(limit, 0)], len(waiting), len(outcomes) - len(waiting))


def all_outcomes(
    db: sqlite_utils.Database, start: int, end: int, *, limit: int = 50, scope: Scope = None
) -> list[CallerOutcome]:
    """`/missed all` or a period: every caller with their outcome, oldest first."""
    return caller_outcomes(db, start, end, scope=scope)[: max(limit, 0)]
