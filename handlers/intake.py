"""The single way calls enter the database, whichever source saw them.

Webhook requests that arrive while the writer thread is busy are committed together in the
next transaction (group commit): one fsync serves many requests, and each request still gets
its answer only after its calls are durable.
"""

from __future__ import annotations

import asyncio
import functools
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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[IngestResult] = loop.create_future()
        self._waiting.append((Batch(calls, source, alert_max_age_s, account), future))
        if len(self._waiting) == 1:
            # the requests handled in this turn of the loop go to storage together
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        group, self._waiting = self._waiting, []
        if group:
            self._send(group)

    def _send(self, group: list[tuple[Batch, asyncio.Future[IngestResult]]]) -> None:
        # store.write_soon: the group also shares its COMMIT with alerts being marked sent,
        # and with the groups of other turns that wait for the same COMMIT. Callbacks, not a
        # task: the hand-off costs the loop one call per group
        write = self.store.write_soon(
            ingest_many,
            [batch for batch, _ in group],
            received_at=self.clock(),
            missed_statuses=self.missed_statuses,
            targets=self.targets,
            route=self.route,
        )
        write.add_done_callback(functools.partial(self._written, group))

    def _written(
        self,
        group: list[tuple[Batch, asyncio.Future[IngestResult]]],
        write: asyncio.Future[list[IngestResult]],
    ) -> None:
        exc = write.exception()
        if exc is None:
            self.storage_error = None
            self._done(group, write.result())
        elif len(group) == 1:
            self._fail(group, exc)
        else:
            # One batch may be what broke the transaction: store each on its own, so that
            # only its own request hears about it and the others are stored.
            for one in group:
                self._send([one])

    def _fail(
        self, group: list[tuple[Batch, asyncio.Future[IngestResult]]], exc: BaseException
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
        # the counters once per group and source, not per request (a labelled counter's
        # lookup and lock, per status, for each webhook)
        stored: dict[str, dict[str, int]] = {}
        for (batch, future), result in zip(group, results, strict=True):
            if result.statuses:
                counts = stored.setdefault(batch.source, {})
                for status, n in result.statuses.items():
                    counts[status] = counts.get(status, 0) + n
            for seconds in result.callbacks:
                metrics.callback_resolved("answered", seconds)
            if not future.done():
                future.set_result(result)
        for source, counts in stored.items():
            metrics.calls_stored(source, counts)
