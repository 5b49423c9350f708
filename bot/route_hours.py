"""A route's own working hours at delivery (issue 13): the outbox rows a route with
`hours = {...}` makes carry those hours' key (payload "hours"), so that delivery holds its
`digest` alerts until that route's opening, and reminders count that route's open time,
not the global [hours]'.

The router (handlers/routing) decides the mode at ingest; this subclass only tags each
decision with the key of the hours it was judged by. It runs on a cache miss only (the
router caches decisions), so ingest costs the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.hours import hours_key
from handlers.routing import Hours, Router
from storage.model import Call
from storage.routes import Routed


@dataclass(frozen=True)
class RoutedWithHours(Routed):
    """A target of a route that has hours of its own: its rows name those hours."""

    hours: str | None = None  # bot.hours.hours_key of the route's hours

    def payload(self) -> dict[str, Any]:
        out = super().payload()
        if self.hours is not None:
            out["hours"] = self.hours
        return out


class HoursRouter(Router):
    def __post_init__(self) -> None:
        super().__post_init__()
        # "route N" (Routed.reason) -> the key of route N's own hours
        self._keys = {
            f"route {r.index}": hours_key(r.hours) for r in self.routes if r.hours is not None
        }

    def route_hours(self) -> dict[str, Hours]:
        """The routes' own hours by key, for bot.hours.set_hours."""
        return {hours_key(r.hours): r.hours for r in self.routes if r.hours is not None}

    def _decide(
        self, call: Call, account: str | None, now: datetime | None, explain: bool = False
    ) -> tuple[list[Routed], list[str]]:
        routed, why = super()._decide(call, account, now, explain)
        if self._keys:
            routed = [_tagged(r, self._keys.get(r.reason)) for r in routed]
        return routed, why


def _tagged(routed: Routed, key: str | None) -> Routed:
    if key is None:
        return routed
    r = routed
    return RoutedWithHours(r.target, r.topic, r.mode, r.mention, r.reason, hours=key)


__all__ = ["HoursRouter", "RoutedWithHours"]
