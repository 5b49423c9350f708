"""Missed callers and their outcome (the callback loop): for `/missed` and the callback
figures of storage/callbacks (`episode_times`: the same episodes, counted per line).

A caller's missed calls in a period are read with their resolutions, oldest first. Since a
press or a later answered call resolves every open missed call of that caller at once, the
caller's state is that of their last missed call: open (still waiting since the first of
the open calls at the end), or resolved (the calls resolved by that same act, i.e. with the
same resolved_at, form the episode: time to callback = resolved_at - its first call).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import add, truediv

import sqlite_utils

from storage.resolutions import Resolution, resolution_of

_CAR = (
    "CASE WHEN marka IS NULL OR marka = '' THEN NULL"
    " ELSE marka || CASE WHEN model IS NULL OR model = '' THEN '' ELSE ' ' || model END END"
)

# Missed calls in the range through calls_missed_episodes (it holds every column read here:
# no table row), each with its resolution's time (a primary-key lookup); the order is fixed
# in Python.
_MISSED_CALLS_SQL = """
SELECT c.caller_e164, c.started_at, c.call_id, r.resolved_at, c.destination_phone
FROM calls AS c INDEXED BY calls_missed_episodes
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


@dataclass
class LineTimes:
    """The callers whose last missed call went to one line, as `episodes` leaves them."""

    waiting: int = 0  # still waiting
    took: list[float] = field(default_factory=list)  # the others: resolved_at - since, >= 0


# The calls of _MISSED_CALLS_SQL folded into one row: their number, how many have a
# resolution, and texts of every call's caller and line in the index's order (started_at,
# caller_e164, call_id: a caller's calls oldest first; group_concat appends in the order of
# the scan INDEXED BY fixes, and an ORDER BY subquery would cost ~5 ms more). A row per call
# through sqlite3 costs ~0.5 µs of Python, and a GROUP BY caller sorts every call: each
# 10-20 ms for a month of a year's history (~24k missed calls), where this row, split in
# Python with a dict keeping each caller's last call, takes ~15 ms.
# One read of the month's missed calls (a second statement for the resolved ones cost a
# second scan: ~14 ms on 24k calls, where these four columns add ~5 ms): their callers and
# lines, and which are resolved with those calls' started_at and resolved_at. resolved_at
# travels as integers i and n, being exactly i + n / 2**52 when 1 <= |i| < 2**62 (a double
# minus its integer part is exact, and from 1 up a multiple of 2**-52); as text SQLite 3.40
# would round it (quote() too).
_FOLDED_SQL = """
SELECT count(*), count(r.call_id),
    group_concat(c.caller_e164, char(31)), group_concat(c.destination_phone, char(31)),
    group_concat(r.call_id IS NOT NULL, ''),
    group_concat(CASE WHEN r.call_id IS NOT NULL THEN c.started_at END),
    group_concat(CAST(r.resolved_at AS INTEGER)),
    group_concat(
        CAST((r.resolved_at - CAST(r.resolved_at AS INTEGER)) * 4503599627370496.0 AS INTEGER))
FROM calls AS c INDEXED BY calls_missed_episodes
LEFT JOIN resolutions AS r ON r.call_id = c.call_id
WHERE c.started_at >= ? AND c.started_at < ? AND c.missed = 1
"""
_SEP = "\x1f"  # char(31)
_TWO_52 = 2**52


def episode_times(
    db: sqlite_utils.Database, start: int, end: int, *, scope: Scope = None
) -> dict[str, LineTimes]:
    """`episodes` as the callback figures need them, without building them: per line (the
    destination_phone of a caller's last missed call in [start, end)), how many of those
    callers still wait and how long each other one took (resolved_at - since, at least 0)."""
    conn = db.conn
    scoped = _SCOPED if scope is not None else ""
    params: tuple[object, ...] = (start, end, *(scope or ()))
    row = conn.execute(_FOLDED_SQL + scoped, params).fetchone()
    count, resolved, callers, lines, *times = row
    if not count:
        return {}
    who, line = callers.split(_SEP), lines.split(_SEP)
    if len(who) == count and len(line) == count:  # else a separator inside a number
        if not resolved:
            last_line = dict(zip(who, line, strict=True))  # later calls overwrite earlier
            last_line.pop("", None)  # no number: nobody to call back
            return {phone: LineTimes(n) for phone, n in Counter(last_line.values()).items()}
        found = _resolutions(count, *times)
        if found is not None:
            return _resolved_times(who, line, found)
    return _times_of(episodes(db, start, end, scope=scope))  # the exact, slower way


def _resolutions(
    count: int, flags: str, starts: str, wholes: str, parts: str
) -> dict[int, tuple[int, float]] | None:
    """The folded row's resolved calls: index -> (started_at, resolved_at); None when a
    resolved_at is below 1 s or beyond 2**62, which the integers cannot carry exactly."""
    # json parses the comma-separated integers in C: int() per item costs ~3x as much
    whole: list[int] = json.loads(f"[{wholes}]")
    if not (0 < min(map(abs, whole)) and max(map(abs, whole)) < 2**62):
        return None
    resolved_at = map(add, whole, map(truediv, json.loads(f"[{parts}]"), repeat(_TWO_52)))
    at = compress(range(count), map("1".__eq__, flags))
    return dict(zip(at, zip(json.loads(f"[{starts}]"), resolved_at, strict=True), strict=True))


def _resolved_times(
    who: list[str], line: list[str], resolution: dict[int, tuple[int, float]]
) -> dict[str, LineTimes]:
    """The figures of `episode_times` from its folded row, `resolution` being each resolved
    call's (started_at, resolved_at) by its index."""
    count = len(who)
    last = dict(zip(who, range(count), strict=True))
    last.pop("", None)
    ends = set(last.values())
    out: dict[str, LineTimes] = {}
    for phone, n in Counter(map(line.__getitem__, ends.difference(resolution))).items():
        out[phone] = LineTimes(n)
    done = ends.intersection(resolution)
    # a caller whose last call is also their first has one call: since is its started_at
    firsts = dict(zip(reversed(who), range(count - 1, -1, -1), strict=True)).values()
    alone = done.intersection(firsts)
    took = [max(r - s, 0.0) for s, r in map(resolution.__getitem__, alone)]
    ends_of: dict[str, list[int]] = {who[i]: [] for i in done.difference(alone)}
    if ends_of:
        for j, caller in enumerate(who):
            if caller in ends_of:
                ends_of[caller].append(j)
    for calls in ends_of.values():
        # the trailing run of calls with the same resolved_at, as `episodes` takes it
        since, resolved_at = resolution[calls[-1]]
        for j in reversed(calls[:-1]):
            if j not in resolution or resolution[j][1] != resolved_at:
                break
            since = resolution[j][0]
        took.append(max(resolved_at - since, 0.0))
    for phone, t in zip(
        [*map(line.__getitem__, alone), *(line[c[-1]] for c in ends_of.values())], took, strict=True
    ):
        (out.get(phone) or out.setdefault(phone, LineTimes())).took.append(t)
    return out


def _times_of(found: list[Episode]) -> dict[str, LineTimes]:
    """episode_times from the episodes themselves."""
    out: dict[str, LineTimes] = {}
    for e in found:
        times = out.setdefault(e.destination_phone, LineTimes())
        if e.resolved_at is None:
            times.waiting += 1
        else:
            times.took.append(max(e.resolved_at - e.since, 0.0))
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
