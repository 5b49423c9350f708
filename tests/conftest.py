"""Shared fixtures: the fake Telegram and RIA servers, and the service as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.service import Service, base_env, kill_all

TG_TOKEN = "123456:TEST-telegram-token-abcdefghijklmno"
RIA_KEY = "RIAKEY" + "x" * 34  # RIA keys are 40 characters
RIA_USER = "1505029"
GROUP = "-1001234567890"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TG_TOKEN) as fake:
        yield fake


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """`await services(**env)` starts `ria-calls-bot run`; all are stopped afterwards."""
    started: list[Service] = []

    async def start(*, wait: bool = True, **env: Any) -> Service:
        service = Service(base_env(tmp_path, **env), tmp_path)
        started.append(service)
        if wait:
            await service.start()
        return service

    yield start
    for service in started:
        if service.proc is not None and service.proc.returncode is None:
            await service.stop()
    kill_all(started)


def telegram_env(fake: FakeTelegram, chats: str = GROUP) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "TELEGRAM_CHAT_IDS": chats,
        "TELEGRAM_API_URL": fake.url,
    }
