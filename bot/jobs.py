"""The service's scheduled jobs: how an interval job is added, and the retention purge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import Settings
from storage import retention
from storage.db import Store

log = logging.getLogger(__name__)


def every(
    scheduler: AsyncIOScheduler,
    job: Callable[..., Awaitable[None]],
    id: str,
    s: Settings,
    **when: Any,
) -> None:
    """An interval job that runs once at start too, never twice at once, and whose runs
    missed while busy are folded into one."""
    args = when.pop("args", None)
    scheduler.add_job(
        job,
        "interval",
        args=args,
        id=id,
        next_run_time=now_in(s),
        max_instances=1,
        coalesce=True,
        **when,
    )


def now_in(settings: Settings) -> datetime:
    return datetime.now(settings.tz)


async def purge_expired(store: Store, retention_days: int) -> None:
    """The retention job: delete what RETENTION_DAYS lets go, in chunks, logging the totals."""
    total: Counter[str] = Counter()
    try:
        while True:
            done = await store.run(
                retention.purge_step,
                now=time.time(),
                retention_days=retention_days,
            )
            total.update(done)
            if not any(done.values()):
                break
            await asyncio.sleep(0.05)  # webhooks get the writer between chunks
    except asyncio.CancelledError:
        return  # stopping: what is left goes at the next run
    except Exception as exc:
        log.error("retention: purge failed, next try tomorrow: %s", exc)
    if any(total.values()):
        log.info(
            "retention: deleted %d call(s), %d delivered message(s), %d rejected payload(s)",
            total["calls"],
            total["outbox"],
            total["rejected_payloads"],
        )
