"""Shared plumbing for the fake HTTP servers: lifecycle, modes and fault queues.

Each fake is a real aiohttp server on 127.0.0.1 so that the real clients (python-telegram-bot,
aiohttp, slack-sdk) exercise their real network code against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web

MODES = ("ok", "down_500", "hang")
JSONDict = dict[str, Any]


@dataclass
class Fault:
    """One injected failure, consumed by the next matching request."""

    status: int
    description: str | None = None
    retry_after: int | None = None


class FakeServer:
    """Base class: start/stop (restartable on the same port), `mode`, `fail_next`.

    Subclasses implement `_build_app()` and call `await self._gate(request)` at the top of
    their handlers to honour `mode`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_hang: float = 30.0,
        shutdown_timeout: float = 0.5,
    ) -> None:
        self.host = host
        self.port = port
        # A hanging request is released after max_hang seconds so that a forgotten
        # mode="hang" can never wedge a test run forever.
        self.max_hang = max_hang
        self.shutdown_timeout = shutdown_timeout
        self._mode = "ok"
        self._faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self.started_count = 0

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} was never started, it has no port yet")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def _on_started(self) -> None:
        """Hook for subclasses (background workers)."""

    async def _on_stopping(self) -> None:
        """Hook for subclasses, called before the server closes."""

    async def start(self) -> None:
        """Start listening; after `stop()` this listens again on the same port."""
        if self._runner is not None:
            return
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        app = self._build_app()
        runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        # reuse_address lets a restarted fake take back its port despite TIME_WAIT sockets,
        # which is how tests simulate "connection refused, then the service is back".
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site
        if not self.port:
            server = site._server
            assert server is not None and hasattr(server, "sockets")
            self.port = server.sockets[0].getsockname()[1]
        self.started_count += 1
        await self._on_started()

    async def stop(self) -> None:
        """Stop listening; hanging and long-polling requests are released first."""
        runner = self._runner
        if runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        await self._on_stopping()
        # Give released handlers a moment to finish their answers before the sockets close.
        await asyncio.sleep(0)
        self._runner = self._site = None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- modes and faults ------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value
        # Hanging handlers wait on this event; leaving "hang" must let them proceed.
        if self._wake is not None:
            self._wake.set()
            self._wake = asyncio.Event()

    def _push_faults(self, n: int, fault: Fault) -> None:
        for _ in range(n):
            self._faults.append(fault)

    def _pop_fault(self) -> Fault | None:
        return self._faults.popleft() if self._faults else None

    @property
    def pending_faults(self) -> int:
        return len(self._faults)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def _gate(self, request: web.Request) -> None:
        """Hold the request while mode == "hang".

        Returns when the mode changes; if the fake stops or max_hang passes first, the
        connection is dropped without an answer, as a dead upstream would.
        """
        deadline = time.monotonic() + self.max_hang
        while self._mode == "hang":
            wake, stopping = self._wake, self._stopping
            assert wake is not None and stopping is not None
            remaining = deadline - time.monotonic()
            if stopping.is_set() or remaining <= 0:
                _drop_connection(request)
            await wait_any([wake.wait(), stopping.wait()], remaining)

    async def wait_stopping(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the fake began stopping meanwhile."""
        assert self._stopping is not None
        return await wait_any([self._stopping.wait()], seconds)

    # --- control API for other processes (routed as /_fake/{action}) -----------------------
    # What every fake answers is here; a fake adds its own actions in `_control_action`, its
    # own state fields in `_control_state`, and names its per-target filter (`TARGET_KEY`).

    TARGET_KEY = "target"  # the query key that filters `messages`: "chat_id", "channel"
    messages: list[JSONDict]
    requests: list[JSONDict]
    rate_limited: int

    def messages_for(self, target: Any) -> list[JSONDict]:
        raise NotImplementedError

    def fail_next(
        self, n: int = 1, status: int = 500, description: str | None = None, *args: Any
    ) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def _control_state(self) -> JSONDict:
        return {}

    async def _control_action(self, action: str, body: JSONDict, query: Any) -> web.Response | None:
        """A fake's own control actions; None: not one of them."""
        return None

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body: JSONDict = {}
        if request.method == "POST" and request.body_exists:
            body = await request.json()
        q = request.query
        if action == "messages":
            key = self.TARGET_KEY
            msgs = self.messages_for(q[key]) if key in q else self.messages
            return json_reply(msgs[int(q.get("since", 0)) :])
        if action == "state":
            return json_reply(
                {
                    "messages": len(self.messages),
                    "requests": len(self.requests),
                    "rate_limited": self.rate_limited,
                    "mode": self.mode,
                }
                | self._control_state()
            )
        if action == "mode":
            self.mode = body["mode"]
            return json_reply({"mode": self.mode})
        if action == "fail_next":
            self.fail_next(
                int(body.get("n", 1)),
                int(body.get("status", 500)),
                body.get("description", body.get("error")),  # Telegram's word, Slack's word
                body.get("retry_after"),
            )
            return json_reply({"pending_faults": self.pending_faults})
        if action == "reset":
            self.reset()
            return json_reply({"ok": True})
        reply = await self._control_action(action, body, q)
        if reply is None:
            return json_reply({"error": f"unknown control action {action!r}"}, status=404)
        return reply


def jsonable(value: Any) -> Any:
    """Records as JSON can carry them: bytes (uploads) as their size."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def json_reply(value: Any, status: int = 200) -> web.Response:
    """A control API answer: any record, readable (UTF-8 as is, odd values as str)."""
    return web.json_response(jsonable(value), status=status, dumps=_dumps)


class DroppedConnection(web.HTTPException):
    """Raised after the transport is closed; aiohttp then has nothing to write."""

    status_code = 499


def _drop_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise DroppedConnection()


@web.middleware
async def swallow_dropped(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # aiohttp would otherwise try to write a 499 to the aborted transport and log noise.
    try:
        return await handler(request)
    except DroppedConnection:
        resp = web.Response(status=499)
        resp.force_close()
        return resp


async def wait_any(aws: list[Awaitable[Any]], seconds: float | None) -> bool:
    """Wait until any awaitable finishes or `seconds` pass; True if one finished."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t


def run_standalone(make: Callable[[], FakeServer], label: str) -> None:
    """Run a fake until SIGINT/SIGTERM, printing its URL first (for other processes)."""

    async def main() -> None:
        fake = make()
        await fake.start()
        print(fake.url, flush=True)
        print(
            f"{label} listening on {fake.url}; control API under {fake.url}/_fake/",
            file=sys.stderr,
            flush=True,
        )
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        try:
            await done.wait()
        finally:
            await fake.stop()

    asyncio.run(main())
