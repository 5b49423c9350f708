"""Telegram's receiving side through the real CLI and the fake Bot API (issues 11, 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.conftest import GROUP, telegram_env
from tests.fakes.telegram import FakeTelegram
from tests.reliability import until
from tests.service import Service, free_port, run_cli

HOOK_SECRET = "tg-hook-secret-4242-abcdef"


def webhook_env(telegram: FakeTelegram) -> tuple[str, dict[str, str]]:
    port = free_port()
    return str(port), {
        **telegram_env(telegram),
        "HTTP_PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TELEGRAM_WEBHOOK_SECRET": HOOK_SECRET,
    }


async def health_word(service: Service) -> str:
    _, body = await service.health()
    return str(body["status"])


async def test_polling_error_is_cleared_once_getupdates_works(
    services, telegram: FakeTelegram
) -> None:
    """A getUpdates failure makes /healthz "degraded"; once polling answers again it is "ok"
    again (it stayed "degraded" for ever)."""
    telegram.fail_method("getUpdates", 2, status=502)
    service = await services(**telegram_env(telegram))
    await until(lambda: "getUpdates" in service.stderr(), 20, "the getUpdates error logged")
    await until(lambda: telegram.method_faults_left("getUpdates") == 0, 20, "faults used")
    # the service polls again (a request after the last fault) and says it works
    await until(lambda: "getUpdates works again" in service.stderr(), 30, "recovery logged")
    for _ in range(100):
        if await health_word(service) == "ok":
            break
        await until(lambda: True, 0.1, "")
    assert await health_word(service) == "ok"
    update = telegram.push_command(int(GROUP), "/help")
    await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15)


async def test_set_webhook_failure_is_retried_and_shown(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """setWebhook fails: the status says commands are off and why, the service retries in
    the background, and commands work once Telegram takes it (they were off for good)."""
    telegram.fail_method("setWebhook", 3, status=500)
    _, env = webhook_env(telegram)
    service = await services(**env)
    await until(lambda: "setWebhook" in service.stderr(), 20, "the setWebhook failure logged")
    # the service saves its state within about a second of a change: read until it shows
    for _ in range(40):
        _code, out, _ = await run_cli(service.env, tmp_path, "status")
        if "setWebhook" in out:
            break
        await asyncio.sleep(0.25)
    assert "setWebhook" in out, out
    assert HOOK_SECRET not in out
    await until(lambda: bool(telegram.webhook["url"]), 30, "setWebhook retried until it works")
    assert "my_chat_member" in telegram.webhook["allowed_updates"]
    update = telegram.push_command(int(GROUP), "/help")
    await telegram.wait_for_reply(int(GROUP), after_update_id=update, timeout=15)
    await until(lambda: "receiving commands (webhook)" in service.stderr(), 10, "logged")
    assert HOOK_SECRET not in service.output()


async def test_webhook_answers_503_until_telegram_runs(services, telegram: FakeTelegram) -> None:
    """While python-telegram-bot is not running (getMe failing), an update gets 503 so that
    Telegram delivers it again (a 200 dropped it); wrong secrets are 403, big bodies 413."""
    telegram.fail_method("getMe", 1000, status=502)
    _, env = webhook_env(telegram)
    service = await services(**env)
    path = f"/webhooks/telegram/{HOOK_SECRET}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET}
    update = {"update_id": 5, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}}
    status, _ = await service.post(path, json=update, headers=headers)
    assert status == 503
    status, _ = await service.post(path, json=update)  # no secret header
    assert status == 403
    # Telegram comes back: the channel starts, and the route takes updates
    telegram.reset()  # getMe answers again
    await until(lambda: bool(telegram.webhook["url"]), 40, "connected and webhook set")
    big = b'{"update_id": 6, "x": "' + b"a" * 70_000 + b'"}'
    status, _ = await service.post(
        path, data=big, headers=headers | {"Content-Type": "application/json"}
    )
    assert status == 413
    pushed = telegram.push_command(int(GROUP), "/help")
    await telegram.wait_for_reply(int(GROUP), after_update_id=pushed, timeout=15)


async def test_secret_checked_before_the_body_is_read(services, telegram: FakeTelegram) -> None:
    """A forged request announcing a huge body is refused from its headers alone."""
    _, env = webhook_env(telegram)
    service = await services(**env)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def stalled() -> object:
            yield b"{"  # then nothing more: a server that waits for the body times out

            await until(lambda: False, 30, "never")

        async with session.post(
            f"{service.url}/webhooks/telegram/wrong-secret-0123456789",
            data=stalled(),
            headers={"Content-Length": "1000000"},
        ) as resp:
            assert resp.status == 403


async def test_removed_from_group_is_noticed_at_once(
    services, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """my_chat_member "kicked": a log line naming the chat and what to do, `status` and
    /healthz show it; added back: it clears."""
    service = await services(**telegram_env(telegram))
    await until(lambda: "receiving commands (long polling)" in service.stderr(), 20, "polling")
    telegram.push_my_chat_member(int(GROUP), "kicked", title="Sales team")
    await until(lambda: "removed from chat" in service.stderr(), 15, "the removal logged")
    line = next(x for x in service.stderr().splitlines() if "removed from chat" in x)
    assert GROUP in line and "Sales team" in line and "TELEGRAM_CHAT_IDS" in line
    assert await health_word(service) == "degraded"
    for _ in range(60):
        _code, out, _ = await run_cli(service.env, tmp_path, "status")
        if "removed from chat" in out:
            break
    assert "removed from chat" in out and GROUP in out
    telegram.push_my_chat_member(int(GROUP), "member", title="Sales team")
    await until(lambda: "is in chat" in service.stderr(), 15, "the return logged")
    assert await health_word(service) == "ok"
