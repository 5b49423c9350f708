"""Issue 15 item 1 (server): idle and trickling sockets cannot lock RIA or a health check out,
nor flood the log. The service runs with a small open-file limit (256), as a container with a
low `ulimit -n` would; the client opens more sockets than that, bounded, and stops by itself."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.ria import make_call
from tests.service import Service

SOCKETS = 400  # well past the service's 256 open files
TRICKLE_S = 0.2


async def _idle(port: int, opened: list[asyncio.StreamWriter]) -> None:
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)


async def _trickle(port: int, opened: list[asyncio.StreamWriter], stop: asyncio.Event) -> None:
    """Headers one byte at a time, never finished (slowloris)."""
    with contextlib.suppress(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        opened.append(writer)
        writer.write(b"POST /webhooks/ria/x HTTP/1.1\r\nHost: bot\r\n")
        while not stop.is_set() and not writer.is_closing():
            writer.write(b"X")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TRICKLE_S)


async def start_with_few_files(services: Callable[..., Any], files: int) -> Service:
    service: Service = await services(wait=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, hard))  # the child inherits it
    try:
        await service.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return service


async def test_idle_and_trickling_sockets_do_not_lock_out_healthz_or_ria(
    services: Callable[..., Any], tmp_path: Path
) -> None:
    service = await start_with_few_files(services, 256)
    port = int(service.env["HTTP_PORT"])
    opened: list[asyncio.StreamWriter] = []
    stop = asyncio.Event()
    trickles = [asyncio.create_task(_trickle(port, opened, stop)) for _ in range(SOCKETS // 4)]
    await asyncio.gather(*(_idle(port, opened) for _ in range(SOCKETS - SOCKETS // 4)))
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            started = time.monotonic()
            async with session.get(f"{service.url}/healthz") as resp:
                assert resp.status == 200
            call = make_call(4242, "NOANSWER")
            async with session.post(service.webhook_url, json=call) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["accepted"] == 1
            assert time.monotonic() - started < 5
    finally:
        stop.set()
        await asyncio.gather(*trickles)
        for writer in opened:
            writer.close()
    await service.stop()
    log = service.stderr()
    assert "Too many open files" not in log and "out of system resource" not in log
    cap_lines = [line for line in log.splitlines() if "connections open" in line]
    assert len(cap_lines) == 1, log[-3000:]  # once a minute at most
    assert "HTTP_MAX_CONNECTIONS=" in cap_lines[0] and "127.0.0.1" in cap_lines[0]
    assert "Traceback" not in log
