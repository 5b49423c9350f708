"""Issue 10 item 4: nothing any CLI command prints holds a secret, or half of one.

Every command runs with the platforms refusing its credentials (fake servers that know other
tokens) and with them unreachable (nobody listening), at DEBUG; the output of each is searched
for every secret, each half of each, and both parts of the Telegram token.
"""

from __future__ import annotations

import asyncio
import copy
import signal
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from tests.fakes.ria import KYIV, SAMPLE, FakeRia
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram
from tests.service import Service, base_env, free_port, run_cli

# random-looking, so that no part of one turns up by chance in anything else printed
BOT_ID, TG_HALF = "7301928465", "AAHq9ZkXw3LmNpRt5VbYc2DfGhJk8sQe1uI"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": f"{BOT_ID}:{TG_HALF}",
    "TELEGRAM_WEBHOOK_SECRET": "Hook_Sec-9x8c7v6b5n4m3q2w1eZ",
    "SLACK_BOT_TOKEN": "xoxb-5829301746-8472019365-Qw7ErTy9UiOpAsDfGhJkLzXc",
    "SLACK_APP_TOKEN": "xapp-1-A04QZ7RT2PL-5938271046-f3a9c8e1d7b6a5f4e3d2c1b0a9f8e7d6",
    "SLACK_SIGNING_SECRET": "8f3a2c9e1d7b6a5f4e3d2c1b0a9f8e7d",
    "RIA_API_KEY": "Kd83jfLq02mZx7PwR5tY9bNc4vH6gS1aE0uW2iOp",
    "RIA_WEBHOOK_SECRET": "Zq4Lm8Np2Rt6Vx0Bc3Df7Gh1Jk5",
}


def fragments(skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Each secret, its two halves, and the Telegram token's two parts."""
    out: dict[str, str] = {}
    for name, value in SECRETS.items():
        if name in skip:
            continue
        half = len(value) // 2
        out[name] = value
        out[f"{name} (first half)"] = value[:half]
        out[f"{name} (second half)"] = value[half:]
    if "TELEGRAM_BOT_TOKEN" not in skip:
        out["TELEGRAM_BOT_TOKEN (bot id)"] = BOT_ID
        out["TELEGRAM_BOT_TOKEN (secret part)"] = TG_HALF
    return out


def assert_clean(what: str, text: str, skip: tuple[str, ...] = ()) -> None:
    leaks = [name for name, value in fragments(skip).items() if value in text]
    assert not leaks, f"{what} printed {leaks}:\n{text}"


@asynccontextmanager
async def platforms(mode: str) -> AsyncIterator[dict[str, str]]:
    """The services' URLs: fakes that know other credentials ("refused"), or closed ports."""
    if mode == "unreachable":
        yield {
            "TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}",
            "SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/",
            "RIA_API_URL": f"http://127.0.0.1:{free_port()}",
        }
        return
    async with AsyncExitStack() as stack:
        telegram = await stack.enter_async_context(FakeTelegram(token="111:someone-else"))
        slack = await stack.enter_async_context(
            FakeSlack(bot_token="xoxb-1-1-someoneelse", app_token="xapp-1-A1-1-someoneelse")
        )
        ria = await stack.enter_async_context(FakeRia(api_key="N" * 40))
        yield {
            "TELEGRAM_API_URL": telegram.url,
            "SLACK_API_URL": slack.api_url,
            "RIA_API_URL": ria.url,
        }


def env_for(tmp_path: Path, urls: dict[str, str]) -> dict[str, str]:
    return base_env(
        tmp_path,
        **SECRETS,
        **urls,
        TELEGRAM_CHAT_IDS="-1001234567890",
        SLACK_CHANNEL_IDS="C0123456789",
        RIA_USER_ID="1505029",
        PUBLIC_URL="https://bot.example.com",
        LOG_LEVEL="DEBUG",
    )


def outbox_tried(path: str) -> bool:
    """Every alert target has had a send fail: the service met the refusal."""
    try:
        with sqlite3.connect(path) as conn:
            rows = conn.execute(
                "SELECT COUNT(DISTINCT channel) FROM outbox WHERE last_error IS NOT NULL"
            ).fetchall()
    except sqlite3.Error:
        return False
    return rows[0][0] >= 2


@pytest.mark.parametrize("mode", ["refused", "unreachable"])
async def test_no_command_prints_a_secret(tmp_path: Path, mode: str) -> None:
    today = datetime.now(KYIV).date().isoformat()
    async with platforms(mode) as urls:
        env = env_for(tmp_path, urls)
        commands: list[tuple[str, ...]] = [
            ("check",),
            ("send-test", "--timeout", "3"),  # makes the database the others read
            ("summary", "--send", "--timeout", "3"),
            ("summary",),
            ("stats",),
            ("missed",),
            ("status",),
            ("backfill", "--from", today, "--to", today),
        ]
        for args in commands:
            _, out, err = await run_cli(env, tmp_path, *args, timeout=60)
            assert_clean(" ".join(args), out + err)
        # the one thing check shows on request is the webhook URL, with its secret; no other
        _, out, err = await run_cli(env, tmp_path, "check", "--show-webhook-url")
        assert SECRETS["RIA_WEBHOOK_SECRET"] in out
        assert_clean("check --show-webhook-url", out + err, skip=("RIA_WEBHOOK_SECRET",))

        # the service: an alert to send, every platform failing, then a stop
        service = Service(env, tmp_path)
        try:
            await service.start()
            status, _ = await service.post(service.webhook_url, json=copy.deepcopy(SAMPLE))
            assert status == 200
            for _ in range(300):
                if outbox_tried(env["DATABASE_PATH"]):
                    break
                await asyncio.sleep(0.1)
            assert outbox_tried(env["DATABASE_PATH"]), service.output()
        finally:
            await service.stop(signal.SIGTERM)
        assert_clean("run", service.output())
