"""storage.stats against a hand-computed fixture day, and against a naive model.

The fixture day is 2026-11-27 in Kyiv. Expected figures are worked out by hand from the
table below, not by running the code under test.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import stats
from storage.calls import Call, ingest
from storage.db import connect
from storage.schema import MIGRATIONS, migrate
from storage.stats import ManagerLine, MissedCaller, missed_callers, missed_report, period_stats

KYIV = ZoneInfo("Europe/Kyiv")
MISSED = ("NOANSWER", "CANCEL", "BUSY")

A, B, C, D = "0951110001", "0951110002", "0951110003", "0951110004"
E, F, G, H = "0951110005", "0951110006", "0951110007", "0951110008"
M1, M2, M3 = "0501000001", "0501000002", "0501000003"


def e164(number: str) -> str:
    return "+380" + number[1:] if number else ""


def make_call(
    call_id: int,
    when: str,  # local "YYYY-MM-DD HH:MM:SS"
    status: str,
    caller: str,
    manager: str,
    waiting: int,
    duration: int = 0,
    marka: str | None = None,
    model: str | None = None,
) -> Call:
    local = datetime.fromisoformat(when)
    return Call(
        call_id=call_id,
        started_at=int(local.replace(tzinfo=KYIV).timestamp()),
        local_date=local.isoformat(timespec="seconds"),
        status=status,
        caller_phone=caller,
        caller_e164=e164(caller),
        destination_phone=manager,
        phone="0930000000",
        duration=duration,
        waiting=waiting,
        marka=marka,
        model=model,
        raw={"call_id": call_id},
    )


DAY = "2026-11-27"
# id, local time, status, caller, manager, waiting, duration, make, model
FIXTURE = [
    make_call(1, f"{DAY} 09:05:00", "ANSWER", A, M1, 10, 120, "Toyota", "Camry"),
    make_call(2, f"{DAY} 09:30:00", "NOANSWER", B, M1, 30, 0, "Toyota", "Camry"),
    make_call(3, f"{DAY} 10:00:00", "CANCEL", C, M2, 5, 0, "BMW", "X5"),
    make_call(4, f"{DAY} 10:20:00", "ANSWER", B, M2, 8, 300, "Toyota", "Camry"),  # B got through
    make_call(5, f"{DAY} 11:00:00", "BUSY", D, M1, 0),
    make_call(6, f"{DAY} 11:30:00", "NOANSWER", D, M1, 40, 0, "Skoda", None),
    make_call(7, f"{DAY} 12:00:00", "FAILED", E, M2, 2),
    make_call(8, f"{DAY} 13:00:00", "ANSWER", A, M1, 12, 60, "BMW", "X5"),
    make_call(9, f"{DAY} 14:00:00", "WEIRD", F, M3, 4, 0, "Toyota", "Camry"),  # unknown status
    make_call(10, f"{DAY} 15:00:00", "NOANSWER", C, M2, 20, 0, "BMW", "X5"),
    make_call(11, f"{DAY} 23:59:59", "CANCEL", G, M3, 1, 0, "Skoda", "Octavia"),
    make_call(15, f"{DAY} 16:00:00", "NOANSWER", "", M3, 3),  # hidden number
    make_call(16, f"{DAY} 17:00:00", "NOANSWER", A, M1, 7),  # answered before, not after
    # outside the day
    make_call(12, "2026-11-26 23:59:59", "NOANSWER", H, M1, 9),
    make_call(13, "2026-11-28 00:00:00", "ANSWER", C, M2, 6, 50),  # C got through next day
    make_call(14, "2026-11-28 08:00:00", "NOANSWER", D, M1, 0),
]
DAY_START = int(datetime(2026, 11, 27, tzinfo=KYIV).timestamp())
DAY_END = int(datetime(2026, 11, 28, tzinfo=KYIV).timestamp())


def load(db: sqlite_utils.Database, calls: list[Call]) -> None:
    ingest(
        db,
        calls,
        source="webhook",
        received_at=2_000_000_000.0,
        missed_statuses=MISSED,
        targets=[],
        alert_max_age_s=None,
    )


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    db = connect(tmp_path / "t.db")
    # out of order, one at a time, as poll and backfill may deliver them
    calls = FIXTURE[:]
    random.Random(7).shuffle(calls)
    for call in calls:
        load(db, [call])
    return db


def test_fixture_day(db: sqlite_utils.Database) -> None:
    s = period_stats(db, DAY_START, DAY_END)
    assert s.total == 13
    assert s.answered == 3  # 1, 4, 8
    assert s.missed == 8  # 2, 3, 5, 6, 10, 11, 15, 16
    assert s.other == 2  # 7 FAILED, 9 WEIRD
    assert s.by_status == {
        "NOANSWER": 5,
        "ANSWER": 3,
        "CANCEL": 2,
        "BUSY": 1,
        "FAILED": 1,
        "WEIRD": 1,
    }
    assert list(s.by_status) == ["NOANSWER", "ANSWER", "CANCEL", "BUSY", "FAILED", "WEIRD"]
    assert s.missed_by_status == {"NOANSWER": 5, "CANCEL": 2, "BUSY": 1}
    assert s.answer_rate == pytest.approx(3 / 13)
    # 10+30+5+8+0+40+2+12+4+20+1+3+7 = 142
    assert s.avg_wait_s == pytest.approx(142 / 13)
    assert s.avg_talk_s == pytest.approx((120 + 300 + 60) / 3)
    assert s.unique_callers == 7  # A B C D E F G; the hidden number is nobody
    assert s.managers == [
        ManagerLine(M1, total=6, answered=2, missed=4),  # 1 2 5 6 8 16
        ManagerLine(M2, total=4, answered=1, missed=2),  # 3 4 7 10
        ManagerLine(M3, total=3, answered=0, missed=2),  # 9 11 15
    ]
    assert s.top_cars == [
        ("Toyota Camry", 4),  # 1 2 4 9
        ("BMW X5", 3),  # 3 8 10
        ("Skoda", 1),  # 6
        ("Skoda Octavia", 1),  # 11
    ]


def test_top_limits_the_cars(db: sqlite_utils.Database) -> None:
    assert period_stats(db, DAY_START, DAY_END, top=2).top_cars == [
        ("Toyota Camry", 4),
        ("BMW X5", 3),
    ]
    assert period_stats(db, DAY_START, DAY_END, top=0).top_cars == []


def test_range_is_half_open(db: sqlite_utils.Database) -> None:
    # the last second of the day is in, the first second of the next is out
    assert period_stats(db, DAY_END - 1, DAY_END).total == 1  # call 11
    assert period_stats(db, DAY_END, DAY_END + 1).total == 1  # call 13
    assert period_stats(db, DAY_START - 1, DAY_START).total == 1  # call 12


def test_empty_period(db: sqlite_utils.Database) -> None:
    s = period_stats(db, DAY_START - 86400 * 10, DAY_START - 86400 * 9)
    assert (s.total, s.answered, s.missed, s.unique_callers) == (0, 0, 0, 0)
    assert s.by_status == {} and s.managers == [] and s.top_cars == []
    assert s.answer_rate is None and s.avg_wait_s is None and s.avg_talk_s is None


def test_no_answered_calls_has_no_talk_time(db: sqlite_utils.Database) -> None:
    s = period_stats(db, DAY_START - 1, DAY_START)  # call 12 alone
    assert s.avg_talk_s is None
    assert s.answer_rate == 0
    assert s.avg_wait_s == 9


def test_missed_callers_fixture_day(db: sqlite_utils.Database) -> None:
    report = missed_report(db, DAY_START, DAY_END)
    g, a, d = (
        MissedCaller(e164(G), G, 1, DAY_END - 1, "CANCEL", "Skoda Octavia", 1),
        MissedCaller(e164(A), A, 1, DAY_START + 17 * 3600, "NOANSWER", None, 7),
        MissedCaller(e164(D), D, 2, DAY_START + 11 * 3600 + 1800, "NOANSWER", "Skoda", 40),
    )
    # B answered at 10:20 the same day and C just after midnight: both got through
    assert report.callers == [g, a, d]
    assert (report.waiting, report.reached) == (3, 2)
    assert missed_callers(db, DAY_START, DAY_END) == [g, a, d]
    assert missed_callers(db, DAY_START, DAY_END, limit=2) == [g, a]
    cut = missed_report(db, DAY_START, DAY_END, limit=1)
    assert (len(cut.callers), cut.waiting, cut.reached) == (1, 3, 2)


def test_missed_callers_over_two_days(db: sqlite_utils.Database) -> None:
    report = missed_report(db, DAY_START, DAY_END + 86400)
    by_caller = {c.caller_e164: c for c in report.callers}
    assert list(by_caller) == [e164(D), e164(G), e164(A)]
    # D missed twice on the 27th and once on the 28th at 08:00 (no car that time)
    assert by_caller[e164(D)] == MissedCaller(
        e164(D), D, 3, DAY_END + 8 * 3600, "NOANSWER", None, 0
    )
    assert report.reached == 2


def test_answer_in_the_same_second_as_the_miss_does_not_count(tmp_path: Path) -> None:
    db = connect(tmp_path / "t.db")
    load(
        db,
        [
            make_call(1, f"{DAY} 10:00:00", "NOANSWER", A, M1, 5),
            make_call(2, f"{DAY} 10:00:00", "ANSWER", A, M2, 5, 30),
        ],
    )
    report = missed_report(db, DAY_START, DAY_END)
    assert [c.caller_e164 for c in report.callers] == [e164(A)]


def test_empty_db(tmp_path: Path) -> None:
    db = connect(tmp_path / "t.db")
    assert period_stats(db, 0, 2**40).total == 0
    assert missed_report(db, 0, 2**40) == stats.MissedReport([], 0, 0)


def test_queries_walk_indexes_instead_of_sorting(db: sqlite_utils.Database) -> None:
    """The speed of /stats month depends on these plans (see storage/schema.py, migration 2)."""
    params = {"start": 0, "end": 1, "top": 5}

    def plan(sql: str) -> str:
        return "\n".join(r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))

    managers = plan(stats._BY_MANAGER_SQL)
    assert (
        "calls_by_manager (destination_phone=? AND status=? AND missed=? AND started_at>?"
        in managers
    )
    assert "TEMP B-TREE" not in managers
    cars = plan(stats._TOP_CARS_SQL)
    assert "calls_by_car (<expr>=? AND started_at>? AND started_at<?)" in cars
    assert "TEMP B-TREE FOR GROUP BY" not in cars
    callers = plan(stats._UNIQUE_CALLERS_SQL)
    assert "calls_first_caller" in callers and "TEMP B-TREE" not in callers


# ---- the same figures from a naive model, on random data inserted in random order --------

calls_strategy = st.lists(
    st.builds(
        lambda ts, status, caller, manager, waiting, duration, car: (
            ts,
            status,
            caller,
            manager,
            waiting,
            duration,
            car,
        ),
        st.integers(0, 40),  # a tiny time axis, so that ties and overlaps are common
        st.sampled_from(["ANSWER", "NOANSWER", "CANCEL", "BUSY", "FAILED", "X"]),
        st.sampled_from(["", A, B, C, D]),
        st.sampled_from([M1, M2, ""]),
        st.integers(0, 100),
        st.integers(0, 1000),
        st.sampled_from([(None, None), ("Audi", None), ("Audi", "A4"), ("BMW", ""), ("", "X")]),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=calls_strategy,
    seed=st.integers(0, 1000),
    bounds=st.tuples(st.integers(-1, 42), st.integers(-1, 42)),
)
def test_matches_a_naive_model(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple],
    seed: int,
    bounds: tuple[int, int],
) -> None:
    db = connect(tmp_path_factory.mktemp("h") / "t.db")
    calls = [
        Call(
            call_id=i + 1,
            started_at=ts,
            local_date="2026-01-01T00:00:00",
            status=status,
            caller_phone=caller,
            caller_e164=e164(caller),
            destination_phone=manager,
            waiting=waiting,
            duration=duration,
            marka=car[0],
            model=car[1],
        )
        for i, (ts, status, caller, manager, waiting, duration, car) in enumerate(rows)
    ]
    order = calls[:]
    random.Random(seed).shuffle(order)
    for i in range(0, len(order), 3):  # in batches, out of order
        load(db, order[i : i + 3])
    start, end = sorted(bounds)
    inside = [c for c in calls if start <= c.started_at < end]

    s = period_stats(db, start, end, top=3)
    assert s.total == len(inside)
    assert s.answered == sum(c.status == "ANSWER" for c in inside)
    assert s.missed == sum(c.status in MISSED for c in inside)
    assert s.by_status == {st_: sum(c.status == st_ for c in inside) for st_ in s.by_status}
    assert sum(s.by_status.values()) == len(inside)
    assert s.unique_callers == len({c.caller_e164 for c in inside if c.caller_e164})
    managers = {}
    for c in inside:
        line = managers.setdefault(c.destination_phone, [0, 0, 0])
        line[0] += 1
        line[1] += c.status == "ANSWER"
        line[2] += c.status in MISSED
    assert {m.destination_phone: [m.total, m.answered, m.missed] for m in s.managers} == managers
    cars: dict[str, int] = {}
    for c in inside:
        if c.car and c.marka:
            cars[c.car] = cars.get(c.car, 0) + 1
    assert s.top_cars == sorted(cars.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    if inside:
        assert s.avg_wait_s == pytest.approx(sum(c.waiting for c in inside) / len(inside))

    # missed callers: missed in range, and no ANSWER from them strictly after the last miss
    waiting, reached = set(), set()
    for caller in {c.caller_e164 for c in inside if c.status in MISSED and c.caller_e164}:
        last = max(c.started_at for c in inside if c.caller_e164 == caller and c.status in MISSED)
        later = any(
            c.caller_e164 == caller and c.status == "ANSWER" and c.started_at > last for c in calls
        )
        (reached if later else waiting).add(caller)
    report = missed_report(db, start, end)
    assert {c.caller_e164 for c in report.callers} == waiting
    assert (report.waiting, report.reached) == (len(waiting), len(reached))
    for mc in report.callers:
        mine = [c for c in inside if c.caller_e164 == mc.caller_e164 and c.status in MISSED]
        assert mc.attempts == len(mine)
        last = max(mine, key=lambda c: (c.started_at, c.call_id))
        assert (mc.last_missed_at, mc.last_status, mc.car, mc.waiting) == (
            last.started_at,
            last.status,
            last.car if last.marka else None,
            last.waiting,
        )
    assert [c.last_missed_at for c in report.callers] == sorted(
        (c.last_missed_at for c in report.callers), reverse=True
    )


def test_migration_fills_prev_caller_at_for_existing_calls(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(f"BEGIN;\n{MIGRATIONS[0]}\nPRAGMA user_version = 1;\nCOMMIT;")
    for c in FIXTURE:
        conn.execute(
            "INSERT INTO calls (call_id, started_at, local_date, status, missed, caller_phone,"
            " caller_e164, destination_phone, phone, duration, waiting, link, raw, source,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 0, ?, '', '{}', 'poll', 0)",
            (
                c.call_id,
                c.started_at,
                c.local_date,
                c.status,
                int(c.status in MISSED),
                c.caller_phone,
                c.caller_e164,
                c.destination_phone,
                c.waiting,
            ),
        )
    migrate(conn)
    conn.close()
    db = connect(path)
    assert period_stats(db, DAY_START, DAY_END).unique_callers == 7
    prev = dict(db.conn.execute("SELECT call_id, prev_caller_at FROM calls").fetchall())
    assert prev[1] is None and prev[8] == FIXTURE[0].started_at  # A: 09:05 then 13:00
    assert prev[15] is None  # the hidden number has no previous call
