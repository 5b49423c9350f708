"""The callback figures of `/stats` (storage/stats.callback_stats, computed by
storage/missed.episode_times from one folded row) against their old definition: the
callers' last episodes from storage/missed.episodes, aggregated as callback_stats did
before (kept below, verbatim, as the reference). Random calls are ingested out of order
through the real ingest (its trigger keeps prev_caller_at, a later ANSWER resolves earlier
misses as the service does), then resolved at random like button presses (several calls
at once, single ones, out of order, before their call started, shared times); callers
with several lines per manager, hidden numbers, routed chats, and values that force the
exact, slower path are all drawn."""

from __future__ import annotations

import random
import sqlite3
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import missed, stats
from storage.calls import Call, ingest
from storage.db import connect
from storage.missed import Episode, episode_times, episodes
from storage.schema import MIGRATIONS, migrate
from storage.stats import CallbackStats, ManagerCallbacks, callback_stats, period_stats

MISSED = ("NOANSWER", "CANCEL", "BUSY")
T0 = 1_764_000_000  # 2025-11-24: a real epoch, so that resolved_at >= 1 takes the fast path
M1, M2, M3 = "0501000001", "0501000002", "0501000003"
NAMES = {M1: "Olena", M2: "Olena", M3: "Ivan"}  # Olena answers two lines
SCOPE = ("telegram", "-100")
CALLERS = ["+380951110001", "+380951110002", "+380951110003", "+380951110004", ""]
ODD_CALLERS = ["+38\x1f095", "09,5 1"]  # a separator inside: the exact path must take over


# ---- the reference: callback_stats before the folded row (storage/stats.py at 579bc8a) ----


def _figures(times: list[float | None], within_s: float) -> tuple[int, int, int, int, float | None]:
    done = [t for t in times if t is not None]
    return (
        len(times),
        len(done),
        sum(1 for t in done if t <= within_s),
        len(times) - len(done),
        statistics.median(done) if done else None,
    )


def reference_callback_stats(
    found: list[Episode], within_s: float, group: Callable[[str], str] | None
) -> CallbackStats:
    per: dict[str, list[float | None]] = {}
    for e in found:
        took = None if e.resolved_at is None else max(e.resolved_at - e.since, 0.0)
        phone = group(e.destination_phone) if group else e.destination_phone
        per.setdefault(phone, []).append(took)
    everyone = [t for times in per.values() for t in times]
    managers = [
        ManagerCallbacks(*_figures(times, within_s), destination_phone=phone)
        for phone, times in per.items()
    ]
    managers.sort(key=lambda m: (-m.missed_callers, m.destination_phone))
    return CallbackStats(*_figures(everyone, within_s), within_s=within_s, managers=managers)


# ---- a naive model of episodes, from the rows as drawn -----------------------------------


@dataclass(frozen=True)
class Row:
    call_id: int
    started_at: int
    status: str
    caller: str
    line: str
    routed: bool


def naive_episodes(
    rows: list[Row], resolved: dict[int, float], start: int, end: int, scoped: bool
) -> dict[str, tuple[str, int, list[int], int, float | None]]:
    """caller -> (line, since, call ids of the last episode, attempts, resolved_at)."""
    mine: dict[str, list[Row]] = {}
    for r in rows:
        if start <= r.started_at < end and r.status in MISSED and r.caller:
            if r.routed or not scoped:
                mine.setdefault(r.caller, []).append(r)
    out = {}
    for caller, calls in mine.items():
        calls.sort(key=lambda r: (r.started_at, r.call_id))
        last = resolved.get(calls[-1].call_id)
        first = len(calls) - 1
        while first > 0 and resolved.get(calls[first - 1].call_id) == last:
            first -= 1
        run = calls[first:]
        out[caller] = (
            calls[-1].line,
            run[0].started_at,
            [r.call_id for r in run],
            len(calls),
            last,
        )
    return out


# ---- drawing and loading -----------------------------------------------------------------

