"""Shared fixtures: the fake Telegram and RIA servers, and the service as a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from handlers.intake import Intake
from handlers.ria.api import RiaClient
from handlers.ria.poller import RiaPoller
from storage.db import Store
from storage.outbox import Target
from tests.fakes.ria import DEFAULT_API_KEY, DEFAULT_USER_ID, KYIV, FakeRia
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


class SimClock:
    """Simulated time the test moves by hand (`clock.now += 60`), for the poller, the intake,
    the fake RIA and the summaries alike."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:  # what asyncio.sleep is to the real clock
        self.now += seconds


MakePoller = Callable[..., RiaPoller]
PollerRig = tuple[SimClock, FakeRia, Store, MakePoller]


@asynccontextmanager
async def poller_rig(tmp_path: Path, start: datetime) -> AsyncIterator[PollerRig]:
    """The real poller over a real database against the fake RIA, all on one simulated clock
    starting at `start`. `make(...)` builds a poller (a new one is what a restart makes)."""
    clock = SimClock(start.astimezone(KYIV))
    store = Store(tmp_path / "p.db")
    await store.open()
    try:
        async with FakeRia(clock=clock) as ria, aiohttp.ClientSession() as session:

            def make(
                *,
                api_key: str = DEFAULT_API_KEY,
                interval: float = 60,
                quota: int = 1000,
                url: str | None = None,
                timeout: float = 2,
                spread: bool = True,
            ) -> RiaPoller:
                client = RiaClient(
                    session,
                    base_url=url or ria.url,
                    api_key=api_key,
                    user_id=str(DEFAULT_USER_ID),
                    timeout=timeout,
                )
                intake = Intake(
                    store,
                    targets=[Target("console", "stdout")],
                    missed_statuses=["NOANSWER", "CANCEL", "BUSY"],
                    clock=clock,
                )
                return RiaPoller(
                    client,
                    store,
                    intake,
                    tz=KYIV,
                    interval_minutes=interval,
                    monthly_quota=quota,
                    alert_max_age_s=7200,
                    clock=clock,
                    spread_hour=spread,
                )

            yield clock, ria, store, make
    finally:
        await store.close()
