"""The callback figures of `/stats` and the summaries (issue 12): how many callers who
missed us in a period were called back or got through, how soon, and who still waits.

Per caller their last episode counts (storage/missed): the figures need only each episode's
line, whether it is resolved and how long that took, which storage/missed.episode_times
gives per line without building an Episode per caller.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlite_utils

from storage.missed import LineTimes, Scope, episode_times

# destination_phone -> the key a manager's lines are counted under (the caller passes the
# configuration file's names, issue 13: storage knows no managers); None: per number
Group = Callable[[str], str] | None


@dataclass(frozen=True)
class CallbackFigures:
    """Missed callers of a period and how they were called back (or got through)."""

    missed_callers: int  # M: callers (with a number) who missed us in the period
    called_back: int  # N: whose last missed call is resolved (button or answered call)
    within_promise: int  # of those, resolved at most within_s after their episode began
    waiting: int  # still waiting: M - N
    median_callback_s: float | None  # median time to callback over the N; None if N = 0

    @property
    def called_back_rate(self) -> float | None:
        """N / M; None without missed callers."""
        return self.called_back / self.missed_callers if self.missed_callers else None

    @property
    def within_promise_rate(self) -> float | None:
        """Callers called back within the promise / M (a caller still waiting counts
        against it); None without missed callers."""
        return self.within_promise / self.missed_callers if self.missed_callers else None


@dataclass(frozen=True)
class ManagerCallbacks(CallbackFigures):
    destination_phone: str = ""  # the line of the caller's last missed call


@dataclass(frozen=True)
class CallbackStats(CallbackFigures):
    within_s: float = 0.0  # the promise these figures were counted against
    managers: list[ManagerCallbacks] = field(default_factory=list)  # by missed callers desc


def callback_stats(
    db: sqlite_utils.Database,
    start: int,
    end: int,
    *,
    within_s: float,
    scope: Scope = None,
    group: Group = None,
) -> CallbackStats:
    """Callback figures for the callers who missed us in [start, end), as they stand now.

    Per caller their last episode counts (storage/missed): called back when their last
    missed call is resolved, the time to callback running from the first call that
    resolution covered. Per manager: by the destination_phone of the last missed call."""
    per: dict[str, LineTimes] = {}  # manager -> her lines' callers
    for phone, times in episode_times(db, start, end, scope=scope).items():
        key = group(phone) if group else phone
        mine = per.setdefault(key, LineTimes())
        mine.waiting += times.waiting
        mine.took += times.took
    everyone = LineTimes(
        sum(t.waiting for t in per.values()), [took for t in per.values() for took in t.took]
    )
    managers = [
        ManagerCallbacks(*_figures(times, within_s), destination_phone=phone)
        for phone, times in per.items()
    ]
    managers.sort(key=lambda m: (-m.missed_callers, m.destination_phone))
    return CallbackStats(*_figures(everyone, within_s), within_s=within_s, managers=managers)


def _figures(times: LineTimes, within_s: float) -> tuple[int, int, int, int, float | None]:
    """CallbackFigures' fields, in order."""
    done = times.took
    return (
        times.waiting + len(done),
        len(done),
        sum(1 for t in done if t <= within_s),
        times.waiting,
        statistics.median(done) if done else None,
    )