call_rows = st.lists(
    st.tuples(
        st.integers(0, 40),  # a short time axis: ties and same-second calls are common
        st.sampled_from(["NOANSWER", "CANCEL", "BUSY", "ANSWER", "ANSWER", "FAILED"]),
        st.integers(0, len(CALLERS) - 1),
        st.sampled_from([M1, M2, M3]),
        st.booleans(),  # routed to the SCOPE chat
    ),
    max_size=45,
)
# (kind, call index, offset): "press" resolves the caller's still open missed calls that
# started up to the pressed one, at started_at + offset (as a button does); "one" (re)sets
# that call's alone, possibly before it started (offset < 0); "same" gives it the previous
# press's resolved_at; "epoch" sets it to offset / 4000 s, near 0 (only the exact path can
# carry such a time)
KINDS = ["press", "press", "press", "one", "same"]
presses = st.one_of(
    st.just([]),
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.integers(0, 44),
            st.floats(-30, 3000, allow_nan=False).map(lambda x: round(x, 6)),
        ),
        max_size=12,
    ),
)
odd_presses = st.lists(
    st.tuples(
        st.sampled_from([*KINDS, "epoch", "epoch"]),
        st.integers(0, 44),
        st.floats(-30, 3000, allow_nan=False).map(lambda x: round(x, 6)),
    ),
    max_size=12,
)


@contextmanager
def folded_row_only() -> Iterator[None]:
    """Fail if episode_times falls back to episodes (the path this file checks is the fast
    one; the fallback is the old definition itself)."""

    def refuse(*args: object, **kwargs: object) -> list[Episode]:
        raise AssertionError("episode_times took the exact path")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(missed, "episodes", refuse)
        yield


def build(
    db: sqlite_utils.Database,
    drawn: list[tuple],
    pressed: list[tuple],
    base: int,
    seed: int,
    odd: bool,
) -> tuple[list[Row], dict[int, float]]:
    callers = [*CALLERS, *ODD_CALLERS] if odd else CALLERS
    rows = [
        Row(i + 1, base + ts, status, callers[who % len(callers)], line, routed)
        for i, (ts, status, who, line, routed) in enumerate(drawn)
    ]
    if odd and rows:
        rows[0] = Row(1, rows[0].started_at, "BUSY", ODD_CALLERS[0], M1, True)
    calls = [
        Call(
            call_id=r.call_id,
            started_at=r.started_at,
            local_date="2025-11-24T10:00:00",
            status=r.status,
            caller_phone=r.caller,
            caller_e164=r.caller,
            destination_phone=r.line,
        )
        for r in rows
    ]
    order = calls[:]
    random.Random(seed).shuffle(order)
    for i in range(0, len(order), 4):  # in batches, out of order: poll and backfill do that
        ingest(
            db,
            order[i : i + 4],
            source="poll",
            received_at=base + 5000.0,
            missed_statuses=MISSED,
            targets=[],
            alert_max_age_s=None,
        )
    conn = db.conn
    conn.executemany(
        "INSERT INTO call_routes (call_id, channel, target) VALUES (?, ?, ?)",
        [(r.call_id, *SCOPE) for r in rows if r.routed],
    )
    previous = float(base)
    for kind, index, offset in pressed:
        if not rows:
            break
        r = rows[index % len(rows)]
        at = {"same": previous, "epoch": offset / 4000}.get(kind, r.started_at + offset)
        if kind == "press":
            ids = [
                o.call_id
                for o in rows
                if o.caller == r.caller
                and o.status in MISSED
                and (o.started_at, o.call_id) <= (r.started_at, r.call_id)
            ]
        else:
            ids = [r.call_id]
        ids = [i for i in ids if rows[i - 1].status in MISSED]
        # a press leaves calls already resolved as they are (storage/resolutions does too)
        verb = "INSERT OR IGNORE" if kind == "press" else "INSERT OR REPLACE"
        conn.executemany(
            verb + " INTO resolutions (call_id, resolved_at, how) VALUES (?, ?, 'button')",
            [(i, at) for i in ids],
        )
        previous = at
    resolved = dict(conn.execute("SELECT call_id, resolved_at FROM resolutions").fetchall())
    return rows, resolved


