"""Retention: RETENTION_DAYS forgets old calls and delivered messages, rejected payloads go
after 30 days, and nothing still needed goes: a call whose alert is still pending stays."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from handlers.ria.records import parse_record
from storage import outbox, rejected
from storage.calls import ingest
from storage.db import connect
from storage.outbox import Target
from storage.retention import purge_step
from tests.fakes.ria import KYIV, make_call
from tests.reliability import MISSED, caller, db_rows, until
from tests.service import base_env

DAY = 86400
NOW = time.time()
TARGET = Target("telegram", "-100123")


def add_call(db, call_id: int, days_ago: float, status: str = "NOANSWER") -> list[int]:
    """A call that happened (and arrived) `days_ago`; returns its outbox ids."""
    when = datetime.fromtimestamp(NOW - days_ago * DAY, KYIV).replace(tzinfo=None)
    call = parse_record(make_call(call_id, status, when=when, caller=caller(call_id)), KYIV)
    result = ingest(
        db,
        [call],
        source="webhook",
        received_at=NOW - days_ago * DAY,
        missed_statuses=MISSED,
        targets=[TARGET],
        alert_max_age_s=None,
    )
    return [item.id for item in result.alerts if item.id is not None]


def purge_all(db, **kwargs) -> dict[str, int]:
    total = {"outbox": 0, "calls": 0, "rejected_payloads": 0}
    for _ in range(100):
        done = purge_step(db, now=NOW, **kwargs)
        for key, n in done.items():
            total[key] += n
        if not any(done.values()):
            return total
    raise AssertionError("purge did not finish")


@pytest.fixture
def db(tmp_path: Path):
    database = connect(tmp_path / "calls.db")
    yield database
    database.conn.close()


def test_purge_keeps_what_is_young_or_still_needed(db) -> None:
    sent_old = add_call(db, 1, 40)
    outbox.mark_sent(db, sent_old, {"chat_id": 1, "message_id": 1}, NOW - 40 * DAY)
    add_call(db, 2, 40)  # its alert is still pending (Telegram down for 40 days)
    failed_old = add_call(db, 3, 40)
    outbox.mark_failed(db, failed_old, "Forbidden: bot was blocked by the user")
    add_call(db, 4, 40, status="ANSWER")  # no alert at all
    sent_new = add_call(db, 5, 10)
    outbox.mark_sent(db, sent_new, {"chat_id": 1, "message_id": 2}, NOW - 10 * DAY)
    # a summary (no call) delivered long ago
    [summary] = outbox.enqueue(
        db,
        [
            outbox.OutboxItem(
                dedup_key="summary:2026-01-01:telegram:-100123",
                kind="summary",
                target=TARGET,
                created_at=NOW - 40 * DAY,
                next_attempt_at=NOW - 40 * DAY,
                payload={"text": "day"},
            )
        ],
    )
    outbox.mark_sent(db, [summary.id], {"chat_id": 1, "message_id": 3}, NOW - 40 * DAY)
    for days, body in ((31, b"old junk"), (29, b"recent junk")):
        rejected.keep(
            db,
            body=body,
            reason="x",
            source="webhook",
            content_type=None,
            received_at=NOW - days * DAY,
        )

    done = purge_all(db, retention_days=30)

    calls = [r[0] for r in db.conn.execute("SELECT call_id FROM calls ORDER BY 1")]
    assert calls == [2, 5]  # the pending alert's call stays, however old
    rows = [tuple(r) for r in db.conn.execute("SELECT call_id, state FROM outbox ORDER BY 1")]
    assert rows == [(2, "pending"), (5, "sent")]
    bodies = [bytes(r[0]) for r in db.conn.execute("SELECT body FROM rejected_payloads")]
    assert bodies == [b"recent junk"]
    assert done == {"outbox": 3, "calls": 3, "rejected_payloads": 1}


def test_retention_0_keeps_calls_for_ever_but_rejected_payloads_30_days(db) -> None:
    ids = add_call(db, 1, 400)
    outbox.mark_sent(db, ids, {"chat_id": 1, "message_id": 1}, NOW - 400 * DAY)
    rejected.keep(
        db, body=b"old", reason="x", source="webhook", content_type=None, received_at=NOW - 31 * DAY
    )
    assert purge_all(db, retention_days=0) == {"outbox": 0, "calls": 0, "rejected_payloads": 1}
    assert db.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 1


def test_purge_goes_a_chunk_at_a_time(db) -> None:
    for i in range(1, 8):
        outbox.mark_sent(db, add_call(db, i, 50), {"m": i}, NOW - 50 * DAY)
    first = purge_step(db, now=NOW, retention_days=30, chunk=3)
    assert first == {"outbox": 3, "calls": 3, "rejected_payloads": 0}
    assert purge_all(db, retention_days=30, chunk=3)["calls"] == 4
    assert db.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("15", True), ("14", False), ("-1", False)])
def test_retention_days_setting(value: str, ok: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETENTION_DAYS", value)
    if ok:
        assert load_settings(_env_file=None).retention_days == int(value)
    else:
        with pytest.raises(ConfigError) as err:
            load_settings(_env_file=None)
        assert err.value.lines[0].startswith("RETENTION_DAYS: ")


def test_env_example_and_readme_document_retention() -> None:
    root = Path(__file__).resolve().parent.parent
    assert "RETENTION_DAYS=" in (root / ".env.example").read_text()
    assert "| `RETENTION_DAYS` | `0` |" in (root / "README.md").read_text()


async def test_the_service_purges_on_start_and_daily(services, tmp_path: Path) -> None:
    env = base_env(tmp_path)
    database = connect(env["DATABASE_PATH"])
    outbox.mark_sent(database, add_call(database, 1, 60), {"m": 1}, NOW - 60 * DAY)
    add_call(database, 2, 60)  # pending: kept
    add_call(database, 3, 1)
    database.conn.close()

    service = await services(RETENTION_DAYS="30")
    await until(lambda: "retention: deleted 1 call(s)" in service.stderr(), 10, "the purge")
    assert await service.stop() == 0
    assert db_rows(env["DATABASE_PATH"], "SELECT call_id FROM calls ORDER BY 1") == [(2,), (3,)]
