"""Where a call was routed: the plain values the router hands to ingest, and the
call_routes rows written for every call (a chat's commands and summaries are scoped by
them). Storage only stores what it is given: the router itself lives in handlers/routing."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from storage.model import Call
from storage.outbox import Target

Mode = Literal["normal", "silent", "digest"]


@dataclass(frozen=True)
class Routed:
    """One target a call goes to, as decided at ingest."""

    target: Target  # telegram:<chat id> (never with the topic), slack:<channel>, console
    topic: int | None = None  # Telegram forum topic (message_thread_id)
    mode: Mode = "normal"  # outside working hours: silent / digest
    mention: str | None = None  # "telegram:<user id>" / "slack:<U..>" of the call's manager
    reason: str = ""  # which route (or "default") chose it: for `route` and logs

    def payload(self) -> dict[str, Any]:
        """What an outbox row carries for the renderer and delivery (only what is set, so
        a row routed to the plain defaults looks exactly like one from before routing)."""
        out: dict[str, Any] = {}
        if self.topic is not None:
            out["topic"] = self.topic
        if self.mode != "normal":
            out["mode"] = self.mode
        if self.mention:
            out["mention"] = self.mention
        return out

    @property
    def dedup_suffix(self) -> str:
        # two topics of one group are two messages; a plain chat keeps today's key
        return f"/{self.topic}" if self.topic is not None else ""


# (call, account name or None for the env account) -> its targets
RouteFn = Callable[[Call, "str | None"], Sequence[Routed]]


def write_call_routes(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, str]]) -> None:
    """Record which chats calls were routed to: (call_id, channel, target) rows, once per
    chat (topics share their chat's row)."""
    conn.executemany(
        "INSERT OR IGNORE INTO call_routes (call_id, channel, target) VALUES (?, ?, ?)", rows
    )


def calls_routed_to(conn: sqlite3.Connection, target: Target) -> list[int]:
    """The call ids routed to one chat (for scoping commands and summaries)."""
    rows = conn.execute(
        "SELECT call_id FROM call_routes WHERE channel = ? AND target = ? ORDER BY call_id",
        (target.channel, target.id),
    ).fetchall()
    return [row[0] for row in rows]


def routes_of(conn: sqlite3.Connection, call_id: int) -> list[Target]:
    rows = conn.execute(
        "SELECT channel, target FROM call_routes WHERE call_id = ? ORDER BY channel, target",
        (call_id,),
    ).fetchall()
    return [Target(row[0], row[1]) for row in rows]


__all__ = ["Mode", "RouteFn", "Routed", "calls_routed_to", "routes_of", "write_call_routes"]
