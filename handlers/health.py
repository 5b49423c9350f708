"""GET /healthz: 200 while the service can do its job, 503 when it cannot (database)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlite_utils
from aiohttp import web

from storage import meta, outbox
from storage.db import Store, transaction


def _probe(db: sqlite_utils.Database) -> dict[str, Any]:
    # a real write: a full disk or a read-only file must turn the answer to 503
    with transaction(db):
        meta.put(db, "health_probe", str(time.time()))
    return outbox.backlog(db)


class Health:
    def __init__(
        self,
        store: Store,
        *,
        storage_error: Callable[[], str | None] = lambda: None,
        **parts: Callable[[], dict[str, Any]],
    ) -> None:
        self.store = store
        # why storing calls last failed (None: it worked): the probe alone can miss a full
        # disk, and a webhook that answers 503 must not sit behind a 200 here
        self.storage_error = storage_error
        self.parts = parts  # name -> status function (poller, channels, ...)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        status: dict[str, Any] = {"status": "ok", "database": "ok"}
        code = 200
        try:
            targets = await self.store.run(_probe)
            status["outbox"] = {
                "pending": sum(t["pending"] for t in targets.values()),
                "failed": sum(t["failed"] for t in targets.values()),
                "targets": targets,
            }
        except Exception as exc:
            status.update(status="unavailable", database=f"error: {exc}")
            code = 503
        else:
            error = self.storage_error()
            if error is not None:
                status.update(status="unavailable", database=f"error: storing calls: {error}")
                code = 503
        for name, part in self.parts.items():
            status[name] = part()
        return web.json_response(status, status=code)
