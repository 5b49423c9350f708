"""Routing (issue 13), RT-core: the configuration file, routing at ingest, `route`, `check`'s
routing table, SIGHUP reload. Everything through the CLI, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import GROUP, TG_TOKEN, telegram_env
from tests.fakes.ria import make_call
from tests.fakes.telegram import FakeTelegram
from tests.service import base_env, run_cli

OLENA = "0731375686"  # make_call's destination_phone
PETRO = "0671112233"
TRACKING = "0501234567"

ROUTES = f"""\
[[manager]]
name = "Olena"
phones = ["{OLENA}"]
telegram = 555000

[[manager]]
name = "Petro"
phones = ["{PETRO}"]

[[route]]
match = {{ status = "BUSY" }}
telegram = ["-100111"]
continue = true

[[route]]
match = {{ make = ["Toyota", "Lexus"] }}
telegram = ["{GROUP}/42"]

[[route]]
match = {{ tracking_phone = "{TRACKING}" }}
telegram = ["-100333"]

[[route]]
match = {{ manager = "Petro" }}
telegram = ["-100444"]
"""


def rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def alerts(db: Path) -> dict[int, list[tuple[str, dict]]]:
    out: dict[int, list[tuple[str, dict]]] = {}
    for call_id, target, payload in rows(
        db, "SELECT call_id, target, payload FROM outbox WHERE kind = 'missed_call' ORDER BY id"
    ):
        out.setdefault(call_id, []).append((target, json.loads(payload)))
    return out


def routed(db: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for call_id, target in rows(db, "SELECT call_id, target FROM call_routes ORDER BY 1, 2"):
        out.setdefault(call_id, []).append(target)
    return out


async def test_routes_by_each_key_with_continue_topic_and_defaults(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    # the default name in the working directory: no CONFIG_FILE needed
    (tmp_path / "ria-calls-bot.toml").write_text(ROUTES)
    service = await services(**telegram_env(telegram))
    calls = [
        make_call(1, marka="Toyota"),  # make → the topic; Olena's line: mention
        make_call(2, "BUSY", caller="0952222222", marka="Honda", destination_phone=PETRO),
        make_call(3, caller="0953333333", phone=TRACKING, destination_phone="0990000000"),
        make_call(4, caller="0954444444", destination_phone="0990000000"),  # no route
        make_call(5, "ANSWER", caller="0955555555", marka="Lexus"),  # routed, not alerted
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    db = tmp_path / "calls.db"
    got = alerts(db)  # committed before the webhook answered
    assert got[1] == [(GROUP, {"topic": 42, "mention": "telegram:555000"})]
    assert got[2] == [("-100111", {}), ("-100444", {})]  # status continues, then manager
    assert got[3] == [("-100333", {})]  # tracking phone
    assert got[4] == [(GROUP, {})]  # TELEGRAM_CHAT_IDS: today's plain row
    assert 5 not in got
    assert routed(db) == {
        1: [GROUP],
        2: ["-100111", "-100444"],
        3: ["-100333"],
        4: [GROUP],
        5: [GROUP],
    }
    keys = [k for (k,) in rows(db, "SELECT dedup_key FROM outbox WHERE call_id = 1")]
    assert keys == [f"call:1:telegram:{GROUP}/42"]
    # delivered to the group (a topic shares its group)
    await telegram.wait_for_messages(2, chat_id=GROUP)
    assert await service.stop() == 0


async def test_no_file_stores_no_routes(services, telegram: FakeTelegram, tmp_path: Path) -> None:
    service = await services(**telegram_env(telegram))
    assert (await service.post(service.webhook_url, json=[make_call(7)]))[0] == 200
    db = tmp_path / "calls.db"
    assert alerts(db) == {7: [(GROUP, {})]}
    assert routed(db) == {}
    assert rows(db, "SELECT account FROM calls") == [(None,)]
    assert await service.stop() == 0


ACCOUNTS = """\
[hours]
mon-fri = "09:00-19:00"
sat-sun = "closed"
after_hours = "silent"

