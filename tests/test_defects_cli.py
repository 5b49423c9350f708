"""The CLI's defects from the review (issue 10 items 3, 6, 7, 14, 21; issue 15 item 6),
through the real `ria-calls-bot` and the fake servers."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from handlers.ria.records import to_e164
from tests.conftest import GROUP, RIA_KEY, RIA_USER, telegram_env
from tests.fakes.ria import KYIV, FakeRia, make_call
from tests.fakes.telegram import FakeTelegram
from tests.service import WEBHOOK_SECRET, base_env, free_port, run_cli


def db_rows(path: str | Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


def exists(path: str | Path) -> bool:
    return Path(path).exists()


# --- item 3: backfill alerts what the poller would have alerted -----------------------------


async def test_backfill_alerts_a_fresh_missed_call_but_not_old_ones(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    now = datetime.now(KYIV)
    yesterday = now.date() - timedelta(days=1)
    fresh = make_call(9001, "NOANSWER", when=now - timedelta(minutes=10), caller="0671112233")
    old = make_call(9002, "NOANSWER", when=now - timedelta(hours=5), caller="0674445566")
    older = make_call(9003, "BUSY", when=datetime.combine(yesterday, datetime.min.time()))
    answered = make_call(9004, "ANSWER", when=now - timedelta(minutes=5), caller="0677778899")
    async with FakeRia(
        api_key=RIA_KEY, user_id=RIA_USER, calls=[fresh, old, older, answered]
    ) as ria:
        env = base_env(
            tmp_path,
            **telegram_env(telegram),
            RIA_API_KEY=RIA_KEY,
            RIA_USER_ID=RIA_USER,
            RIA_API_URL=ria.url,
            ALERT_MAX_AGE_MINUTES="120",
        )
        # the Ukrainian spelling of a date works for --from (item 14)
        code, out, err = await run_cli(
            env,
            tmp_path,
            "backfill",
            "--from",
            yesterday.strftime("%d.%m.%Y"),
            "--to",
            now.date().isoformat(),
        )
    assert code == 0, out + err
    assert "4 new" in out and "1 alert(s)" in out
    [message] = await telegram.wait_for_messages(1, chat_id=GROUP, timeout=10)
    assert to_e164(fresh["caller_phone"]) in message["plain_text"]
    rows = db_rows(env["DATABASE_PATH"], "SELECT call_id, state FROM outbox")
    assert rows == [(9001, "sent")]
    assert f"✓ telegram:{GROUP}: sent" in out


# --- item 6: send-test and summary --send deliver now or not at all --------------------------


async def test_send_test_that_cannot_deliver_takes_its_message_back(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        TELEGRAM_BOT_TOKEN="123456:TEST-telegram-token-abcdefghijklmno",
        TELEGRAM_CHAT_IDS=GROUP,
        TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",  # nobody listens
    )
    code, out, err = await run_cli(env, tmp_path, "send-test", "--timeout", "3", timeout=30)
    assert code == 1, out + err
    assert "still trying" in out  # a progress line before giving up
    assert f"✗ telegram:{GROUP}: not delivered in 3 s" in out
    assert "removed from the outbox" in out
    # nothing left to turn up in the group later
    assert db_rows(env["DATABASE_PATH"], "SELECT COUNT(*) FROM outbox") == [(0,)]


async def test_summary_send_that_hangs_is_taken_back(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    env = base_env(tmp_path, **telegram_env(telegram), LANGUAGE="en")
    code, out, err = await run_cli(env, tmp_path, "send-test")  # makes the database
    assert code == 0, out + err
    telegram.hang_chat(int(GROUP))
    try:
        code, out, err = await run_cli(
            env, tmp_path, "summary", "yesterday", "--send", "--timeout", "2", timeout=30
        )
    finally:
        telegram.release_chat(int(GROUP))
    assert code == 1, out + err
    assert f"✗ telegram:{GROUP}: not delivered in 2 s" in out
    assert db_rows(env["DATABASE_PATH"], "SELECT kind, state FROM outbox") == [("test", "sent")]
    # a later start of the service has nothing of it to send
    assert len(telegram.messages_for(GROUP)) == 1


async def test_send_test_refused_for_good_says_why(tmp_path: Path, telegram: FakeTelegram) -> None:
    telegram.unknown_chats.add(int(GROUP))
    env = base_env(tmp_path, **telegram_env(telegram))
    code, out, err = await run_cli(env, tmp_path, "send-test", "--timeout", "5")
    assert code == 1, out + err
    assert f"✗ telegram:{GROUP}:" in out and "chat not found" in out.lower()
    assert db_rows(env["DATABASE_PATH"], "SELECT COUNT(*) FROM outbox") == [(0,)]


# --- item 7: read commands never create a database; check shows the absolute path -----------


async def test_read_commands_never_create_a_database(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = base_env(elsewhere)
    del env["DATABASE_PATH"]  # the default, data/calls.db, relative to the folder
    expected = (elsewhere / "data" / "calls.db").resolve()
    for args in (
        ("stats",),
        ("stats", "week"),
        ("missed",),
        ("summary",),
        ("summary", "yesterday", "--send"),
        ("status",),
    ):
        code, out, err = await run_cli(env, elsewhere, *args)
        assert code != 0, (args, out, err)
        assert err.strip() == (
            f"no database at {expected} (set DATABASE_PATH, or run from the folder that has "
            "your .env)"
        ), args
        assert not (elsewhere / "data").exists(), args
        assert "Traceback" not in out + err

    code, out, err = await run_cli(env, elsewhere, "check")
    assert code == 0, out + err
    assert f"database {expected} is writable" in out


# --- item 14: DD.MM.YYYY wherever the CLI takes a date ----------------------------------------


async def test_summary_and_backfill_take_dotted_dates(tmp_path: Path) -> None:
    env = base_env(tmp_path, LANGUAGE="uk")
    code, out, err = await run_cli(env, tmp_path, "send-test")  # console: makes the database
    assert code == 0, out + err
    code, iso, err = await run_cli(env, tmp_path, "summary", "2026-01-25")
    assert code == 0, err
    code, dotted, err = await run_cli(env, tmp_path, "summary", "25.01.2026")
    assert code == 0, err
    assert dotted == iso and "25.01.2026" in dotted
    code, _, err = await run_cli(env, tmp_path, "summary", "31.02.2026")
    assert code == 2 and "no such date" in err
    code, _, err = await run_cli(env, tmp_path, "summary", "25/01/2026")
    assert code == 2 and "YYYY-MM-DD or DD.MM.YYYY" in err
    # backfill parses both before it needs RIA at all
    code, _, err = await run_cli(
        env, tmp_path, "backfill", "--from", "1.11.2026", "--to", "2026-11-30"
    )
    assert code == 2 and "RIA_API_KEY" in err
    code, _, err = await run_cli(env, tmp_path, "backfill", "--from", "32.11.2026", "--to", "x")
    assert code == 2 and "no such date" in err


# --- item 21: no arguments prints help; the help shows the formats ----------------------------


async def test_no_arguments_prints_help_and_starts_nothing(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    code, out, err = await run_cli(env, tmp_path, timeout=20)
    assert code in (0, 2), out + err
    assert "usage: ria-calls-bot" in out + err and "run" in out + err
    assert not exists(env["DATABASE_PATH"])  # nothing started
    for command in ("missed", "stats", "backfill", "summary"):
        code, out, _ = await run_cli(env, tmp_path, command, "--help")
        assert code == 0
        assert "YYYY-MM-DD" in out and "DD.MM.YYYY" in out, command
    _, out, _ = await run_cli(env, tmp_path, "missed", "--help")
    assert "today" in out and "yesterday" in out and "week" in out and "month" in out
    assert "DATE..DATE" in out


# --- issue 15 item 6: check masks the webhook URL unless asked ------------------------------


async def test_check_masks_the_webhook_url_unless_asked(tmp_path: Path) -> None:
    env = base_env(tmp_path, PUBLIC_URL="https://bot.example.com")
    code, out, err = await run_cli(env, tmp_path, "check")
    assert code == 0, out + err
    assert "https://bot.example.com/webhooks/ria/******** " in out
    assert WEBHOOK_SECRET not in out + err
    code, out, err = await run_cli(env, tmp_path, "check", "--show-webhook-url")
    assert code == 0, out + err
    assert f"https://bot.example.com/webhooks/ria/{WEBHOOK_SECRET}\n" in out

    # a generated secret: shown once, by whichever command makes it, then masked
    gen = dict(env, RIA_WEBHOOK_SECRET="", DATABASE_PATH=str(tmp_path / "gen.db"))
    code, first, err = await run_cli(gen, tmp_path, "check")
    assert code == 0, first + err
    [(secret,)] = db_rows(
        gen["DATABASE_PATH"], "SELECT value FROM meta WHERE key = 'ria_webhook_secret'"
    )
    assert f"/webhooks/ria/{secret}" in first
    code, again, _ = await run_cli(gen, tmp_path, "check")
    assert secret not in again and "/webhooks/ria/******** " in again
    code, shown, _ = await run_cli(gen, tmp_path, "check", "--show-webhook-url")
    assert f"https://bot.example.com/webhooks/ria/{secret}" in shown
