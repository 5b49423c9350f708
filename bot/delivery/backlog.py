"""One target's share of the outbox in memory, bounded: at most a page of rows is held; a
longer backlog (a restart after an afternoon without Telegram, a long live outage) stays
in the database and is read a page at a time, oldest first, as the rows before it go out.

Pages are contiguous in id order and `paged_to` is the last id a page read, so a row at
or below it is known here already (held, or sent or failed since): a late `add()` of such
a row is ignored, which keeps a row from being sent twice. Outbox ids only grow (one
writer thread commits them in order), so a row committed after a page was read has a
higher id and is found by the next page.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage import outbox
from storage.db import Store
from storage.outbox import OutboxItem, Target

PAGE = 500  # rows per target held in memory at most (plus one page while refilling)
REFILL_AT = PAGE // 2


class Backlog:
    def __init__(
        self, store: Store, target: Target, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.clock = clock
        self.target = target
        self.items: dict[int, OutboxItem] = {}  # by outbox id, oldest first
        self.in_db = False  # rows of this target may wait in the database, not in `items`
        self.paged_to = 0
        self._skipped = False  # a row was left to the database while a page was read

    def add(self, items: list[OutboxItem]) -> None:
        """Hold new (committed) rows, unless memory is full or older rows still wait in the
        database: then they wait there too, and a page brings them in their turn."""
        for item in items:
            if item.id is None or item.id <= self.paged_to or item.id in self.items:
                continue
            if not self.in_db and len(self.items) >= PAGE:
                self.in_db = True
            if self.in_db:
                self._skipped = True
                continue
            self.items[item.id] = item

    def from_db(self, first_id: int) -> None:
        """Rows from `first_id` on wait in the database (found at start)."""
        self.in_db = True
        self.paged_to = min(self.paged_to, first_id - 1) if self.paged_to else first_id - 1

    def needs_page(self) -> bool:
        return self.in_db and len(self.items) < REFILL_AT

    async def page(self) -> None:
        """Read the next page of pending rows (oldest first) into `items`."""
        self._skipped = False
        want = PAGE - len(self.items)
        rows = await self.store.run(outbox.pending, self.target, after_id=self.paged_to, limit=want)
        now = self.clock()
        for item in rows:
            # a row another run put off (a backoff, a paused target) is tried now: a start
            # is the moment a fixed token or chat is meant to take effect
            item.next_attempt_at = min(item.next_attempt_at, now)
            if item.id is not None:
                self.items.setdefault(item.id, item)
        if rows and rows[-1].id is not None:
            self.paged_to = max(self.paged_to, rows[-1].id)
        if len(rows) < want and not self._skipped:
            self.in_db = False  # all read; what comes next arrives through add()
