"""Prometheus metrics: the registry, the metric objects, and `GET /metrics`.

Events are counted where they happen, with one-line calls into this module (intake: calls
stored; the RIA poller: requests; bot/delivery/outcome: messages sent or given up, and the
alert latency). What lives in the database (outbox backlog, the RIA budget, callers still
waiting) is read at scrape time by `DbCollector`, from a snapshot refreshed at most every
REFRESH_S through the Store's one thread, so a scraper (or a flood of scrapes) costs the
webhook path at most one cheap query set every few seconds.

The port faces the internet (RIA's webhook), so `/metrics` answers only loopback clients
(judged through TRUSTED_PROXIES, so a request relayed by Caddy counts as its real client) or
a request with `Authorization: Bearer $METRICS_TOKEN`; anyone else gets a plain 404, as if
the route did not exist.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import sqlite_utils
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from handlers.proxies import Network, client_address
from storage.missed import episodes

if TYPE_CHECKING:
    from storage.outbox import OutboxItem

log = logging.getLogger(__name__)

PREFIX = "ria_calls_bot_"
REFRESH_S = 5.0  # the database figures are at most this old
# RIA's statuses (NOTES.md); anything else is counted as OTHER, so a payload cannot create
# an unbounded number of time series
STATUSES = frozenset({"ANSWER", "NOANSWER", "CANCEL", "BUSY", "FAILED", "CONGESTION"})
SOURCES = frozenset({"webhook", "poll", "backfill"})
KINDS = {"missed_call": "alert", "edit": "edit", "reminder": "reminder", "summary": "summary"}

REGISTRY = CollectorRegistry()

CALLS_STORED = Counter(
    PREFIX + "calls_stored",
    "New calls stored, by where they came from and RIA's status",
    ["source", "status"],
    registry=REGISTRY,
)
MESSAGES = Counter(
    PREFIX + "messages",
    "Messages to chats: alerts, edits, reminders, summaries; result sent or failed (given up)",
    ["channel", "kind", "result"],
    registry=REGISTRY,
)
ALERT_LATENCY = Histogram(
    PREFIX + "alert_delivery_seconds",
    "From a missed call's arrival (webhook or poll) to the chat platform's confirmation",
    ["channel"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
RIA_REQUESTS = Counter(
    PREFIX + "ria_requests",
    "Requests to RIA's calls_stat API, by HTTP status (no_answer: none came)",
    ["code"],
    registry=REGISTRY,
)
SUMMARIES = Counter(
    PREFIX + "summaries_sent",
    "Summaries delivered to a chat, by period (daily, weekly)",
    ["period"],
    registry=REGISTRY,
)
TIME_TO_CALLBACK = Histogram(
    PREFIX + "time_to_callback_seconds",
    "From a caller's first missed call to the callback (button) or their answered call",
    ["how"],
    buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
    registry=REGISTRY,
)


# --- the one-line hooks ----------------------------------------------------------------------


def calls_stored(source: str, statuses: dict[str, int]) -> None:
    """handlers/intake: the new calls of one batch, per status."""
    source = source if source in SOURCES else "other"
    for status, n in statuses.items():
        CALLS_STORED.labels(source, status if status in STATUSES else "OTHER").inc(n)


def ria_request(status: int | None) -> None:
    """handlers/ria/poller: one request made (answered or not)."""
    RIA_REQUESTS.labels(str(status) if status else "no_answer").inc()


@functools.lru_cache(maxsize=256)
def _child(metric: MetricWrapperBase, *labels: str) -> Any:
    """metric.labels(*labels), looked up once: labels() takes a lock and checks its
    arguments on every call (~5 µs), and `sent` runs on the event loop for every alert.
    The labels come from bounded sets (channels, KINDS), so the cache stays small."""
    return metric.labels(*labels)


def sent(channel: str, items: Sequence[OutboxItem], now: float) -> None:
    """bot/delivery/outcome: the platform confirmed a message carrying `items`."""
    for item in items:
        kind = KINDS.get(item.kind, "other")
        _child(MESSAGES, channel, kind, "sent").inc()
        if kind == "alert":  # created_at is the call's received_at (storage/calls)
            _child(ALERT_LATENCY, channel).observe(max(now - item.created_at, 0.0))
        elif kind == "summary":
            period = str(item.payload.get("summary") or "")
            SUMMARIES.labels(period if period in ("daily", "weekly") else "other").inc()


def failed(channel: str, items: Sequence[OutboxItem]) -> None:
    """bot/delivery/outcome: messages given up (permanent error, or too old)."""
    for item in items:
        MESSAGES.labels(channel, KINDS.get(item.kind, "other"), "failed").inc()


def callback_resolved(how: str, seconds: float) -> None:
    """Once per caller episode resolved (how: button | answered; seconds from the episode's
    first missed call): handlers/chat/callback.py (a press), handlers/intake.py (an answer)."""
    TIME_TO_CALLBACK.labels(how if how in ("button", "answered") else "other").observe(
        max(seconds, 0.0)
    )


# --- the figures read from the database at scrape time ---------------------------------------


@dataclass
class Snapshot:
    pending: list[tuple[str, str, int]] = field(default_factory=list)  # channel, target, n
    quota_left: dict[str, int] | None = None  # hour/month; None when polling is off
    # the routing file's [[account]]s (issue 13), each its own budget: (account, window, n)
    account_quota_left: list[tuple[str, str, int]] = field(default_factory=list)
    callers_waiting: int = 0


_PENDING_SQL = (
    "SELECT channel, target, COUNT(*) FROM outbox WHERE state = 'pending' GROUP BY channel, target"
)


def read_snapshot(
    db: sqlite_utils.Database,
    now: float,
    tz: ZoneInfo,
    monthly_quota: int | None,
    accounts: Sequence[tuple[str, int]] = (),
) -> Snapshot:
    """On the Store's thread: the outbox backlog (the outbox_due index), the RIA budget (the
    poller's own check), the callers missed today and still waiting (calls_missed index)."""
    snap = Snapshot()
    snap.pending = [(c, t, n) for c, t, n in db.conn.execute(_PENDING_SQL)]
    if monthly_quota is not None:
        # imported here: the poller imports this module for its hook
        from handlers.ria.poller import HOURLY_CAP, check_budget

        budget = check_budget(db, now, tz, monthly_quota)
        snap.quota_left = {
            "hour": max(HOURLY_CAP - budget.used_hour, 0),
            "month": max(monthly_quota - budget.used_month, 0),
        }
    if accounts:
        from handlers.ria.poller import HOURLY_CAP, check_budget

        for name, quota in accounts:  # (name, monthly quota) of each [[account]]
            used = check_budget(db, now, tz, quota, name)
            snap.account_quota_left += [
                (name, "hour", max(HOURLY_CAP - used.used_hour, 0)),
                (name, "month", max(quota - used.used_month, 0)),
            ]
    midnight = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    found = episodes(db, int(midnight.timestamp()), int(now) + 1)
    snap.callers_waiting = sum(1 for e in found if e.resolved_at is None)
    return snap


