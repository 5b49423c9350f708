"""Outages: Telegram and RIA down (connection refused, HTTP 500, hanging) while calls keep
coming, and a database that cannot be written (a full disk, a read-only file system).

The service runs as a user runs it (the CLI); the faults are real: fake servers stopped on
their port, answering 500 or never answering, and a real tiny filesystem filled up.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.fakes.slack import DEFAULT_BOT_TOKEN, FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    caller,
    db_rows,
    e164,
    fill,
    loop_filesystem,
    mentions,
    remount,
    remount_loop,
    settled,
    shut_down,
    texts_for,
    tiny_filesystem,
    until,
)
from tests.service import base_env, run_cli

OUTAGE_S = 1.5
SLACK_CHANNEL = "C0SALES001"


async def set_down(fake: FakeTelegram | FakeRia, how: str) -> None:
    if how == "refused":
        await fake.stop()  # nothing listens on the port: connection refused
    else:
        fake.mode = how


async def set_up(fake: FakeTelegram | FakeRia, how: str) -> None:
    if how == "refused":
        await fake.start()  # the same port again
    else:
        fake.mode = "ok"  # a hanging request is answered now


@pytest.mark.parametrize("how", ["refused", "down_500", "hang"])
async def test_telegram_and_ria_down_service_stays_healthy_and_catches_up(
    services, telegram: FakeTelegram, how: str
) -> None:
    now = datetime.now(KYIV).replace(tzinfo=None, microsecond=0)
    async with FakeRia(api_key=RIA_KEY, user_id=RIA_USER) as ria:
        service = await services(
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            RIA_POLL_INTERVAL_MINUTES="0.02",
            RIA_POLL_SPREAD="off",  # fast polls at any minute of the hour
        )
        await until(lambda: ria.request_count >= 1, 10, "the first poll")
        await set_down(telegram, how)
        await set_down(ria, how)
        # during the outage: webhooks are still taken, and RIA has a call we never got
        for i in (1, 2):
            status, body = await service.post(
                service.webhook_url, json=make_call(i, "NOANSWER", caller=caller(i))
            )
            assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
        ria.add_calls(make_call(3, "BUSY", when=now - timedelta(minutes=1), caller=caller(3)))
        await asyncio.sleep(OUTAGE_S)
        status, health = await service.health()
        assert status == 200, health  # degraded is not dead
        # the details are in `ria-calls-bot status`, not on the public /healthz
        code, details, _ = await run_cli(service.env, service.cwd, "status")
        assert code == 0 and f"telegram:{GROUP}: pending 2," in details, details
        if how != "hang":  # a hanging request has not failed yet: it is still waiting
            assert health == {"status": "degraded"}, health
            assert "last error" in details, details
        await set_up(telegram, how)
        await set_up(ria, how)

        await until(
            lambda: all(mentions(texts_for(telegram, GROUP), [1, 2, 3]).values()),
            20,
            "every alert after recovery",
        )
        await settled(service.env["DATABASE_PATH"], telegram)
        assert mentions(texts_for(telegram, GROUP), [1, 2, 3]) == {1: 1, 2: 1, 3: 1}
        status, health = await service.health()
        assert status == 200, health
        code, details, _ = await run_cli(service.env, service.cwd, "status")
        assert code == 0 and f"telegram:{GROUP}: pending 0," in details, details
        assert await service.stop() == 0
    assert telegram.rate_limited == 0


def _mountable(path: Path) -> str | None:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode:
        return done.stderr.decode(errors="replace").strip() or "mount failed"
    subprocess.run(["umount", str(path)], capture_output=True)
    return None


async def test_full_disk_turns_webhook_and_healthz_503_then_recovers(
    services, tmp_path: Path
) -> None:
    reason = _mountable(tmp_path / "probe")
    if reason:
        pytest.skip(f"needs a tmpfs mount (root): {reason}")
    with tiny_filesystem(tmp_path / "small", "4m") as small:
        service = await services(DATABASE_PATH=str(small / "calls.db"))
        status, _ = await service.post(service.webhook_url, json=make_call(1, caller=caller(1)))
        assert status == 200

        filler = fill(small)
        status, body = await service.post(service.webhook_url, json=make_call(2, caller=caller(2)))
        assert status == 503, body  # RIA hears "not stored": never a 200 for a lost call
        status, health = await service.health()
        assert (status, health) == (503, {"status": "failing"})

        filler.unlink()
        status, body = await service.post(service.webhook_url, json=make_call(2, caller=caller(2)))
        assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
        status, health = await service.health()
        assert status == 200, health

        # full again at SIGTERM: the stop still ends cleanly (exit 0)
        filler = fill(small)
        assert await service.stop() == 0
        filler.unlink()
        db = small / "calls.db"
        assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
        assert db_rows(db, "SELECT call_id FROM calls ORDER BY 1") == [(1,), (2,)]


async def test_disk_failing_under_the_service_turns_503_and_loses_nothing_committed(
    services, tmp_path: Path
) -> None:
    """The file system fails under the running service (every write: EIO, as a dying disk
    or an ext4 that went read-only after an error). The webhook and /healthz say 503, a
    SIGTERM still stops cleanly, and what was acknowledged before is on the disk."""
    image, disk = tmp_path / "disk.img", tmp_path / "disk"
    try:
        mounted = loop_filesystem(image, disk)
        mounted.__enter__()
    except OSError as exc:
        pytest.skip(f"needs a loop-mounted ext4 (root): {exc}")
    try:
        db = disk / "calls.db"
        service = await services(DATABASE_PATH=str(db))
        status, _ = await service.post(service.webhook_url, json=make_call(1, caller=caller(1)))
        assert status == 200
        shut_down(disk)
        status, body = await service.post(service.webhook_url, json=make_call(2, caller=caller(2)))
        assert status == 503, body
        status, health = await service.health()
        assert (status, health) == (503, {"status": "failing"})
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await service.stop() == 0
        assert loop.time() - started < 5

        remount_loop(image, disk)  # the operator replaces the disk / runs fsck
        assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
        assert db_rows(db, "SELECT call_id FROM calls") == [(1,)]  # acknowledged: kept
        again = await services(DATABASE_PATH=str(db))
        status, body = await again.post(again.webhook_url, json=make_call(2, caller=caller(2)))
        assert (status, body) == (200, {"accepted": 1, "duplicates": 0})
        assert await again.stop() == 0
    finally:
        mounted.__exit__(None, None, None)


async def test_read_only_database_at_start_is_one_clear_line(tmp_path: Path) -> None:
    """Nothing can work without the database: the service says so in one line and exits
    non-zero (the container's restart policy retries), instead of running half-alive."""
    reason = _mountable(tmp_path / "probe")
    if reason:
        pytest.skip(f"needs a tmpfs mount (root): {reason}")
    with tiny_filesystem(tmp_path / "ro", "4m") as ro:
        env = base_env(tmp_path, DATABASE_PATH=str(ro / "calls.db"))
        code, out, err = await run_cli(env, tmp_path, "check")  # creates the database
        assert (ro / "calls.db").exists(), out + err
        remount(ro, "ro")  # even root cannot write here, unlike after a chmod
        try:
            code, out, err = await run_cli(env, tmp_path, "run", timeout=20)
        finally:
            remount(ro, "rw")
    assert code == 2, out + err  # a setting to fix, like every config error
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if "DATABASE_PATH" in line]
    assert lines and str(ro / "calls.db") in lines[0], err


