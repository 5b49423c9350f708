"""Issue 10 item 9 and issue 15 item 2: a public /healthz that says only how the service is
(ok, degraded, failing) and writes to the database at most every few seconds; the details
in `ria-calls-bot status`, which reads the database with or without the service running.

Everything runs through the CLI, against the fake Telegram and RIA servers."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import aiohttp

from tests.conftest import GROUP, RIA_KEY, RIA_USER, TG_TOKEN, telegram_env
from tests.fakes.ria import FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.reliability import caller, db_rows, mentions, texts_for, until
from tests.service import run_cli

# what the fake Telegram says when a send fails: it must reach `status`, never /healthz
FAULT = "Internal Server Error at relay-7f3a"


def _pending_with_error(db: Path) -> bool:
    rows = db_rows(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND last_error != ''")
    return rows[0][0] > 0


def _token_parts() -> list[str]:
    _, _, half = TG_TOKEN.partition(":")
    return [TG_TOKEN, half]


async def test_healthz_says_degraded_without_details_while_telegram_fails(
    services, telegram: FakeTelegram
) -> None:
    service = await services(**telegram_env(telegram))
    db = Path(service.env["DATABASE_PATH"])
    status, body = await service.health()
    assert (status, body) == (200, {"status": "ok"})

    # three failures: ~14 s of backoff (2 + 4 + 8 s, ±20 %) for the checks below to see the
    # failure, plenty even on a loaded machine; a fourth only added 16 s of waiting
    telegram.fail_next_in(GROUP, 3, status=500, description=FAULT)
    status, body = await service.post(service.webhook_url, json=make_call(1, caller=caller(1)))
    assert status == 200, body
    await until(lambda: _pending_with_error(db), 10, "a failed send recorded")

    assert service.session is not None
    async with service.session.get(f"{service.url}/healthz") as resp:
        raw = await resp.text()
        assert resp.status == 200
    assert raw == '{"status": "degraded"}'  # the word only: no chat id, no error text
    for leak in (GROUP, GROUP.lstrip("-"), "relay-7f3a", "Internal Server Error", "telegram"):
        assert leak not in raw

    # the details are in `status`, for the operator
    code, out, err = await run_cli(service.env, service.cwd, "status")
    assert code == 0, out + err
    assert f"telegram:{GROUP}" in out and "pending 1" in out and FAULT in out

    # Telegram recovers: the alert goes out and the word goes back to ok
    await until(lambda: mentions(texts_for(telegram, GROUP), [1])[1] == 1, 60, "the alert")
    await until(lambda: not _pending_with_error(db), 10, "the row marked sent")
    status, body = await service.health()
    assert (status, body) == (200, {"status": "ok"})


async def test_status_with_and_without_the_service(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
        )
        await until(lambda: ria.request_count >= 1, 10, "the first poll")
        db = Path(service.env["DATABASE_PATH"])
        await until(
            lambda: db_rows(db, "SELECT COUNT(*) FROM ria_requests")[0][0] >= 1,
            10,
            "the poll recorded",
        )
        # one alert delivered, one that keeps failing
        status, _ = await service.post(service.webhook_url, json=make_call(1, caller=caller(1)))
        assert status == 200
        await until(lambda: mentions(texts_for(telegram, GROUP), [1])[1] == 1, 10, "alert 1")
        telegram.fail_next_in(GROUP, 50, status=500, description=FAULT)
        status, _ = await service.post(service.webhook_url, json=make_call(2, caller=caller(2)))
        assert status == 200
        await until(lambda: _pending_with_error(db), 10, "a failed send recorded")

        # the service saves what only it knows (the channel is connected) within a second
        deadline = time.monotonic() + 10
        while True:
            code, running, err = await run_cli(service.env, service.cwd, "status")
            assert code == 0, running + err
            if "telegram: connected" in running or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert await service.stop() == 0
        code, stopped, err = await run_cli(service.env, service.cwd, "status")
        assert code == 0, stopped + err

    absolute = str(db.resolve())  # noqa: ASYNC240 (a path, not I/O that matters here)
    for out in (running, stopped):
        assert f"database: {absolute} (" in out
        assert f"telegram:{GROUP}: pending 1, sent 1, failed 0" in out, out
        assert FAULT in out
        assert "poller: this hour 1 of 30 used, 29 left; this month 1 of 1000 used" in out, out
        assert "HTTP 200" in out  # RIA's last answer
        assert "telegram: connected" in out, out  # the channel is fine: sends fail
        for secret in (*_token_parts(), RIA_KEY):
            assert secret not in out
    assert "service: running" in running
    assert "service: not running" in stopped


async def test_status_never_creates_a_database(tmp_path: Path, services) -> None:
    service = await services(wait=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in service.env.items() if k != "DATABASE_PATH"}
    code, out, err = await run_cli(env, elsewhere, "status")
    expected = elsewhere / "data" / "calls.db"
    assert code == 1
    assert (
        f"no database at {expected} (set DATABASE_PATH, or run from the folder that has your .env)"
        in out + err
    )
    assert not (elsewhere / "data").exists()


async def test_healthz_does_not_commit_on_every_request(services) -> None:
    """A flood of /healthz is answered from a probe made at most every few seconds.
    Another connection's PRAGMA data_version changes whenever the service commits."""
    service = await services()
    db = Path(service.env["DATABASE_PATH"])
    assert service.session is not None
    requests = 300
    with contextlib.closing(sqlite3.connect(db)) as conn:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        commits = 0
        started = time.monotonic()
        for _ in range(requests):
            async with service.session.get(f"{service.url}/healthz") as resp:
                assert resp.status == 200
                assert await resp.json() in ({"status": "ok"}, {"status": "degraded"})
            now = conn.execute("PRAGMA data_version").fetchone()[0]
            commits += now != version
            version = now
        elapsed = time.monotonic() - started
    # one probe per 5 s, and the state saved when it changes (at most once per 5 s too)
    assert commits <= 2 * (elapsed / 5 + 1), (commits, elapsed)


async def test_concurrent_healthz_share_one_probe(services) -> None:
    service = await services()
    db = Path(service.env["DATABASE_PATH"])
    before = int(db_rows(db, "SELECT value FROM meta WHERE key = 'health_probes'")[0][0])
    async with aiohttp.ClientSession() as session:

        async def one() -> int:
            async with session.get(f"{service.url}/healthz") as resp:
                return resp.status

        started = time.monotonic()
        answers = await asyncio.gather(*(one() for _ in range(200)))
        elapsed = time.monotonic() - started
    assert answers == [200] * 200
    after = int(db_rows(db, "SELECT value FROM meta WHERE key = 'health_probes'")[0][0])
    assert after - before <= elapsed / 5 + 1, (before, after, elapsed)