[[account]]
name = "Kyiv"
user_id = 123456
api_key = "env:KYIV_KEY"
webhook_secret = "env:KYIV_SECRET"

[[route]]
match = { account = "Kyiv" }
telegram = ["-100777/9"]
"""


async def test_route_command_prints_where_and_why(tmp_path: Path) -> None:
    config = tmp_path / "routing.toml"
    # the account, the hours, then the routes and managers
    config.write_text(ACCOUNTS + ROUTES)
    call = tmp_path / "call.json"
    # a Monday 22:00 Kyiv: closed, silent
    call.write_text(json.dumps(make_call(9, marka="Toyota", date="2026-11-30T22:00:00")))
    env = base_env(
        tmp_path,
        CONFIG_FILE=str(config),
        KYIV_KEY="kyiv-ria-key-abcdef",
        KYIV_SECRET="kyiv-webhook-secret-0123",
        TELEGRAM_BOT_TOKEN=TG_TOKEN,
        TELEGRAM_CHAT_IDS=GROUP,
    )
    code, out, err = await run_cli(env, tmp_path, "route", str(call), "--account", "Kyiv")
    assert (code, err) == (0, ""), err
    assert "route 1 (line 12): matches (account in [Kyiv]); stops here" in out
    assert "-> telegram:-100777/9 (route 1, after hours: silent, mention telegram:555000)" in out
    assert "manager: Olena" in out
    code, out, err = await run_cli(env, tmp_path, "route", str(call))
    assert code == 0, err
    assert "route 1 (line 12): no: account (none) is not in [Kyiv]" in out
    assert f"-> telegram:{GROUP}/42 (route 3" in out
    assert "kyiv-webhook-secret-0123" not in out + err
    assert not (tmp_path / "calls.db").exists()  # never creates a database


async def test_check_prints_the_routing_table(tmp_path: Path, telegram: FakeTelegram) -> None:
    config = tmp_path / "routing.toml"
    config.write_text(ROUTES)
    env = base_env(tmp_path, CONFIG_FILE=str(config), **telegram_env(telegram))
    code, out, err = await run_cli(env, tmp_path, "check")
    assert code == 0, out + err
    assert f"routing file {config} is valid" in out
    assert "route 1 (line 10): status in [BUSY] -> telegram:-100111 (continue)" in out
    assert f"route 2 (line 15): make in [Toyota, Lexus] -> telegram:{GROUP}/42" in out
    assert f"otherwise -> telegram:{GROUP}" in out
    assert "manager Olena: +380731375686 (telegram 555000)" in out
    assert "✓ Telegram chat -100444: supergroup" in out  # the routes' chats are reached too


BAD_FILES = [
    # (file text, line, key, what the message says)
    (
        '[[route]]\nmatch = { make = "BMW" }\ntelegram = ["-100111"]\ncolour = "red"\n',
        4,
        "route[1].colour",
        "unknown key",
    ),
    (
        '[[route]]\nmatch = { make = "BMW" }\ntelegram = ["-100111", "general"]\n',
        3,
        "route[1].telegram",
        '"general" is not a chat id',
    ),
    (
        '[hours]\nmon-fri = "09:00-19:00"\nsat = "16:00-10:00"\n',
        3,
        "hours.sat",
        "closes before it opens",
    ),
    ('[hours]\nmon = "9-19"\n', 2, "hours.mon", '"9-19" is not a time range'),
    (
        '[[route]]\nmatch = { account = "Odesa" }\ntelegram = ["-100111"]\n',
        2,
        "route[1].match.account",
        'can never match: "Odesa" is not an account',
    ),
    (
        '[[route]]\ntelegram = ["-100111"]\n\n[[route]]\nmatch = { make = "BMW" }\n'
        'telegram = ["-100222"]\n',
        4,
        "route[2]",
        "can never match: route 1 (line 1)",
    ),
    (
        '[[manager]]\nname = "Olena"\nphones = ["0731375686", "Olena\'s mobile"]\n',
        3,
        "manager[1].phones",
        "is not a phone number",
    ),
]


@pytest.mark.parametrize("text,line,key,what", BAD_FILES)
async def test_bad_file_is_one_line_with_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, what: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    env = base_env(
        tmp_path, CONFIG_FILE=str(config), TELEGRAM_BOT_TOKEN=TG_TOKEN, TELEGRAM_CHAT_IDS=GROUP
    )
    for command in ("run", "check"):
        code, out, err = await run_cli(env, tmp_path, command, timeout=30)
        assert code == 2, (command, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith(f"config error: {config}:{line}: {key}: "), lines[0]
        assert what in lines[0], lines[0]
        assert "Traceback" not in out + err
    assert not (tmp_path / "calls.db").exists()


async def wait_for(predicate, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_sighup_reloads_and_a_bad_file_keeps_the_old_routes(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    config = tmp_path / "routing.toml"
    config.write_text('[[route]]\nmatch = { make = "Toyota" }\ntelegram = ["-100111"]\n')
    service = await services(CONFIG_FILE=str(config), **telegram_env(telegram))
    db = tmp_path / "calls.db"
    assert (await service.post(service.webhook_url, json=[make_call(1, marka="Toyota")]))[0] == 200
    assert alerts(db)[1] == [("-100111", {})]

    config.write_text('[[route]]\nmatch = { make = "Toyota" }\ntelegram = ["-100222"]\n')
    assert service.proc is not None
    service.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: "config reloaded" in service.output(), service.output())
    call2 = make_call(2, caller="0952222222", marka="Toyota")
    assert (await service.post(service.webhook_url, json=[call2]))[0] == 200
    # the old call is not routed again: a duplicate, no new rows
    status, body = await service.post(service.webhook_url, json=[make_call(1, marka="Toyota")])
    assert (status, body["duplicates"]) == (200, 1)
    got = alerts(db)
    assert got[1] == [("-100111", {})]
    assert got[2] == [("-100222", {})]

    config.write_text('[[route]]\nmatch = { make = "Toyota" }\ntelegram = ["nowhere"]\n')
    service.proc.send_signal(signal.SIGHUP)
    await wait_for(lambda: "config reload failed" in service.output(), service.output())
    assert f'{config}:3: route[1].telegram: "nowhere" is not a chat id' in service.output()
    call3 = make_call(3, caller="0953333333", marka="Toyota")
    assert (await service.post(service.webhook_url, json=[call3]))[0] == 200
    assert alerts(db)[3] == [("-100222", {})]  # the last good file still routes
    await telegram.wait_for_messages(1, chat_id="-100222")
    assert await service.stop() == 0


async def test_hours_and_personal_copy_at_ingest(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    # closed every day: the global hours make alerts silent; one route has its own (digest)
    config = tmp_path / "routing.toml"
    config.write_text(
        '[hours]\nmon-sun = "closed"\nafter_hours = "silent"\n\n'
        f'[[manager]]\nname = "Olena"\nphones = ["{OLENA}"]\ntelegram = 555000\npersonal = true\n\n'
        '[[route]]\nmatch = { make = "Toyota" }\ntelegram = ["-100111"]\n'
        'hours = { mon-sun = "closed", after_hours = "digest" }\n'
    )
    service = await services(CONFIG_FILE=str(config), **telegram_env(telegram))
    calls = [
        make_call(1, marka="Toyota"),
        make_call(2, caller="0952222222", destination_phone="0990000000"),
    ]
    assert (await service.post(service.webhook_url, json=calls))[0] == 200
    got = alerts(tmp_path / "calls.db")
    # the route's own hours are named on its rows (delivery holds them until its opening)
    route_hours = got[1][0][1].pop("hours")
    assert isinstance(route_hours, str) and len(route_hours) == 12
    assert got[1] == [
        ("-100111", {"mode": "digest", "mention": "telegram:555000"}),
        ("555000", {"mode": "silent"}),  # Olena's own chat: personal = true
    ]
    assert got[2] == [(GROUP, {"mode": "silent"})]
    assert await service.stop() == 0


MORE_BAD = [
    (
        '[[manager]]\nname = "Olena"\nphones = ["0731375686"]\ntelegram = 1\npersonal = true\n',
        "5: manager[1].personal: needs TELEGRAM_BOT_TOKEN",
    ),
    ('[[route]]\ntelegram = ["-100111"]\n\n[colours]\nx = 1\n', "4: colours: unknown key"),
    ("[[route]\n", "1: syntax: "),
    (
        '[[account]]\nname = "Kyiv"\nuser_id = 1\napi_key = "env:NO_SUCH_VARIABLE_X"\n',
        "4: account[1].api_key: env:NO_SUCH_VARIABLE_X: the environment variable",
    ),
    (
        '[[route]]\nmatch = { colour = "red" }\ntelegram = ["-100111"]\n',
        "2: route[1].match.colour: unknown key",
    ),
    (
        '[[route]]\nmatch = { make = "BMW" }\ntelegram = ["-100111/general"]\n',
        '3: route[1].telegram: "-100111/general": "general" is not a topic id',
    ),
]


@pytest.mark.parametrize("text,expected", MORE_BAD)
async def test_more_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    telegram = {} if "TELEGRAM_BOT_TOKEN" in expected else {"TELEGRAM_BOT_TOKEN": TG_TOKEN}
    env = base_env(
        tmp_path, CONFIG_FILE=str(config), TELEGRAM_CHAT_IDS=GROUP if telegram else "", **telegram
    )
    code, out, err = await run_cli(env, tmp_path, "check", timeout=30)
    assert code == 2, out + err
    assert err.startswith(f"config error: {config}:{expected}"), err
    assert len(err.strip().splitlines()) == 1, err


async def test_route_without_a_file_and_a_missing_config_file(tmp_path: Path) -> None:
    call = tmp_path / "call.json"
    call.write_text(json.dumps(make_call(9)))
    env = base_env(tmp_path)
    code, out, err = await run_cli(env, tmp_path, "route", str(call))
    assert code == 0, err
    assert "no configuration file" in out
    assert "-> console:stdout (default)" in out
    env = base_env(tmp_path, CONFIG_FILE=str(tmp_path / "missing.toml"))
    code, out, err = await run_cli(env, tmp_path, "route", str(call))
    assert code == 2
    assert err.strip() == f"config error: CONFIG_FILE: {tmp_path / 'missing.toml'}: no such file"
    assert not (tmp_path / "calls.db").exists()


def test_hours_next_opening() -> None:
    # the digest (RT-edge) is sent at the next opening: holidays and closed days skipped
    from datetime import date, datetime
    from datetime import time as t
    from zoneinfo import ZoneInfo

    from handlers.routing import Hours

    kyiv = ZoneInfo("Europe/Kyiv")
    hours = Hours(
        {0: ((t(9), t(13)), (t(14), t(19))), 4: ((t(9), t(19)),)},
        frozenset({date(2026, 12, 4)}),
        "digest",
    )
    monday_noon = datetime(2026, 11, 30, 13, 30, tzinfo=kyiv)  # the lunch break
    assert not hours.is_open(monday_noon)
    assert hours.next_opening(monday_noon) == datetime(2026, 11, 30, 14, 0, tzinfo=kyiv)
    evening = datetime(2026, 11, 30, 19, 0, tzinfo=kyiv)
    # Friday 4 Dec is a holiday: the Monday after
    assert hours.next_opening(evening) == datetime(2026, 12, 7, 9, 0, tzinfo=kyiv)
    open_now = datetime(2026, 11, 30, 10, 0, tzinfo=kyiv)
    assert hours.is_open(open_now) and hours.next_opening(open_now) == open_now
    assert hours.mode_at(evening) == "digest" and hours.mode_at(open_now) == "normal"