class DbCollector(Collector):
    """Turns the last snapshot into gauges; `refresh` (async) takes a new one when stale."""

    def __init__(
        self,
        read: Callable[[], Any],
        *,
        refresh_s: float = REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read  # () -> awaitable Snapshot
        self.refresh_s = refresh_s
        self.clock = clock
        self.snapshot = Snapshot()
        self._at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        if self._fresh():
            return
        async with self._lock:  # one read for every scrape that arrives meanwhile
            if self._fresh():
                return
            try:
                self.snapshot = await self.read()
            except Exception as exc:  # the last figures stay; /healthz reports the database
                log.debug("metrics: cannot read the database: %s", exc)
            self._at = self.clock()

    def _fresh(self) -> bool:
        return self._at is not None and self.clock() - self._at < self.refresh_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self.snapshot
        pending = GaugeMetricFamily(
            PREFIX + "outbox_pending",
            "Messages waiting in the outbox, per target",
            labels=["channel", "target"],
        )
        for channel, target, n in snap.pending:
            pending.add_metric([channel, target], n)
        yield pending
        if snap.quota_left is not None:
            quota = GaugeMetricFamily(
                PREFIX + "ria_quota_left",
                "RIA requests the poller may still make this hour / this month",
                labels=["window"],
            )
            for window, n in snap.quota_left.items():
                quota.add_metric([window], n)
            yield quota
        if snap.account_quota_left:
            # a metric of its own: ria_quota_left keeps its one label (the RIA_* account)
            per_account = GaugeMetricFamily(
                PREFIX + "ria_account_quota_left",
                "RIA requests each [[account]]'s poller may still make this hour / this month",
                labels=["account", "window"],
            )
            for name, window, n in snap.account_quota_left:
                per_account.add_metric([name, window], n)
            yield per_account
        yield GaugeMetricFamily(
            PREFIX + "callers_waiting",
            "Callers who missed us today and are still waiting for a callback",
            value=snap.callers_waiting,
        )


# --- GET /metrics ----------------------------------------------------------------------------


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class MetricsEndpoint:
    def __init__(
        self,
        store: Any,
        *,
        token: str | None,
        trusted: Iterable[Network],
        tz: ZoneInfo,
        monthly_quota: int | None,
        registry: CollectorRegistry = REGISTRY,
        accounts: Callable[[], Sequence[tuple[str, int]]] = tuple,
    ) -> None:
        # accounts: asked at each refresh, so the [[account]]s a SIGHUP adds get their
        # quota gauges at once (and removed ones lose theirs)
        self.token = token.encode() if token else None
        self.trusted = tuple(trusted)
        self.registry = registry
        self.db = DbCollector(
            lambda: store.run(read_snapshot, time.time(), tz, monthly_quota, accounts())
        )
        registry.register(self.db)

    def close(self) -> None:
        self.registry.unregister(self.db)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.handle)]

    def allowed(self, request: web.Request) -> bool:
        if _loopback(client_address(request, self.trusted)):
            return True
        if self.token is None:
            return False
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # constant time: the token must not leak through how fast a wrong one is refused
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token
        )

    async def handle(self, request: web.Request) -> web.Response:
        if not self.allowed(request):
            raise web.HTTPNotFound()
        await self.db.refresh()
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
