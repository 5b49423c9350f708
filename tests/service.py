"""Start `ria-calls-bot` as a user would (the CLI, environment variables) and talk to it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

BIN = Path(sys.executable).parent / "ria-calls-bot"
WEBHOOK_SECRET = "test-webhook-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(tmp_path: Path, **overrides: Any) -> dict[str, str]:
    """A clean environment: nothing from the developer's shell or .env leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DATABASE_PATH": str(tmp_path / "calls.db"),
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(free_port()),
        "RIA_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # no summary among the messages a test counts, whatever the time or weekday it runs
        # at; the summary tests turn them on
        "SUMMARY_TIME": "off",
        "SUMMARY_WEEKLY": "off",
    }
    # `make coverage` measures the CLI subprocesses too: coverage's subprocess patch hands its
    # settings down in this variable, which a clean environment would otherwise drop
    if "COVERAGE_PROCESS_CONFIG" in os.environ:
        env["COVERAGE_PROCESS_CONFIG"] = os.environ["COVERAGE_PROCESS_CONFIG"]
    env.update({k: str(v) for k, v in overrides.items() if v is not None})
    return {k: v for k, v in env.items() if v != ""}


class Service:
    def __init__(self, env: dict[str, str], cwd: Path, args: tuple[str, ...] = ("run",)) -> None:
        self.env = env
        self.cwd = cwd
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.out_path = cwd / f"service-{time.monotonic_ns()}.out"
        self.err_path = self.out_path.with_suffix(".err")
        self.url = f"http://127.0.0.1:{env['HTTP_PORT']}"
        self.session: aiohttp.ClientSession | None = None

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhooks/ria/{self.env.get('RIA_WEBHOOK_SECRET', '')}"

    async def start(self, timeout: float = 20.0) -> Service:
        self._out = self.out_path.open("wb")
        self._err = self.err_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN), *self.args, env=self.env, cwd=self.cwd, stdout=self._out, stderr=self._err
        )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.output()}")
            try:
                async with self.session.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        return self
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise TimeoutError(f"service not healthy in {timeout} s:\n{self.output()}")

    async def post(self, path_or_url: str, **kwargs: Any) -> tuple[int, Any]:
        assert self.session is not None
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        async with self.session.post(url, **kwargs) as resp:
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = await resp.text()
            return resp.status, body

    async def health(self) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.get(f"{self.url}/healthz") as resp:
            return resp.status, await resp.json()

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.session is not None:
            await self.session.close()
            self.session = None
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise
        self._out.close()
        self._err.close()
        return self.proc.returncode

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()


async def run_cli(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 60
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        str(BIN),
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def kill_all(services: list[Service]) -> None:
    for service in services:
        if service.proc is not None and service.proc.returncode is None:
            service.proc.kill()
