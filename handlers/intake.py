"""The single way calls enter the database, whichever source saw them.

Webhook requests that arrive while the writer thread is busy are committed together in the
next transaction (group commit): one fsync serves many requests, and each request still gets
its answer only after its calls are durable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from handlers import metrics
from storage.calls import Batch, Call, IngestResult, ingest_many
from storage.db import Store
from storage.outbox import OutboxItem, Target
from storage.routes import RouteFn

log = logging.getLogger(__name__)


class Intake:
    def __init__(
        self,
        store: Store,
        *,
        targets: Sequence[Target],
        missed_statuses: Sequence[str],
        on_alerts: Callable[[list[OutboxItem]], None] = lambda items: None,
        clock: Callable[[], float] = time.time,
        route: RouteFn | None = None,
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.missed_statuses = tuple(missed_statuses)
        self.on_alerts = on_alerts
        self.clock = clock
        # the config file's router (issue 13); None: every alert to `targets`, as before.
        # Replaced whole on SIGHUP: a batch already being stored keeps the one it started with
        self.route = route
        self._waiting: list[tuple[Batch, asyncio.Future[IngestResult]]] = []
        self._committer: asyncio.Task[None] | None = None
        # why the last attempt to store calls failed; None once one succeeds again. A
        # health probe's small write can still succeed on a full disk (into WAL space
        # already allocated), so /healthz reports this too.
        self.storage_error: str | None = None

    async def accept(
        self,
        calls: Sequence[Call],
        *,
        source: str,
        alert_max_age_s: float | None = None,
        account: str | None = None,
    ) -> IngestResult:
        """Store `calls`; returns once they are committed. Raises if storage fails."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((Batch(calls, source, alert_max_age_s, account), future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting, []
            try:
                results = await self._ingest([batch for batch, _ in group])
            except Exception as exc:
                if len(group) == 1:
                    self._fail(group, exc)
                    continue
                # One batch may be what broke the transaction: commit each on its own, so
                # that only its own request hears about it and the others are stored.
                for one in group:
                    try:
                        results = await self._ingest([one[0]])
                    except Exception as one_exc:
                        self._fail([one], one_exc)
                    else:
                        self._done([one], results)
                continue
            self._done(group, results)

    async def _ingest(self, batches: list[Batch]) -> list[IngestResult]:
        # store.write: the group also shares its COMMIT with alerts being marked sent
        results = await self.store.write(
            ingest_many,
            batches,
            received_at=self.clock(),
            missed_statuses=self.missed_statuses,
            targets=self.targets,
            route=self.route,
        )
        self.storage_error = None
        return results

    def _fail(
        self, group: list[tuple[Batch, asyncio.Future[IngestResult]]], exc: Exception
    ) -> None:
        """Storage failed: every waiting request hears it (the webhook answers 503)."""
        log.error("storing calls failed: %s", exc)
        self.storage_error = str(exc) or type(exc).__name__
        for _, future in group:
            if not future.done():
                future.set_exception(exc)

    def _done(
        self,
        group: list[tuple[Batch, asyncio.Future[IngestResult]]],
        results: list[IngestResult],
    ) -> None:
        # alerts, and the edits of alerts that a newly answered call resolved
        items = [item for result in results for item in result.outbox_items]
        if items:
            self.on_alerts(items)
        for (batch, future), result in zip(group, results, strict=True):
            metrics.calls_stored(batch.source, result.statuses)
            for seconds in result.callbacks:
                metrics.callback_resolved("answered", seconds)
            if not future.done():
                future.set_result(result)
