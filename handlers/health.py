"""GET /healthz: the status word and the HTTP code, nothing else (it is public).

- 200 {"status": "ok"}: the database takes writes and nothing reports an error;
- 200 {"status": "degraded"}: a chat platform, a delivery target or RIA is failing (the
  service still stores every call; alerts wait in the outbox);
- 503 {"status": "failing"}: the database does not take writes, so calls cannot be stored.

The details (chat ids, error texts) would tell anyone on the internet which chats we post to
and how our platforms fail, so they go to the database instead, where `ria-calls-bot status`
reads them (see `STATE_KEY`).

The writability probe is a durable commit, so it runs at most every `PROBE_S` seconds and a
flood of requests is answered from its last result; a failed probe is not cached, so a disk
that recovers turns the answer back to 200 at the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlite_utils
from aiohttp import web

from handlers.metrics import MetricsEndpoint
from storage import meta
from storage.db import Store, transaction

log = logging.getLogger(__name__)

PROBE_S = 5.0  # the longest a successful writability probe is trusted
WATCH_S = 1.0  # how often the in-memory state is compared with what the database holds
# counters that change with every message: saving them would commit once per WATCH_S while
# alerts flow, and `status` counts messages from the outbox itself
NOISY = frozenset({"queued", "sent"})
STATE_KEY = "service_state"  # meta key: JSON of what only the running process knows
PROBES_KEY = "health_probes"  # meta key: how many writability probes ran, ever


def _probe(db: sqlite_utils.Database, state: str) -> None:
    # a real write: a full disk or a read-only file must turn the answer to 503. The count
    # of probes shows how often /healthz commits (a benchmark or a test can read it).
    with transaction(db):
        meta.put(db, "health_probe", str(time.time()))
        meta.put(db, PROBES_KEY, str(int(meta.get(db, PROBES_KEY) or 0) + 1))
        meta.put(db, STATE_KEY, _stamped(state))


def _save_state(db: sqlite_utils.Database, state: str) -> None:
    with transaction(db):
        meta.put(db, STATE_KEY, _stamped(state))


def _stamped(state: str) -> str:
    data = json.loads(state)
    data["saved_at"] = time.time()
    return json.dumps(data, sort_keys=True)


def has_error(part: Any) -> bool:
    """True when a status structure (channels, poller, delivery) holds a `last_error`."""
    if isinstance(part, dict):
        if part.get("last_error"):
            return True
        return any(has_error(value) for value in part.values())
    return False


def _quiet(part: Any) -> Any:
    if isinstance(part, dict):
        return {key: _quiet(value) for key, value in part.items() if key not in NOISY}
    return part


class Health:
    def __init__(
        self,
        store: Store,
        *,
        storage_error: Callable[[], str | None] = lambda: None,
        probe_every: float = PROBE_S,
        clock: Callable[[], float] = time.monotonic,
        metrics: MetricsEndpoint | None = None,
        **parts: Callable[[], dict[str, Any]],
    ) -> None:
        self.store = store
        # why storing calls last failed (None: it worked): the probe alone can miss a full
        # disk, and a webhook that answers 503 must not sit behind a 200 here
        self.storage_error = storage_error
        self.metrics = metrics  # GET /metrics (handlers/metrics), beside /healthz
        self.parts = parts  # name -> status function (poller, channels, delivery, ...)
        self.probe_every = probe_every
        self.clock = clock
        self._probed_at: float | None = None  # clock() of the last successful probe
        self._lock = asyncio.Lock()
        self._saved_state: str | None = None  # the state as last written (without its time)

    def routes(self) -> list[web.RouteDef]:
        routes = [web.get("/healthz", self.handle)]
        return routes + (self.metrics.routes() if self.metrics is not None else [])

    # --- the public answer ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        if not await self._writable() or self.storage_error() is not None:
            return web.json_response({"status": "failing"}, status=503)
        degraded = any(has_error(self._part(name)) for name in self.parts)
        return web.json_response({"status": "degraded" if degraded else "ok"})

    def _part(self, name: str) -> Any:
        try:
            return self.parts[name]()
        except Exception as exc:  # a status function must never break the health answer
            return {"last_error": f"status unavailable: {type(exc).__name__}"}

    async def _writable(self) -> bool:
        if self._fresh():
            return True
        async with self._lock:  # one probe for every request that arrives meanwhile
            if self._fresh():
                return True
            state = self.state()
            try:
                await self.store.run(_probe, state)
            except Exception as exc:
                log.debug("health probe failed: %s", exc)
                self._probed_at = None
                return False
            self._probed_at = self.clock()
            self._saved_state = state
            return True

    def _fresh(self) -> bool:
        return self._probed_at is not None and self.clock() - self._probed_at < self.probe_every

    # --- what `ria-calls-bot status` reads --------------------------------------------------

    def state(self, *, running: bool = True) -> str:
        """What only this process knows (channel connections, the poller's pause), as JSON
        for the meta table. Only `saved_at` changes without a change of state."""
        parts = {name: _quiet(self._part(name)) for name in self.parts}
        return json.dumps(
            {"running": running, "pid": os.getpid(), **parts}, sort_keys=True, default=str
        )

    async def _save(self, state: str) -> None:
        # the time goes in only when something else changed: no commit every few seconds
        if state == self._saved_state:
            return
        await self.store.run(_save_state, state)
        self._saved_state = state

    async def keep_state(self, app: web.Application) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: keep STATE_KEY current while the server runs, and mark
        the service stopped when it stops."""
        task = asyncio.create_task(self._watch(), name="health state")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):  # a full disk must not fail the stop
            await self._save(self.state(running=False))

    async def _watch(self) -> None:
        while True:
            try:
                await self._save(self.state())
            except Exception as exc:  # the database is failing: /healthz says so
                log.debug("cannot save the service state: %s", exc)
            await asyncio.sleep(WATCH_S)
