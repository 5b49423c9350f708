"""Calls and the one ingest transaction: new calls in, one outbox row per alert target."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils
from sqlite_utils.db import NotFoundError

from storage.db import transaction
from storage.model import CALL_COLUMNS, Call, call_from_row
from storage.outbox import OutboxItem, Target, insert_items
from storage.resolutions import on_new_missed, resolve_answered
from storage.routes import Routed, RouteFn, write_call_routes

__all__ = [
    "Batch",
    "Call",
    "IngestResult",
    "call_from_row",
    "get_call",
    "ingest",
    "ingest_many",
    "raw_json",
]


@dataclass
class IngestResult:
    accepted: int = 0  # new calls stored
    duplicates: int = 0  # calls we already had
    alerts: list[OutboxItem] = field(default_factory=list)  # alert rows created
    # edit rows created: alerts of earlier missed calls resolved by a new ANSWER call
    edits: list[OutboxItem] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)  # new calls per status (metrics)
    # per caller resolved by a new ANSWER call: seconds since their first open missed call
    callbacks: list[float] = field(default_factory=list)

    @property
    def outbox_items(self) -> list[OutboxItem]:
        """Every outbox row this batch created (alerts, then edits): for the dispatcher."""
        return self.alerts + self.edits


@dataclass
class Batch:
    """Calls from one delivery (a webhook request, a poll answer)."""

    calls: Sequence[Call]
    source: str  # webhook | poll | backfill
    # None alerts whatever the age (a webhook is always fresh news); with a number, calls
    # that started longer ago than that are stored but not alerted one by one
    alert_max_age_s: float | None = None
    # the [[account]] whose webhook or poller saw these calls; None: the RIA_* account
    account: str | None = None


# json.dumps with any option builds a new encoder per call: ~7 µs of the ~12 a record's JSON
# cost on the writer thread, holding the GIL the event loop needs
_READABLE = json.JSONEncoder(ensure_ascii=False)


def raw_json(raw: dict[str, Any]) -> str:
    """The raw record as JSON text: readable UTF-8, or \\u escapes where the data holds a
    lone surrogate (valid JSON, but not encodable as the UTF-8 SQLite stores)."""
    text = _READABLE.encode(raw)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(raw)
    return text


_INSERT_CALL = (
    f"INSERT OR IGNORE INTO calls ({', '.join(CALL_COLUMNS)}, missed, raw, source, "
    f"received_at, account) VALUES ({', '.join('?' * (len(CALL_COLUMNS) + 5))})"
)


def ingest_many(
    db: sqlite_utils.Database,
    batches: Sequence[Batch],
    *,
    received_at: float,
    missed_statuses: Iterable[str],
    targets: Sequence[Target],
    route: RouteFn | None = None,
) -> list[IngestResult]:
    """Store the calls not seen before and queue an alert per target for each new missed one.

    Every batch in one transaction (a group commit: one fsync for many webhook requests), so a
    call is never stored without its alerts or the reverse. One result per batch, in order.
    With `route` (a configuration file's router), each new call's targets come from it and
    are recorded in call_routes, decided once here: a later config change never re-alerts.
    """
    fixed = [Routed(t) for t in targets]
    route_rows: list[tuple[int, str, str]] = []  # call_routes, written in one statement
    missed = frozenset(missed_statuses)
    results: list[IngestResult] = []
    with transaction(db) as conn:
        for batch in batches:
            result = IngestResult()
            # with its repeat number and targets
            new_missed: list[tuple[Call, int | None, Sequence[Routed]]] = []
            for call in batch.calls:
                is_missed = call.status in missed
                # getattr, not dataclasses.asdict: asdict deep-copies `raw` and every field
                # (~30 µs a call, on the writer thread, holding the GIL)
                row = [getattr(call, c) for c in CALL_COLUMNS]
                row += [
                    int(is_missed),
                    call.raw_text or raw_json(call.raw),
                    batch.source,
                    received_at,
                    batch.account,
                ]
                if conn.execute(_INSERT_CALL, row).rowcount == 0:
                    result.duplicates += 1
                    continue
                result.accepted += 1
                result.statuses[call.status] = result.statuses.get(call.status, 0) + 1
                routed: Sequence[Routed] = fixed
                if route is not None:
                    routed = route(call, batch.account)
                    route_rows += [(call.call_id, r.target.channel, r.target.id) for r in routed]
                # the callback loop: only ANSWER calls and missed ones look further (one
                # indexed lookup each); see storage/resolutions.py
                if call.status == ANSWER:
                    result.edits += resolve_answered(
                        conn, call, now=received_at, waits=result.callbacks
                    )
                if not is_missed:
                    continue
                repeat = on_new_missed(conn, call)
                max_age = batch.alert_max_age_s
                if max_age is None or received_at - call.started_at <= max_age:
                    new_missed.append((call, repeat, routed))
            items = [
                _alert(call, r, repeat, received_at)
                for call, repeat, routed in new_missed
                for r in routed
            ]
            result.alerts = insert_items(conn, items)
            results.append(result)
        if route_rows:
            write_call_routes(conn, route_rows)
    return results


ANSWER = "ANSWER"


def _alert(call: Call, routed: Routed, repeat: int | None, now: float) -> OutboxItem:
    """OutboxItem.for_call with routing's extras (topic, mode, mention; none for a plain
    target: today's row) and 🔁 (the caller missed us earlier today and is still waiting:
    payload {"repeat": N}), built in one go: two dataclasses.replace per alert were a
    third of what routing added to ingest on the writer thread."""
    payload = routed.payload()  # a dict of its own
    if repeat:
        payload["repeat"] = repeat
    return OutboxItem(
        dedup_key=f"call:{call.call_id}:{routed.target}{routed.dedup_suffix}",
        kind="missed_call",
        target=routed.target,
        created_at=now,
        next_attempt_at=now,
        call_id=call.call_id,
        payload=payload,
        call=call,
    )


def ingest(
    db: sqlite_utils.Database,
    calls: Sequence[Call],
    *,
    source: str,
    received_at: float,
    missed_statuses: Iterable[str],
    targets: Sequence[Target],
    alert_max_age_s: float | None,
    route: RouteFn | None = None,
    account: str | None = None,
) -> IngestResult:
    """`ingest_many` for a single batch."""
    return ingest_many(
        db,
        [Batch(calls, source, alert_max_age_s, account)],
        received_at=received_at,
        missed_statuses=missed_statuses,
        targets=targets,
        route=route,
    )[0]


def get_call(db: sqlite_utils.Database, call_id: int) -> Call | None:
    try:
        return call_from_row(db.table("calls").get(call_id))
    except NotFoundError:
        return None