@pytest.mark.parametrize(("down", "how"), [("slack", "refused"), ("telegram", "down_500")])
async def test_one_platform_down_the_other_delivers_and_the_first_catches_up(
    services, telegram: FakeTelegram, down: str, how: str
) -> None:
    """Slack or Telegram refusing connections or answering 500 (tests/test_slack_e2e.py has
    the hanging case): the other platform's alerts go out at once, /healthz shows the
    backlog and the error for the broken target only, and after recovery it gets every
    alert exactly once."""
    async with FakeSlack(channels=[SLACK_CHANNEL]) as slack:
        service = await services(
            **telegram_env(telegram),
            SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
            SLACK_CHANNEL_IDS=SLACK_CHANNEL,
            SLACK_API_URL=slack.api_url,
        )
        broken = {"slack": slack, "telegram": telegram}[down]
        await set_down(broken, how)
        for i in (1, 2):
            status, _ = await service.post(
                service.webhook_url, json=make_call(i, "NOANSWER", caller=caller(i))
            )
            assert status == 200

        def slack_has(ids: list[int]) -> bool:
            text = " ".join(str(m) for m in slack.messages_for(SLACK_CHANNEL))
            return all(e164(i) in text for i in ids)

        def telegram_has(ids: list[int]) -> bool:
            return all(mentions(texts_for(telegram, GROUP), ids).values())

        working, broken_has = (
            (telegram_has, slack_has) if down == "slack" else (slack_has, telegram_has)
        )
        await until(lambda: working([1, 2]), 5, "the working platform delivers at once")
        broken_target = ("slack", SLACK_CHANNEL) if down == "slack" else ("telegram", GROUP)
        await until(  # the broken one has tried and failed: its rows carry the error
            lambda: (
                db_rows(
                    service.env["DATABASE_PATH"],
                    "SELECT COUNT(*) FROM outbox WHERE channel = ? AND target = ?"
                    " AND last_error IS NOT NULL",
                    *broken_target,
                )
                != [(0,)]
            ),
            10,
            "the broken platform's first failure recorded",
        )
        status, health = await service.health()
        assert (status, health) == (200, {"status": "degraded"})
        code, details, _ = await run_cli(service.env, service.cwd, "status")
        assert code == 0, details
        broken_key = f"slack:{SLACK_CHANNEL}" if down == "slack" else f"telegram:{GROUP}"
        working_key = f"telegram:{GROUP}" if down == "slack" else f"slack:{SLACK_CHANNEL}"
        assert f"{broken_key}: pending 2," in details, details
        assert f"{working_key}: pending 0," in details, details
        await set_up(broken, how)
        await until(lambda: broken_has([1, 2]), 20, "the broken platform catches up")
        await settled(service.env["DATABASE_PATH"], telegram, slack)
        assert mentions(texts_for(telegram, GROUP), [1, 2]) == {1: 1, 2: 1}
        slack_text = [str(m) for m in slack.messages_for(SLACK_CHANNEL)]
        assert [sum(e164(i) in t for t in slack_text) for i in (1, 2)] == [1, 1]
        assert await service.stop() == 0