# per number, per named manager (Olena has two lines), everyone under one name
GROUPS: list[Callable[[str], str] | None] = [None, NAMES.__getitem__, lambda phone: "all"]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    drawn=call_rows,
    pressed=presses,
    seed=st.integers(0, 1000),
    bounds=st.tuples(st.integers(-1, 42), st.integers(-1, 42)),
    within_s=st.sampled_from([0.0, 60.0, 900.0, 1799.5]),
    grouping=st.integers(0, len(GROUPS) - 1),
    scoped=st.booleans(),
)
def test_callback_figures_are_the_old_ones(
    tmp_path_factory: pytest.TempPathFactory,
    drawn: list[tuple],
    pressed: list[tuple],
    seed: int,
    bounds: tuple[int, int],
    within_s: float,
    grouping: int,
    scoped: bool,
) -> None:
    db = connect(tmp_path_factory.mktemp("cb") / "t.db")
    rows, resolved = build(db, drawn, pressed, T0, seed, odd=False)
    start, end = (T0 + b for b in sorted(bounds))
    scope = SCOPE if scoped else None
    group = GROUPS[grouping]

    found = episodes(db, start, end, scope=scope)
    naive = naive_episodes(rows, resolved, start, end, scoped)
    assert {
        e.caller_e164: (e.destination_phone, e.since, e.call_ids, e.attempts, e.resolved_at)
        for e in found
    } == naive
    with folded_row_only(), pytest.MonkeyPatch.context() as patch:
        fast = callback_stats(db, start, end, within_s=within_s, scope=scope, group=group)
        patch.setattr(stats, "BESIDE_FROM_S", 0)  # the counts on a second connection
        both = period_stats(db, start, end, within_s=within_s, scope=scope, group=group)
    assert fast == reference_callback_stats(found, within_s, group)
    # with callbacks the counts come from a second connection (stats._beside): the same
    assert both.callbacks == fast
    assert replace(both, callbacks=None) == period_stats(db, start, end, scope=scope, group=group)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    drawn=call_rows,
    pressed=odd_presses,
    seed=st.integers(0, 1000),
    base=st.sampled_from([0, -20]),
    odd=st.booleans(),
)
def test_odd_numbers_and_times_take_the_exact_path_with_the_same_figures(
    tmp_path_factory: pytest.TempPathFactory,
    drawn: list[tuple],
    pressed: list[tuple],
    seed: int,
    base: int,
    odd: bool,
) -> None:
    """Around the epoch (resolved_at below 1 s, or negative) and with separators inside
    numbers or lines, the folded row cannot carry the figures exactly."""
    db = connect(tmp_path_factory.mktemp("odd") / "t.db")
    build(db, drawn, pressed, base, seed, odd)
    start, end = base - 1, base + 42
    found = episodes(db, start, end)
    assert callback_stats(db, start, end, within_s=60.0) == reference_callback_stats(
        found, 60.0, None
    )


def test_a_hand_made_month_takes_the_fast_path_and_counts_each_caller_once(
    tmp_path: Path,
) -> None:
    """One caller missed twice on two lines (the last line counts), was called back 10 min
    after the first miss by one press; another missed, was answered later, missed again
    (waiting); a hidden number is nobody's."""
    db = connect(tmp_path / "t.db")
    a, b = "+380951110001", "+380951110002"
    calls = [
        Call(1, T0, "2025-11-24T10:00:00", "NOANSWER", a, a, M1),
        Call(2, T0 + 60, "2025-11-24T10:01:00", "BUSY", a, a, M2),
        Call(3, T0 + 100, "2025-11-24T10:01:40", "NOANSWER", b, b, M3),
        Call(4, T0 + 400, "2025-11-24T10:06:40", "ANSWER", b, b, M3),
        Call(5, T0 + 900, "2025-11-24T10:15:00", "CANCEL", b, b, M1),
        Call(6, T0 + 950, "2025-11-24T10:15:50", "NOANSWER", "", "", M1),
    ]
    ingest(
        db,
        calls,
        source="webhook",
        received_at=T0 + 1000.0,
        missed_statuses=MISSED,
        targets=[],
        alert_max_age_s=None,
    )
    db.conn.executemany(
        "INSERT INTO resolutions (call_id, resolved_at, how) VALUES (?, ?, 'button')",
        [(1, T0 + 600.25), (2, T0 + 600.25)],
    )
    with folded_row_only():
        times = episode_times(db, T0, T0 + 3600)
        cb = callback_stats(db, T0, T0 + 3600, within_s=600.0, group=NAMES.__getitem__)
    assert {k: (v.waiting, v.took) for k, v in times.items()} == {M2: (0, [600.25]), M1: (1, [])}
    assert (cb.missed_callers, cb.called_back, cb.within_promise, cb.waiting) == (2, 1, 0, 1)
    assert cb.median_callback_s == 600.25
    assert [(m.destination_phone, m.missed_callers, m.waiting) for m in cb.managers] == [
        ("Olena", 2, 1)
    ]
    db.conn.execute("DELETE FROM resolutions")  # no resolution at all: the open-only path
    with folded_row_only():
        times = episode_times(db, T0, T0 + 3600)
    assert {k: (v.waiting, v.took) for k, v in times.items()} == {M2: (1, []), M1: (1, [])}


