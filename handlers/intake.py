"""The single way calls enter the database, whichever source saw them.

Webhook requests that arrive while the writer thread is busy are committed together in the
next transaction (group commit, storage.db.Store.write): one fsync serves many requests, and
each request still gets its answer only after its calls are durable.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from handlers import metrics
from storage.calls import Batch, Call, IngestResult, ingest_many
from storage.db import Store
from storage.outbox import OutboxItem, Target

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
    ) -> None:
        self.store = store
        self.targets = list(targets)
        self.missed_statuses = tuple(missed_statuses)
        self.on_alerts = on_alerts
        self.clock = clock
        # why the last attempt to store calls failed; None once one succeeds again. A
        # health probe's small write can still succeed on a full disk (into WAL space
        # already allocated), so /healthz reports this too.
        self.storage_error: str | None = None

    async def accept(
        self, calls: Sequence[Call], *, source: str, alert_max_age_s: float | None = None
    ) -> IngestResult:
        """Store `calls`; returns once they are committed. Raises if storage fails."""
        batch = Batch(calls, source, alert_max_age_s)
        try:
            # store.write groups it with the writes waiting meanwhile (other webhooks,
            # alerts marked sent) under one COMMIT, each in its own savepoint: a batch
            # that fails undoes only its own writes, and only its request hears of it
            result = (
                await self.store.write(
                    ingest_many,
                    [batch],
                    received_at=self.clock(),
                    missed_statuses=self.missed_statuses,
                    targets=self.targets,
                )
            )[0]
        except Exception as exc:
            log.error("storing calls failed: %s", exc)
            self.storage_error = str(exc) or type(exc).__name__
            raise
        self.storage_error = None
        if result.accepted:
            metrics.calls_stored(source, _new_statuses(calls, result))
        # alerts, and the edits of alerts that a newly answered call resolved
        if items := result.outbox_items:
            self.on_alerts(items)
        return result


def _new_statuses(calls: Sequence[Call], result: IngestResult) -> dict[str, int]:
    """The statuses of the batch's new calls, for the calls_stored metric. IngestResult does
    not say which calls were the duplicates; in a mixed batch (a poll overlapping the last
    one) the duplicates are taken to be the first calls, which is how a poll overlaps."""
    return dict(Counter(call.status for call in calls[result.duplicates :]))
