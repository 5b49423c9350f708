"""The callback loop's storage (issue 12) on a real SQLite database: resolutions by button
and by a later answered call, the repeat marker, edits and reminders in the outbox, and the
callback figures on a hand-computed day (expected values worked out by hand below)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlite_utils

from storage import outbox
from storage.calls import Call, IngestResult, ingest
from storage.db import connect
from storage.missed import all_outcomes, open_callers
from storage.outbox import Target
from storage.resolutions import due_reminders, resolution_of, resolve_by_button
from storage.stats import callback_stats, period_stats

KYIV = ZoneInfo("Europe/Kyiv")
MISSED = ("NOANSWER", "BUSY")
TG = Target("telegram", "-100")
SL = Target("slack", "C1")
A, B, C, D, E = "+380951110001", "+380951110002", "+380951110003", "+380951110004", "+380951110005"
M1, M2 = "0501000001", "0501000002"
DAY = "2026-11-27"


def at(hhmm: str, day: str = DAY) -> int:
    return int(datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=KYIV).timestamp())


def call(call_id: int, hhmm: str, caller: str, status: str = "NOANSWER", dest: str = M1) -> Call:
    day = DAY if len(hhmm) == 5 else hhmm[:10]
    hm = hhmm[-5:]
    return Call(
        call_id=call_id,
        started_at=at(hm, day),
        local_date=f"{day}T{hm}:00",
        status=status,
        caller_phone="0" + caller[4:],
        caller_e164=caller,
        destination_phone=dest,
    )


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return connect(tmp_path / "cb.db")


def put(
    db: sqlite_utils.Database, c: Call, targets: list[Target] | None = None, send: bool = True
) -> IngestResult:
    """Ingest one call 5 s after it started; its alerts are marked sent as message
    1000 + call_id (Telegram) / ts "<call_id>.0" (Slack) unless send=False."""
    result = ingest(
        db,
        [c],
        source="webhook",
        received_at=c.started_at + 5,
        missed_statuses=MISSED,
        targets=targets or [TG],
        alert_max_age_s=None,
    )
    if send:
        for item in result.alerts:
            assert item.id is not None
            if item.target.channel == "telegram":
                ref: dict = {"chat_id": -100, "message_id": 1000 + c.call_id}
            else:
                ref = {"channel": item.target.id, "ts": f"{c.call_id}.0"}
            outbox.mark_sent(db, [item.id], ref, c.started_at + 6)
    return result


def rows(db: sqlite_utils.Database, kind: str) -> list[dict]:
    return [dict(r) for r in db.conn.execute("SELECT * FROM outbox WHERE kind = ?", (kind,))]


def test_answer_resolves_only_earlier_open_calls_of_the_same_number(db) -> None:
    put(db, call(1, "10:00", A))
    put(db, call(2, "10:01", B))
    result = put(db, call(3, "10:07", A, "ANSWER", dest=M2))
    res = resolution_of(db, [1, 2, 3])
    assert set(res) == {1}
    assert res[1].how == "answered" and res[1].manager == M2 and res[1].answered_call_id == 3
    assert res[1].resolved_at == at("10:07")
    assert [(e.kind, e.dedup_key, e.call_id) for e in result.edits] == [
        ("edit", "edit:1:telegram:-100", 1)
    ]
    assert result.edits[0].payload == {"message_ref": {"chat_id": -100, "message_id": 1001}}
    assert result.outbox_items == result.edits  # an ANSWER call has no alert
    # a later miss from A is not resolved by the earlier answer
    put(db, call(4, "10:20", A))
    assert 4 not in resolution_of(db, [4])


def test_answer_from_another_number_resolves_nothing(db) -> None:
    put(db, call(1, "10:00", A))
    result = put(db, call(2, "10:05", B, "ANSWER"))
    assert result.edits == [] and resolution_of(db, [1]) == {}
    assert rows(db, "edit") == []


def test_a_missed_call_arriving_after_a_later_answer_is_resolved_at_once(db) -> None:
    put(db, call(2, "10:05", A, "ANSWER", dest=M2))
    put(db, call(1, "10:00", A), send=False)  # by poll, late
    res = resolution_of(db, [1])[1]
    assert (res.how, res.answered_call_id, res.resolved_at) == ("answered", 2, at("10:05"))


def test_repeat_marker_counts_todays_missed_calls_while_one_is_open(db) -> None:
    payloads = [put(db, call(i, t, A)).alerts[0].payload for i, t in [(1, "09:00"), (2, "09:30")]]
    payloads.append(put(db, call(3, "12:00", A)).alerts[0].payload)
    assert payloads == [{}, {"repeat": 2}, {"repeat": 3}]
    stored = [r["payload"] for r in rows(db, "missed_call")]
    assert stored == ["{}", '{"repeat": 2}', '{"repeat": 3}']
    # another day starts again; another number has its own count
    assert put(db, call(4, "2026-11-28T09:00", A)).alerts[0].payload == {}
    assert put(db, call(5, "12:05", B)).alerts[0].payload == {}
    # once the caller was called back, the next miss is not a repeat
    assert resolve_by_button(db, 4, TG, "1004", "Olena", "telegram:7", at("09:10", "2026-11-28"))
    assert put(db, call(6, "2026-11-28T09:20", A)).alerts[0].payload == {}


def test_button_checks_target_and_message_and_says_who_was_first(db) -> None:
    put(db, call(1, "10:00", A), targets=[TG, SL])
    put(db, call(2, "10:01", B), send=False)
    now = at("10:04")
    assert resolve_by_button(db, 1, TG, "999", "X", "telegram:1", now).status == "not_found"
    assert resolve_by_button(db, 1, Target("telegram", "-200"), "1001", "X", "u", now).status == (
        "not_found"
    )
    assert resolve_by_button(db, 1, SL, "1001", "X", "u", now).status == "not_found"
    assert resolve_by_button(db, 2, TG, "1002", "X", "u", now).status == "not_found"  # unsent
    assert resolve_by_button(db, 99, TG, "1001", "X", "u", now).status == "not_found"
    assert resolution_of(db, [1, 2]) == {}

    first = resolve_by_button(db, 1, TG, "1001", "Olena", "telegram:5", now)
    assert first.status == "resolved" and first.resolution is not None
    assert (first.resolution.by_name, first.resolution.target) == ("Olena", "telegram:-100")
    # one edit per target the alert was sent to
    assert sorted(e.dedup_key for e in first.edits) == ["edit:1:slack:C1", "edit:1:telegram:-100"]
    again = resolve_by_button(db, 1, SL, "1.0", "Petro", "slack:U2", now + 60)
    assert again.status == "already" and again.edits == []
    assert again.resolution is not None and again.resolution.by_name == "Olena"
    assert again.resolution.resolved_at == now
    assert len(rows(db, "edit")) == 2


def test_button_accepts_the_chat_id_behind_a_username_target(db) -> None:
    named = Target("telegram", "@dealers")
    put(db, call(1, "10:00", A), targets=[named])  # message_ref says chat_id -100
    assert resolve_by_button(db, 1, TG, "1001", "O", "telegram:5", at("10:02")).status == (
        "resolved"
    )


def test_button_resolves_the_callers_earlier_open_calls_too(db) -> None:
    put(db, call(1, "10:00", A))
    put(db, call(2, "10:05", A))
    put(db, call(3, "10:06", B))
    result = resolve_by_button(db, 2, TG, "1002", "Olena", "telegram:5", at("10:09"))
    assert result.resolved_call_ids == [2, 1]
    assert set(resolution_of(db, [1, 2, 3])) == {1, 2}
    assert resolve_by_button(db, 1, TG, "1001", "P", "telegram:6", at("10:10")).status == (
        "already"
    )


def test_reminders_once_never_after_resolution_nor_too_old(db) -> None:
    put(db, call(1, "10:00", A))
    put(db, call(2, "10:02", B))
    put(db, call(3, "08:00", C))  # too old by then
    within, max_age = 900.0, 3600.0
    assert due_reminders(db, at("10:14"), within, max_age) == []
    resolve_by_button(db, 2, TG, "1002", "O", "telegram:5", at("10:16"))
    due = due_reminders(db, at("10:17"), within, max_age)
    assert [(r.kind, r.dedup_key, r.payload["call_ids"]) for r in due] == [
        ("reminder", "reminder:telegram:-100:1001", [1])
    ]
    assert due[0].payload["message_ref"] == {"chat_id": -100, "message_id": 1001}
    assert due_reminders(db, at("10:18"), within, max_age) == []  # sent once, ever
    assert len(rows(db, "reminder")) == 1
    assert due_reminders(db, at("10:18"), 0, max_age) == []  # 0: no reminders


def test_a_coalesced_message_gets_one_reminder_listing_its_open_calls(db) -> None:
    for i, t, who in [(1, "10:00", A), (2, "10:01", B), (3, "10:02", C)]:
        put(db, call(i, t, who), send=False)
    ids = [r["id"] for r in rows(db, "missed_call")]
    outbox.mark_sent(db, ids, {"chat_id": -100, "message_id": 50}, at("10:03"))
    resolve_by_button(db, 2, TG, "50", "O", "telegram:5", at("10:05"))
    due = due_reminders(db, at("10:15"), 900, 3600)
    assert [(r.dedup_key, r.payload["call_ids"], r.call_id) for r in due] == [
        ("reminder:telegram:-100:50", [1, 3], 1)
    ]
    assert due_reminders(db, at("10:30"), 900, 3600) == []


def test_resolutions_go_with_their_call(db) -> None:
    put(db, call(1, "10:00", A), send=False)
    put(db, call(2, "10:05", A, "ANSWER"))
    db.conn.execute("DELETE FROM outbox")
    db.conn.execute("DELETE FROM calls WHERE call_id = 1")
    assert db.conn.execute("SELECT COUNT(*) FROM resolutions").fetchone()[0] == 0


def hand_computed_day(db: sqlite_utils.Database) -> None:
    """A: missed 10:00 (M1), button 10:04 -> 240 s, within 15 min.
    B: missed 10:10 and 10:20 (M1), got through 10:40 (M2) -> 1800 s from 10:10, late.
    C: missed 11:00 (M2), still waiting.
    D: missed 11:30 (M2), button 11:40 (600 s); missed again 12:00 (M2): waiting since 12:00.
    E: answered 12:30, never missed."""
    put(db, call(1, "10:00", A))
    put(db, call(2, "10:10", B))
    assert resolve_by_button(db, 1, TG, "1001", "Olena", "telegram:5", at("10:04")).status == (
        "resolved"
    )
    assert put(db, call(3, "10:20", B)).alerts[0].payload == {"repeat": 2}
    assert len(put(db, call(4, "10:40", B, "ANSWER", dest=M2)).edits) == 2
    put(db, call(5, "11:00", C, dest=M2))
    put(db, call(6, "11:30", D, dest=M2))
    resolve_by_button(db, 6, TG, "1006", "Petro", "telegram:6", at("11:40"))
    assert put(db, call(7, "12:00", D, dest=M2)).alerts[0].payload == {}
    put(db, call(8, "12:30", E, "ANSWER", dest=M2))


def test_figures_of_a_hand_computed_day(db) -> None:
    hand_computed_day(db)
    day = (at("00:00"), at("00:00", "2026-11-28"))
    cb = callback_stats(db, *day, within_s=900)
    assert (cb.missed_callers, cb.called_back, cb.within_promise, cb.waiting) == (4, 2, 1, 2)
    assert cb.median_callback_s == (240 + 1800) / 2
    assert (cb.called_back_rate, cb.within_promise_rate) == (0.5, 0.25)
    m1, m2 = cb.managers
    assert (m1.destination_phone, m1.missed_callers, m1.called_back, m1.within_promise) == (
        M1,
        2,
        2,
        1,
    )
    assert (m1.waiting, m1.median_callback_s) == (0, 1020)
    assert (m2.destination_phone, m2.missed_callers, m2.called_back, m2.waiting) == (M2, 2, 0, 2)
    assert m2.median_callback_s is None and m2.called_back_rate == 0
    # a looser promise counts B as on time
    assert callback_stats(db, *day, within_s=1800).within_promise == 2
    # period_stats carries them when asked, and is unchanged otherwise
    assert period_stats(db, *day, within_s=900).callbacks == cb
    assert period_stats(db, *day).callbacks is None
    empty = period_stats(db, 0, 1, within_s=900).callbacks
    assert empty is not None and empty.missed_callers == 0 and empty.called_back_rate is None


def test_missed_lists_open_callers_oldest_first_or_everyone_with_outcome(db) -> None:
    hand_computed_day(db)
    day = (at("00:00"), at("00:00", "2026-11-28"))
    report = open_callers(db, *day)
    assert [(o.caller_e164, o.since, o.call_ids) for o in report.callers] == [
        (C, at("11:00"), [5]),
        (D, at("12:00"), [7]),
    ]
    assert (report.waiting, report.resolved) == (2, 2)
    assert report.callers[0].waited_s(at("13:00")) == 7200
    assert open_callers(db, *day, limit=1).callers[0].caller_e164 == C
    everyone = all_outcomes(db, *day)
    assert [o.caller_e164 for o in everyone] == [A, B, C, D]
    a, b, c, d = everyone
    assert a.resolution is not None and a.resolution.by_name == "Olena" and a.callback_s == 240
    assert b.resolution is not None and b.resolution.how == "answered"
    assert (b.attempts, b.call_ids, b.callback_s, b.destination_phone) == (2, [2, 3], 1800, M1)
    assert c.open and c.callback_s is None
    assert (d.attempts, d.call_ids, d.open) == (2, [7], True)