def test_a_time_near_the_epoch_keeps_its_last_bit(tmp_path: Path) -> None:
    """0.3 s is no multiple of 2**-52: split into integers it would come back as
    0.29999999999999982, so only the exact path may count it."""
    db = connect(tmp_path / "t.db")
    ingest(
        db,
        [Call(1, 0, "1970-01-01T03:00:00", "NOANSWER", "+380951110001", "+380951110001", M1)],
        source="webhook",
        received_at=1.0,
        missed_statuses=MISSED,
        targets=[],
        alert_max_age_s=None,
    )
    db.conn.execute("INSERT INTO resolutions (call_id, resolved_at, how) VALUES (1, 0.3, 'button')")
    assert callback_stats(db, 0, 10, within_s=1.0).median_callback_s == 0.3


def test_the_missed_calls_are_read_from_one_index_without_sorting(tmp_path: Path) -> None:
    """Their speed rests on calls_missed_episodes (migration 7) holding every column read:
    no table row per call, no temporary B-tree."""
    db = connect(tmp_path / "t.db")
    for sql in (missed._FOLDED_SQL, missed._MISSED_CALLS_SQL):
        for scope in ((), SCOPE):
            text = sql + (missed._SCOPED if scope else "")
            plan = "\n".join(
                r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + text, (0, 1, *scope))
            )
            assert "SEARCH c USING COVERING INDEX calls_missed_episodes (started_at>?" in plan
            assert "TEMP B-TREE" not in plan


def test_migration_7_indexes_a_database_of_version_6_and_may_run_again(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "v6.db", isolation_level=None)
    assert migrate(conn, MIGRATIONS[:6]) == 6
    conn.execute(
        "INSERT INTO calls (call_id, started_at, local_date, status, missed, caller_phone,"
        " caller_e164, destination_phone, phone, duration, waiting, link, raw, source,"
        " received_at) VALUES (1, ?, '', 'BUSY', 1, 'x', '+380951110001', ?, '', 0, 0, '',"
        " '{}', 'poll', 0)",
        (T0, M1),
    )
    assert migrate(conn) == len(MIGRATIONS) == 7
    conn.executescript(str(MIGRATIONS[6]))  # IF NOT EXISTS: a second run changes nothing
    conn.close()
    db = connect(tmp_path / "v6.db")
    names = {i.name for i in db.table("calls").indexes}
    assert {"calls_missed", "calls_missed_episodes"} <= names
    times = episode_times(db, T0, T0 + 1)
    assert {k: (v.waiting, v.took) for k, v in times.items()} == {M1: (1, [])}


def test_inside_a_transaction_the_counts_stay_on_this_connection(tmp_path: Path) -> None:
    """A second connection would not see what this one has not committed yet."""
    db = connect(tmp_path / "t.db")
    db.conn.execute("BEGIN")
    db.conn.execute(
        "INSERT INTO calls (call_id, started_at, local_date, status, missed, caller_phone,"
        " caller_e164, destination_phone, phone, duration, waiting, link, raw, source,"
        " received_at) VALUES (1, ?, '', 'BUSY', 1, 'x', '+380951110001', ?, '', 0, 0, '',"
        " '{}', 'poll', 0)",
        (T0, M1),
    )
    month = (T0 - 20 * 86400, T0 + 20 * 86400)  # long enough for a second connection
    assert month[1] - month[0] >= stats.BESIDE_FROM_S
    figures = period_stats(db, *month, within_s=60.0)
    db.conn.execute("ROLLBACK")
    assert (figures.total, figures.missed, figures.unique_callers) == (1, 1, 1)
    assert figures.callbacks is not None and figures.callbacks.waiting == 1
    memory = connect(":memory:")  # no file for a second connection: counted here too
    assert period_stats(memory, *month, within_s=60.0).total == 0
