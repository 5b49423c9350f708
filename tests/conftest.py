"""Shared fixtures: the fake Telegram and RIA servers, and the service as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.telegram import FakeTelegram
from tests.service import Service, base_env, kill_all

# The fault-injection modules: outages held for seconds, SIGKILLs, a 10 s burst, hung
# stops. `make test` (CI) runs them; `make test-fast` (-m "not slow") leaves them out. Marked
# here by module so that each file need not repeat it.
SLOW_MODULES = frozenset(
    {
        "test_reliability_burst",
        "test_reliability_crash",
        "test_reliability_delivery",
        "test_reliability_outages",
        "test_reliability_stop",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)  # a Python test function's module
        if module is not None and module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


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
