"""Helpers shared by the bench rows: the service as a subprocess, RIA-shaped calls, RSS,
percentiles. The service is started exactly as tests/service.py starts it (the real CLI
with environment variables); these helpers only add what a benchmark needs on top."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.ria import KYIV, make_call
from tests.fakes.telegram import FakeTelegram, norm_chat_id
from tests.service import BIN, Service, base_env, run_cli

REPO = Path(__file__).resolve().parent.parent
TG_TOKEN = "123456:BENCH-telegram-token-abcdefghijk"
GROUP = "-1001234567890"  # a supergroup: Telegram allows it 20 messages a minute
PRIVATE = "111111111"  # a private chat: 1 message a second


def caller_number(i: int) -> str:
    """A distinct, valid Ukrainian mobile number per index (Kyivstar 067 + 7 digits)."""
    return f"067{i % 10_000_000:07d}"


def caller_e164(i: int) -> str:
    return f"+38{caller_number(i)}"


def webhook_record(call_id: int, status: str, i: int, when: datetime | None = None) -> dict:
    """One RIA record as the webhook receives it; caller `i` is unique per call."""
    return make_call(call_id, status, when=when or datetime.now(KYIV), caller=caller_number(i))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): a value that was actually observed."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a process (VmRSS from /proc; VmHWM for its peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def service_env(workdir: Path, **overrides: Any) -> dict[str, str]:
    """tests.service.base_env: a clean environment, the database in `workdir`, LOG_LEVEL=INFO
    (the default an operator runs with, so its per-webhook log line is part of the cost)."""
    return base_env(workdir, **overrides)


def telegram_env(api_url: str, chats: str) -> dict[str, str]:
    return {"TELEGRAM_BOT_TOKEN": TG_TOKEN, "TELEGRAM_CHAT_IDS": chats, "TELEGRAM_API_URL": api_url}


class BenchService(Service):
    """tests.service.Service with a choice of program and the spawn time kept.

    `argv` defaults to the installed CLI (`ria-calls-bot run`); `spawned_at` and
    `healthy_at` are time.monotonic() values in this process.
    """

    def __init__(self, env: dict[str, str], cwd: Path, argv: Sequence[str] | None = None) -> None:
        super().__init__(env, cwd)
        self.argv = list(argv or [str(BIN), "run"])
        self.spawned_at = 0.0
        self.healthy_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> BenchService:
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.spawned_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=self.cwd, stdout=self._out, stderr=self._err
        )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        deadline = self.spawned_at + timeout
        # poll often: the time to the first 200 is one of the figures
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.output()}")
            try:
                async with self.session.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        self.healthy_at = time.monotonic()
                        return self
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
        raise TimeoutError(f"service not healthy in {timeout} s:\n{self.output()}")


async def start_service(
    workdir: Path, *, argv: Sequence[str] | None = None, timeout: float = 30.0, **env: Any
) -> BenchService:
    """The service in `workdir` (its database, its output files), once /healthz says 200."""
    os.makedirs(workdir, exist_ok=True)
    service = BenchService(service_env(workdir, **env), workdir, argv)
    try:
        return await service.start(timeout)
    except BaseException:
        await stop_quietly(service)
        raise


async def stop_quietly(service: Service) -> None:
    """SIGTERM (SIGKILL after 10 s); for clean-up paths, where an error would hide the first."""
    with contextlib.suppress(Exception):
        await service.stop()
    if service.proc is not None and service.proc.returncode is None:
        service.proc.kill()
        await service.proc.wait()


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


async def wait_telegram_connected(service: Service, timeout: float = 20.0) -> None:
    """Until `ria-calls-bot status` says the Telegram channel is connected (PTB initialised,
    polling; /healthz keeps such details private): the rows measure alerts, not the
    channel's start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, details, _ = await run_cli(service.env, service.cwd, "status")
        if code == 0 and "telegram: connected" in details:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"Telegram channel not connected in {timeout} s:\n{service.output()}")


async def post_calls(
    session: aiohttp.ClientSession, url: str, records: list[dict]
) -> tuple[int, float]:
    """POST one webhook; (status, seconds until the answer)."""
    started = time.monotonic()
    async with session.post(url, json=records) as resp:
        await resp.read()
        return resp.status, time.monotonic() - started


PHONE_RE = re.compile(r"\+380\d{9}")


class CallerWatch:
    """When each caller's number first appeared in a message to `chat` on the fake
    Telegram (its own receive time, time.monotonic() in this process)."""

    def __init__(self, telegram: FakeTelegram, chat: str) -> None:
        self.telegram = telegram
        self.chat = norm_chat_id(chat)
        self.first_seen: dict[str, float] = {}
        self.messages = 0
        self.multi = 0  # messages listing more than one caller (coalesced)
        self._next = len(telegram.messages)

    def scan(self) -> None:
        messages = self.telegram.messages
        for message in messages[self._next :]:
            if message["chat_id"] != self.chat:
                continue
            self.messages += 1
            numbers = set(PHONE_RE.findall(message.get("text") or ""))
            if len(numbers) > 1:
                self.multi += 1
            for number in numbers:
                self.first_seen.setdefault(number, message["t"])
        self._next = len(messages)

    async def wait_for(self, numbers: set[str], timeout: float) -> set[str]:
        """Wait until every number was seen; returns those still missing at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.scan()
            missing = numbers - self.first_seen.keys()
            if not missing or time.monotonic() >= deadline:
                return missing
            await asyncio.sleep(0.02)
