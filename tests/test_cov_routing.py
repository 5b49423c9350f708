"""The router (handlers/routing.py) and the opening-hours clock (bot/hours.py) decided on
real calls, in process: routes by each key, continue, topics, managers' mentions and
personal copies, opening hours per route and globally, the explanation `route` prints,
the table `check` prints, and the decision cache's bound. Pure functions of their input:
no network, no clock but the one given."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from bot import hours as hours_clock
from handlers import routing
from handlers.routing import Account, Hours, Manager, Route, Router, route_fn
from storage.model import Call
from storage.outbox import Target

KYIV = ZoneInfo("Europe/Kyiv")
DEFAULT = [Target("telegram", "-1000000000001")]
WEEKDAYS = Hours(
    days={d: ((time(9), time(19)),) for d in range(5)} | {5: ((time(10), time.max),)},
    holidays=frozenset({date(2026, 12, 25)}),
    after_hours="digest",
)
OLENA = Manager(
    "Olena", frozenset({"+380441112233"}), telegram=555, slack="U0OLENA01", personal=True
)
IVAN = Manager("Ivan", frozenset({"+380442223344"}), slack="U0IVAN001")


def _call(
    call_id: int = 1,
    *,
    status: str = "NOANSWER",
    tracking: str = "0445556677",
    manager_phone: str = "0441112233",
    make: str | None = "Toyota",
) -> Call:
    return Call(
        call_id,
        1_764_000_000,
        "2026-11-24T10:00:00",
        status,
        "0671234567",
        "+380671234567",
        destination_phone=manager_phone,
        phone=tracking,
        marka=make,
    )


def _router(**kw: object) -> Router:
    routes = [
        Route(
            1, 10, {"make": ("toyota", "Lexus")}, telegram=(("-1000000000002", 7),), continue_=True
        ),
        Route(
            2,
            20,
            {"tracking_phone": ("+380445556677",), "status": ("BYSY", "NOANSWER")},
            slack=("C0USED0001",),
        ),
        Route(
            3,
            30,
            {"manager": ("Ivan",), "account": ("north",)},
            slack=("C0NORTH001",),
            hours=WEEKDAYS,
        ),
    ]
    return Router(
        routes=routes,
        default_targets=DEFAULT,
        managers=[OLENA, IVAN],
        tz=KYIV,
        accounts=[Account("north", "1", SecretStr("k" * 40), SecretStr("s" * 20))],
        **kw,  # type: ignore[arg-type]
    )


def test_routes_continue_topics_mentions_and_the_personal_copy() -> None:
    router = _router()
    got = router.targets_for(_call())
    assert [(str(r.target), r.topic, r.mention, r.reason) for r in got] == [
        ("telegram:-1000000000002", 7, "telegram:555", "route 1"),
        ("slack:C0USED0001", None, "slack:U0OLENA01", "route 2"),
        ("telegram:555", None, None, "personal"),
    ]
    # the same facts again: the cached list itself
    assert router.targets_for(_call(2)) is got

    # a BUSY call from another tracking number of Ivan's, no make: no route matches
    other = _call(3, status="BUSY", tracking="0440000000", manager_phone="0442223344", make=None)
    assert [(str(r.target), r.mention) for r in router.targets_for(other)] == [
        ("telegram:-1000000000001", None)  # Ivan has no Telegram id: no mention there
    ]
    lines = router.explain(other)
    assert lines[0] == "route 1 (line 10): no: make (none) is not in [toyota, Lexus]"
    assert lines[1] == (
        "route 2 (line 20): no: tracking_phone 0440000000 is not in [+380445556677]"
    )
    assert lines[2].startswith("route 3 (line 30): no: manager Ivan") or lines[2].startswith(
        "route 3 (line 30): no: account (none)"
    )
    assert "no route matched: the default targets (TELEGRAM_CHAT_IDS / SLACK_CHANNEL_IDS)" in lines
    assert "manager: Ivan (destination_phone 0442223344)" in lines
    assert lines[-1] == "-> telegram:-1000000000001 (default)"


def test_route_hours_and_the_explanation_after_hours() -> None:
    router = _router(hours=WEEKDAYS)
    ivan = _call(4, tracking="0440000000", manager_phone="0442223344", make="BMW")
    sunday = datetime(2026, 11, 29, 12, 0, tzinfo=KYIV)
    got = router.targets_for(ivan, "north", sunday)
    assert [(str(r.target), r.mode, r.mention) for r in got] == [
        ("slack:C0NORTH001", "digest", "slack:U0IVAN001")
    ]
    lines = router.explain(ivan, "north", sunday)
    assert (
        "route 3 (line 30): matches (manager in [Ivan] and account in [north]); stops here (continue = false)"
        in lines
    )
    assert "closed at 2026-11-29 12:00 (digest)" in lines
    assert (
        lines[-1] == "-> slack:C0NORTH001 (route 3, after hours: digest, mention slack:U0IVAN001)"
    )
    monday = datetime(2026, 11, 30, 9, 30, tzinfo=KYIV)
    assert [r.mode for r in router.targets_for(ivan, "north", monday)] == ["normal"]

    # route_fn judges the hours at the clock it is given
    fn = route_fn(router, lambda: sunday.timestamp())
    assert [r.mode for r in fn(ivan, "north")] == ["digest"]
    plain = route_fn(_router(), lambda: 0.0)  # no hours anywhere: no clock needed
    assert [r.reason for r in plain(_call(), None)][:2] == ["route 1", "route 2"]

    # the personal copy follows the global hours
    assert [r.mode for r in router.targets_for(_call(5), None, sunday)][-1] == "digest"


def test_hours_opening_describe_and_the_table() -> None:
    friday_evening = datetime(2026, 11, 27, 19, 30, tzinfo=KYIV)
    assert not WEEKDAYS.is_open(friday_evening)
    assert WEEKDAYS.next_opening(friday_evening) == datetime(2026, 11, 28, 10, 0, tzinfo=KYIV)
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=KYIV)  # a Friday, a holiday
    assert not WEEKDAYS.is_open(christmas)
    assert WEEKDAYS.next_opening(christmas) == datetime(2026, 12, 26, 10, 0, tzinfo=KYIV)
    assert WEEKDAYS.next_opening(friday_evening - timedelta(hours=2)) == friday_evening - timedelta(
        hours=2
    )
    never = Hours(days={})
    assert never.next_opening(christmas) == christmas + timedelta(days=365)
    assert WEEKDAYS.describe() == (
        "mon-fri 09:00-19:00; sat 10:00-24:00; sun closed; 1 holiday(s); after hours: digest"
    )

    table = _router(hours=WEEKDAYS).table()
    assert (
        table[0]
        == "route 1 (line 10): make in [toyota, Lexus] -> telegram:-1000000000002/7 (continue)"
    )
    assert table[2].endswith(f" -> slack:C0NORTH001 [hours: {WEEKDAYS.describe()}]")
    assert "otherwise -> telegram:-1000000000001" in table
    assert f"hours: {WEEKDAYS.describe()}" in table
    assert "manager Olena: +380441112233 (telegram 555, slack U0OLENA01, personal copy)" in table
    assert "manager Ivan: +380442223344 (slack U0IVAN001)" in table
    bare = Router(
        routes=[Route(1, 5, {}, slack=("C0ALL00001",))],
        default_targets=DEFAULT,
        managers=[Manager("Nobody", frozenset({"+380440000001"}))],
    )
    assert bare.table()[0] == "route 1 (line 5): every call -> slack:C0ALL00001"
    assert "manager Nobody: +380440000001" in bare.table()
    assert _router().all_targets() == {
        *DEFAULT,
        Target("telegram", "-1000000000002"),
        Target("slack", "C0USED0001"),
        Target("slack", "C0NORTH001"),
        Target("telegram", "555"),
    }


def test_the_decision_cache_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(routing, "CACHE_SIZE", 3)  # a bound, not the routing's behaviour
    router = _router()
    for i in range(5):
        router.targets_for(_call(i, tracking=f"04400000{i:02d}"))
    assert len(router._cache) == 3


def test_open_seconds_and_the_next_opening_of_held_alerts() -> None:
    try:
        hours_clock.set_hours(None, KYIV)
        assert not hours_clock.active()
        assert hours_clock.opening_at(100.0) == 100.0
        assert hours_clock.open_seconds(100.0, 160.0) == 60.0
        hours_clock.set_hours(WEEKDAYS, KYIV)
        assert hours_clock.active()
        fri_1855 = datetime(2026, 11, 27, 18, 55, tzinfo=KYIV).timestamp()
        mon_0910 = datetime(2026, 11, 30, 9, 10, tzinfo=KYIV).timestamp()
        # 5 min on Friday, 14 h on Saturday (10:00-24:00), 10 min on Monday
        assert hours_clock.open_seconds(fri_1855, mon_0910) == 5 * 60 + 14 * 3600 + 10 * 60
        assert hours_clock.open_seconds(mon_0910, fri_1855) == 0.0
        sun = datetime(2026, 11, 29, 12, 0, tzinfo=KYIV).timestamp()
        assert hours_clock.opening_at(sun) == datetime(2026, 11, 30, 9, 0, tzinfo=KYIV).timestamp()
        assert hours_clock.opening_at(mon_0910) == mon_0910
        assert hours_clock.digest_title("en", 3)
    finally:
        hours_clock.set_hours(None, ZoneInfo("UTC"))
