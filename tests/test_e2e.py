"""End to end: `ria-calls-bot run` as a subprocess, configured by environment variables,
talking HTTP to the fake Telegram and RIA servers."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from handlers.ria.records import to_e164
from tests.conftest import GROUP, RIA_KEY, RIA_USER, TG_TOKEN, telegram_env
from tests.fakes.ria import KYIV, SAMPLE, FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import settled, until
from tests.service import WEBHOOK_SECRET, run_cli

MISSED = ("NOANSWER", "CANCEL", "BUSY")


def expected_alert_numbers(records: list[dict]) -> list[str]:
    return sorted(to_e164(r["caller_phone"]) for r in records if r["status"] in MISSED)


def db_rows(path: str, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


async def test_sample_gives_one_alert_per_missed_call_and_a_repeat_none(services, telegram) -> None:
    service = await services(**telegram_env(telegram))
    sample = copy.deepcopy(SAMPLE)
    status, body = await service.post(service.webhook_url, json=sample)
    assert (status, body) == (200, {"accepted": 4, "duplicates": 0})

    wanted = expected_alert_numbers(sample)
    assert len(wanted) == 3
    messages = await telegram.wait_for_messages(len(wanted), chat_id=GROUP)
    got = sorted(n for m in messages for n in wanted if n in m["text"])
    assert got == wanted
    answered = to_e164(next(r for r in sample if r["status"] == "ANSWER")["caller_phone"])
    assert all(answered not in m["text"] for m in messages)
    assert all(m["parse_mode"] == "HTML" for m in messages)

    status, body = await service.post(service.webhook_url, json=sample)
    assert (status, body) == (200, {"accepted": 0, "duplicates": 4})
    # the outbox drained and no send in flight: a duplicate would have been sent by now
    await settled(service.env["DATABASE_PATH"], telegram)
    assert len(telegram.messages_for(GROUP)) == len(wanted)
    assert telegram.rate_limited == 0
    assert await service.stop() == 0


async def test_console_alerts_and_generated_secret(services) -> None:
    service = await services(RIA_WEBHOOK_SECRET="")
    match = re.search(r"RIA webhook URL: (http://\S+/webhooks/ria/(\S+))", service.stdout())
    assert match, service.stdout()
    secret = match[2]
    assert len(secret) >= 16
    url = f"{service.url}/webhooks/ria/{secret}"
    # the README's quick start posts this file with curl
    sample_file = Path(__file__).parent / "data" / "ria-sample.json"
    assert json.loads(sample_file.read_text()) == SAMPLE
    status, body = await service.post(
        url, data=sample_file.read_bytes(), headers={"Content-Type": "text/html"}
    )
    assert (status, body) == (200, {"accepted": 4, "duplicates": 0})
    for _ in range(50):
        if all(n in service.stdout() for n in expected_alert_numbers(SAMPLE)):
            break
        await asyncio.sleep(0.1)
    out = service.stdout()
    for number in expected_alert_numbers(SAMPLE):
        assert out.count(number) == 1, out
    assert await service.stop() == 0
    # the secret is kept, and shown only when made: the next start masks it
    again = await services(RIA_WEBHOOK_SECRET="")
    assert "/webhooks/ria/********" in again.stdout()
    assert secret not in again.stdout() + again.stderr()  # nor do logs show it


async def test_form_body_and_bad_inputs_keep_the_service_healthy(services) -> None:
    service = await services()
    form = {k: ("" if v is None else str(v)) for k, v in make_call(501, "BUSY").items()}
    status, body = await service.post(service.webhook_url, data=form)
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0})

    wrong = service.webhook_url.replace(WEBHOOK_SECRET, "x" * len(WEBHOOK_SECRET))
    status, _ = await service.post(wrong, json=SAMPLE)
    assert status == 404
    status, body = await service.post(
        service.webhook_url,
        data=b'{"call_id": 1, "date": ',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400 and "JSON" in body["error"]
    status, body = await service.post(service.webhook_url, json={"call_id": "abc", "date": "x"})
    assert status == 400 and "call_id" in body["error"]
    status, _ = await service.post(service.webhook_url, data=b"[" + b" " * 70_000 + b"]")
    assert status == 413
    half_good = [make_call(502), {"call_id": None}]
    status, body = await service.post(service.webhook_url, json=half_good)
    assert (status, body) == (200, {"accepted": 1, "duplicates": 0, "rejected": 1})

    status, health = await service.health()
    assert (status, health) == (200, {"status": "ok"})
    assert await service.stop() == 0
    rejected = db_rows(service.env["DATABASE_PATH"], "SELECT reason, body FROM rejected_payloads")
    assert len(rejected) == 3  # bad JSON, bad call_id, the bad half (the 413 is not stored)
    assert any(b'"call_id": ' in bytes(body) for _, body in rejected)


async def test_poller_and_webhook_overlap_alert_once(services, telegram) -> None:
    now = datetime.now(KYIV).replace(tzinfo=None, microsecond=0)
    fresh = make_call(9001, "NOANSWER", when=now - timedelta(minutes=3), caller="0671112233")
    old = make_call(9002, "CANCEL", when=now - timedelta(hours=5), caller="0671112244")
    answered = make_call(9003, "ANSWER", when=now - timedelta(minutes=2), caller="0671112255")
    if old["date"][:10] < (now - timedelta(days=1)).date().isoformat():
        old["date"] = (now - timedelta(days=1)).replace(hour=0, minute=1).isoformat()
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[fresh, old, answered]) as ria:
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            RIA_POLL_INTERVAL_MINUTES="0.02",
            RIA_POLL_SPREAD="off",  # fast polls at any minute of the hour
        )
        messages = await telegram.wait_for_messages(1, chat_id=GROUP)
        assert "+380671112233" in messages[0]["text"]
        # the webhook now delivers the same call: stored once, alerted once
        status, body = await service.post(service.webhook_url, json=fresh)
        assert (status, body) == (200, {"accepted": 0, "duplicates": 1})
        # a call the webhook saw first, then the poller
        later = make_call(9004, "BUSY", when=now - timedelta(minutes=1), caller="0671112266")
        status, body = await service.post(service.webhook_url, json=later)
        assert body["accepted"] == 1
        ria.add_calls(later)
        polled = ria.request_count
        for _ in range(100):
            if ria.request_count >= polled + 2:
                break
            await asyncio.sleep(0.1)
        assert ria.request_count >= polled + 2
        # one poll at a time: the poll that saw `later` is stored; now let its alerts (if
        # any, wrongly) go out before counting
        await settled(service.env["DATABASE_PATH"], telegram)
        texts = [m["text"] for m in telegram.messages_for(GROUP)]
        assert len(texts) == 2, texts
        assert sum("+380671112266" in t for t in texts) == 1
        assert all("+380671112244" not in t for t in texts)  # polled 5 h late: no alert
        assert await service.stop() == 0
    sources = dict(db_rows(service.env["DATABASE_PATH"], "SELECT call_id, source FROM calls"))
    assert sources == {9001: "poll", 9002: "poll", 9003: "poll", 9004: "webhook"}
    used = db_rows(service.env["DATABASE_PATH"], "SELECT COUNT(*) FROM ria_requests")[0][0]
    assert used == ria.request_count


async def test_stats_today_answers_in_telegram_and_cli(services, telegram, tmp_path) -> None:
    now = datetime.now(KYIV).replace(tzinfo=None, microsecond=0)
    start_of_day = now.replace(hour=0, minute=0, second=0)
    calls = [
        make_call(
            7001 + i,
            status,
            when=start_of_day + (now - start_of_day) * (i + 1) / 6,
            caller=f"06700000{i:02d}",
        )
        for i, status in enumerate(["ANSWER", "NOANSWER", "ANSWER", "BUSY", "CANCEL"])
    ]
    # no reminders: the calls are spread over today, so just after midnight a missed one is
    # already 15 minutes old, and its reminder would be the first message after /stats
    service = await services(
        **telegram_env(telegram, chats=f"{GROUP},42"), CALLBACK_WITHIN_MINUTES="0"
    )
    status, body = await service.post(service.webhook_url, json=calls)
    assert (status, body["accepted"]) == (200, len(calls))
    missed = sum(c["status"] in MISSED for c in calls)
    await telegram.wait_for_messages(missed, chat_id=GROUP, timeout=15)
    await telegram.wait_for_messages(missed, chat_id=42, timeout=15)  # 42 gets alerts too

    update = telegram.push_command(42, "/stats today")
    reply = await telegram.wait_for_reply(42, after_update_id=update, timeout=15)
    text = reply["plain_text"]
    answered = sum(c["status"] == "ANSWER" for c in calls)
    assert re.search(rf"\b{len(calls)}\b", text) and re.search(rf"\b{missed}\b", text), text
    assert f"{round(100 * answered / len(calls))}%" in text.replace(" %", "%"), text

    update = telegram.push_command(42, "/missed")
    reply = await telegram.wait_for_reply(42, after_update_id=update, timeout=15)
    for call in calls:
        number = to_e164(call["caller_phone"])
        assert (number in reply["plain_text"]) == (call["status"] in MISSED), reply["plain_text"]

    # another chat gets a short refusal and no data
    update = telegram.push_command(777, "/stats today")
    refusal = await telegram.wait_for_reply(777, after_update_id=update, timeout=15)
    assert str(len(calls)) not in refusal["plain_text"]
    assert {c["command"] for c in telegram.commands} >= {"stats", "missed", "help"}
    assert await service.stop() == 0

    code, out, err = await run_cli(service.env, tmp_path, "stats", "today")
    assert code == 0, err
    assert re.search(
        rf"\b{len(calls)}\b", out
    ) and f"{round(100 * answered / len(calls))}%" in out.replace(" %", "%")


async def test_ria_key_and_tokens_never_show_in_output(services, telegram) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        ria.fail_next(2, status=500)
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            RIA_POLL_INTERVAL_MINUTES="0.02",
            RIA_POLL_SPREAD="off",  # fast polls at any minute of the hour
            LOG_LEVEL="DEBUG",
        )
        telegram.fail_next(2, status=502)
        await service.post(service.webhook_url, json=make_call(3001, "NOANSWER"))
        await telegram.wait_for_messages(1, chat_id=GROUP, timeout=20)
        for _ in range(100):
            if ria.request_count >= 3:
                break
            await asyncio.sleep(0.1)
        failed = service.output().count("RIA API answered HTTP 500")
        ria.mode = "down_500"
        await until(
            lambda: service.output().count("RIA API answered HTTP 500") > failed,
            20,
            "a poll failing against RIA down",
        )
        assert await service.stop() == 0
    output = service.output()
    assert ria.request_count >= 3
    assert "RIA API answered HTTP 500" in output
    for secret in (RIA_KEY, TG_TOKEN, TG_TOKEN.split(":")[1], WEBHOOK_SECRET):
        assert secret not in output


async def test_wrong_ria_key_is_reported_once(services) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(
            RIA_API_KEY="W" * 40,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            RIA_POLL_INTERVAL_MINUTES="0.02",
            RIA_POLL_SPREAD="off",  # fast polls at any minute of the hour
        )
        for _ in range(100):
            if ria.request_count >= 3:
                break
            await asyncio.sleep(0.1)
        assert await service.stop() == 0
    err = service.stderr()
    assert err.count("RIA refused the API key") == 1, err
    assert "API_KEY_INVALID" in err and "W" * 40 not in err


async def test_telegram_down_at_start_then_back(services, telegram) -> None:
    await telegram.stop()  # connection refused, same port later
    service = await services(**telegram_env(telegram))
    status, body = await service.post(service.webhook_url, json=SAMPLE)
    assert (status, body) == (200, {"accepted": 4, "duplicates": 0})
    status, health = await service.health()
    assert status == 200, health
    code, details, _ = await run_cli(service.env, service.cwd, "status")
    assert code == 0 and f"telegram:{GROUP}: pending 3," in details, details
    await telegram.start()
    messages = await telegram.wait_for_messages(3, chat_id=GROUP, timeout=30)
    assert sorted(
        n for m in messages for n in expected_alert_numbers(SAMPLE) if n in m["text"]
    ) == expected_alert_numbers(SAMPLE)
    assert await service.stop() == 0


async def test_sigterm_flushes_and_exits_zero_and_restart_sends_nothing_twice(
    services, telegram
) -> None:
    service = await services(**telegram_env(telegram, chats="42"))
    # a private chat takes 1 message a second: 3 alerts need 2 s, SIGTERM comes at once
    await service.post(service.webhook_url, json=SAMPLE)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await service.stop() == 0
    assert loop.time() - started < 5
    delivered = len(telegram.messages_for(42))
    assert 1 <= delivered <= 3
    restarted = await services(**telegram_env(telegram, chats="42"))
    await telegram.wait_for_messages(3, chat_id=42, timeout=15)
    await settled(restarted.env["DATABASE_PATH"], telegram)  # a late duplicate would be in
    numbers = [
        n
        for m in telegram.messages_for(42)
        for n in expected_alert_numbers(SAMPLE)
        if n in m["text"]
    ]
    assert sorted(numbers) == expected_alert_numbers(SAMPLE)  # each exactly once
    assert await restarted.stop() == 0


async def test_telegram_webhook_mode(services, telegram) -> None:
    from tests.service import free_port

    port = free_port()
    service = await services(
        **telegram_env(telegram),
        HTTP_PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        TELEGRAM_WEBHOOK_SECRET="tg-hook-secret-4242",
    )
    for _ in range(100):
        if telegram.webhook.get("url"):
            break
        await asyncio.sleep(0.05)
    assert (
        telegram.webhook["url"] == f"http://127.0.0.1:{port}/webhooks/telegram/tg-hook-secret-4242"
    )
    assert telegram.webhook["secret_token"] == "tg-hook-secret-4242"
    update = telegram.push_command(int(GROUP), "/help")
    reply = await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15)
    assert "/stats" in reply["plain_text"]
    # a forged update without the secret header is refused
    status, _ = await service.post("/webhooks/telegram/tg-hook-secret-4242", json={"update_id": 1})
    assert status == 403
    assert await service.stop() == 0


async def test_config_error_is_one_line(tmp_path: Path) -> None:
    from tests.service import base_env

    env = base_env(tmp_path, TELEGRAM_BOT_TOKEN="1:a", TELEGRAM_CHAT_IDS="abc")
    code, out, err = await run_cli(env, tmp_path, "run")
    assert code == 2
    assert (
        err.strip()
        == 'config error: TELEGRAM_CHAT_IDS: "abc" is not a chat id (e.g. -1001234567890 or @channel)'
    )
    assert "Traceback" not in out + err


@pytest.mark.parametrize("language", ["uk", "en"])
async def test_send_test_and_check(tmp_path: Path, telegram: FakeTelegram, language: str) -> None:
    from tests.service import base_env

    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=[make_call(1)]) as ria:
        env = base_env(
            tmp_path,
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            LANGUAGE=language,
        )
        code, out, err = await run_cli(env, tmp_path, "check")
        assert code == 0, out + err
        assert "RIA API answers (1 call(s) today" in out
        assert f"Telegram chat {GROUP}" in out and "@ria_test_bot" in out
        assert RIA_KEY not in out + err

        code, out, err = await run_cli(env, tmp_path, "send-test")
        assert code == 0, out + err
        assert len(telegram.messages_for(GROUP)) == 1

        telegram.unknown_chats.add(int(GROUP))
        code, out, _ = await run_cli(env, tmp_path, "check")
        assert code == 1 and "chat not found" in out.lower()
        bad = dict(env, RIA_API_KEY="Z" * 40)
        code, out, err = await run_cli(bad, tmp_path, "check")
        assert code == 1 and "API_KEY_INVALID" in out and "Z" * 40 not in out + err


async def test_backfill_stores_history_without_alerts(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    from tests.service import base_env

    history = [
        make_call(8000 + i, "NOANSWER", when=datetime(2026, 1, 1, 10) + timedelta(days=3 * i))
        for i in range(30)
    ]
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER, calls=history) as ria:
        env = base_env(
            tmp_path,
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
        )
        code, out, err = await run_cli(
            env, tmp_path, "backfill", "--from", "2026-01-01", "--to", "2026-04-30"
        )
        assert code == 0, out + err
        assert ria.request_count == 4  # 120 days in 31-day requests
    assert "30 calls from RIA, 30 new" in out
    rows = db_rows(env["DATABASE_PATH"], "SELECT COUNT(*), MIN(source), MAX(source) FROM calls")
    assert rows == [(30, "backfill", "backfill")]
    assert db_rows(env["DATABASE_PATH"], "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert db_rows(
        env["DATABASE_PATH"], "SELECT COUNT(*) FROM ria_requests WHERE purpose = 'backfill'"
    ) == [(4,)]
    assert telegram.messages == []


async def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    from tests.service import base_env

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = base_env(tmp_path, HTTP_PORT=str(taken.getsockname()[1]))
        code, _out, err = await run_cli(env, tmp_path, "run")
    assert code == 2  # a setting to fix, like any config error
    assert "config error: HTTP_PORT: " in err and "already in use" in err
    assert "Traceback" not in err and "Unclosed" not in err
