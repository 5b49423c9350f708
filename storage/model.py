"""The call row type, shared by storage/calls (which writes calls) and storage/outbox (which
reads each alert with its call): here, so that neither has to import the other's module."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One RIA call record, normalised. `raw` keeps the record exactly as RIA sent it."""

    call_id: int
    started_at: int  # UTC epoch seconds
    local_date: str  # RIA's local `date`, YYYY-MM-DDTHH:MM:SS
    status: str  # upper case; BYSY already mapped to BUSY; unknown statuses kept
    caller_phone: str
    caller_e164: str
    destination_phone: str = ""
    phone: str = ""
    duration: int = 0
    waiting: int = 0
    link: str = ""
    marka: str | None = None
    marka_id: int | None = None
    model: str | None = None
    model_id: int | None = None
    price: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    # `raw` as the JSON text it arrived in, when a webhook's body was this one record: stored
    # as it came instead of encoded again (re-encoding was ~40 % of the writer thread's
    # Python time at full ingest load, holding the GIL the event loop needs; py-spy)
    raw_text: str | None = field(default=None, compare=False, repr=False)

    @property
    def car(self) -> str | None:
        """'Acura MDX', 'Acura', or None when RIA did not say."""
        parts = [p for p in (self.marka, self.model) if p]
        return " ".join(parts) or None


CALL_COLUMNS = [
    "call_id",
    "started_at",
    "local_date",
    "status",
    "caller_phone",
    "caller_e164",
    "destination_phone",
    "phone",
    "duration",
    "waiting",
    "link",
    "marka",
    "marka_id",
    "model",
    "model_id",
    "price",
]


def call_from_row(row: Any) -> Call:
    """Build a Call from a `calls` row (sqlite3.Row or dict)."""
    values = {name: row[name] for name in CALL_COLUMNS}
    return Call(**values, raw=json.loads(row["raw"]))
