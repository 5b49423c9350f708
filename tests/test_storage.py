"""Storage: migrations, the ingest transaction, outbox dedup, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from handlers.intake import Intake
from handlers.ria.records import parse_record
from storage import meta, outbox
from storage.calls import get_call, ingest
from storage.db import Store, connect
from storage.outbox import Target
from storage.schema import MIGRATIONS

KYIV = ZoneInfo("Europe/Kyiv")
TARGETS = [Target("telegram", "-100"), Target("console", "stdout")]


def record(call_id: int, status: str = "NOANSWER", date: str = "2026-11-28T10:00:00") -> dict:
    return {"call_id": call_id, "status": status, "date": date, "caller_phone": "0951174074"}


def calls(*records: dict):
    return [parse_record(r, KYIV) for r in records]


def test_migrations_and_wal(tmp_path: Path) -> None:
    db = connect(tmp_path / "x.db")
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.conn.close()
    # opening again applies nothing twice
    again = connect(tmp_path / "x.db")
    assert {"calls", "outbox", "rejected_payloads", "ria_requests", "meta"} <= set(
        again.table_names()
    )


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "y.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this program"):
        connect(tmp_path / "y.db")


def test_ingest_alerts_new_missed_calls_once_per_target(tmp_path: Path) -> None:
    db = connect(tmp_path / "c.db")
    batch = calls(record(1), record(2, "ANSWER"), record(3, "BUSY"), record(1))
    result = ingest(
        db,
        batch,
        source="webhook",
        received_at=1e9,
        missed_statuses=["NOANSWER", "BUSY"],
        targets=TARGETS,
        alert_max_age_s=None,
    )
    assert (result.accepted, result.duplicates) == (3, 1)
    assert sorted((a.call_id, str(a.target)) for a in result.alerts) == [
        (1, "console:stdout"),
        (1, "telegram:-100"),
        (3, "console:stdout"),
        (3, "telegram:-100"),
    ]
    again = ingest(
        db,
        batch,
        source="poll",
        received_at=1e9,
        missed_statuses=["NOANSWER"],
        targets=TARGETS,
        alert_max_age_s=None,
    )
    assert (again.accepted, again.duplicates, again.alerts) == (0, 4, [])
    assert len(outbox.pending(db)) == 4
    stored = get_call(db, 1)
    assert stored is not None and stored.caller_e164 == "+380951174074"
    assert db.conn.execute("SELECT source FROM calls WHERE call_id = 1").fetchone()[0] == "webhook"


def test_old_calls_from_polling_are_stored_not_alerted(tmp_path: Path) -> None:
    db = connect(tmp_path / "c.db")
    call = calls(record(9))[0]
    late = call.started_at + 3 * 3600
    result = ingest(
        db,
        [call],
        source="poll",
        received_at=late,
        missed_statuses=["NOANSWER"],
        targets=TARGETS,
        alert_max_age_s=7200,
    )
    assert result.accepted == 1 and result.alerts == []


def test_outbox_states(tmp_path: Path) -> None:
    db = connect(tmp_path / "c.db")
    alerts = ingest(
        db,
        calls(record(1), record(2)),
        source="webhook",
        received_at=1.0,
        missed_statuses=["NOANSWER"],
        targets=TARGETS[:1],
        alert_max_age_s=None,
    ).alerts
    first, second = (a.id for a in alerts)
    outbox.mark_sent(db, [first], {"chat_id": -100, "message_id": 7}, now=2.0)
    outbox.reschedule(db, [second], 99.0, "Telegram: timed out")
    row = db.conn.execute("SELECT * FROM outbox WHERE id = ?", (first,)).fetchone()
    assert row["state"] == "sent" and '"message_id": 7' in row["message_ref"]
    assert [i.id for i in outbox.pending(db)] == [second]
    outbox.mark_failed(db, [second], "chat not found")
    assert outbox.backlog(db) == {
        "telegram:-100": {"pending": 0, "failed": 1, "last_error": "chat not found"}
    }


def test_meta_get_or_create(tmp_path: Path) -> None:
    db = connect(tmp_path / "c.db")
    assert meta.get_or_create(db, "k", lambda: "one") == "one"
    assert meta.get_or_create(db, "k", lambda: "two") == "one"


async def test_group_commit_answers_every_request(tmp_path: Path) -> None:
    store = Store(tmp_path / "g.db")
    await store.open()
    seen: list[int] = []
    intake = Intake(
        store,
        targets=TARGETS[:1],
        missed_statuses=["NOANSWER"],
        on_alerts=lambda items: seen.extend(i.call_id or 0 for i in items),
    )
    results = await asyncio.gather(
        *(
            intake.accept(calls(record(n), record(n % 7 + 1000)), source="webhook")
            for n in range(1, 101)
        )
    )
    assert sum(r.accepted for r in results) == 100 + 7
    assert sum(r.duplicates for r in results) == 100 - 7
    assert sorted(seen) == sorted([*range(1, 101), *range(1000, 1007)])
    count = await store.run(lambda db: db.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
    assert count == 107
    await store.close()
