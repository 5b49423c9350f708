"""`ria-calls-bot check` and `send-test`: what an admin runs after editing `.env`."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import sqlite_utils

from bot import account_budget
from bot.app import make_channels
from bot.config import Settings
from bot.config_file import FileConfig
from bot.delivery.channels.slack import FAILURES, SlackChannel, describe, error_code
from bot.delivery.channels.telegram import TelegramChannel, chat_id
from bot.delivery.dispatcher import Dispatcher
from bot.logs import REDACT
from bot.webhook_url import masked_url, webhook_secret
from handlers.intake import Intake
from handlers.ria.api import RiaApiError
from handlers.ria.factory import build_poller
from handlers.ria.poller import BudgetExceeded, check_budget, requests_per_month
from storage import meta, outbox
from storage.db import Store
from storage.outbox import OutboxItem

OK, BAD, INFO = "✓", "✗", "·"
PROGRESS_S = 5.0  # a line saying what is still being tried, this often


class Report:
    def __init__(self) -> None:
        self.problems = 0

    def line(self, ok: bool | None, text: str) -> None:
        mark = INFO if ok is None else OK if ok else BAD
        if ok is False:
            self.problems += 1
        # the CLI redacts stdout too; this keeps a library's error text (PTB's InvalidToken
        # quotes the token) safe even where that is not in place
        print(REDACT(f"{mark} {text}"), flush=True)


async def check(
    settings: Settings, *, show_webhook_url: bool = False, config: FileConfig | None = None
) -> int:
    """Validate the configuration and reach each configured service; non-zero on problems."""
    report = Report()
    s = settings
    report.line(True, "configuration is valid")
    targets = ", ".join(map(str, s.alert_targets()))
    report.line(None, f"alerts go to: {targets}")
    if config is not None:  # the routing table it understood (issue 13)
        report.line(True, f"routing file {config.path} is valid")
        for row in config.router(s).table():
            report.line(None, row)

    # absolute: "data/calls.db" does not say which folder it is in, and a command run from
    # another folder reads (or makes) another database
    path = await asyncio.to_thread(Path(s.database_path).resolve)
    store = Store(s.database_path)
    try:
        await store.open()
        await store.run(_writable)
        report.line(True, f"database {path} is writable")
    except Exception as exc:
        report.line(False, f"database {path}: {exc}")
        return 1

    try:
        await _webhook_url(s, store, report, show_webhook_url)
        if s.polling_enabled:
            await _check_ria(s, store, report)
        else:
            report.line(
                None,
                "RIA polling is off (RIA_API_KEY / RIA_USER_ID not set); "
                "the webhook works without it",
            )
        if config is not None and config.accounts:  # each [[account]]'s own budget
            for row in await store.run(account_budget.lines, time.time(), s.tz, config.accounts):
                report.line(None, f"RIA {row.strip()}")
        channels = make_channels(s)
        telegram = channels.get("telegram")
        if isinstance(telegram, TelegramChannel):
            # the routes' chats and managers' private chats too (issue 13)
            routed = config.router(s).all_targets() if config is not None else set()
            extra = sorted(t.id for t in routed if t.channel == "telegram")
            await _check_telegram(s, telegram, report, extra)
        elif not s.slack_enabled:
            report.line(None, "no chat configured: alerts print to the console")
        slack = channels.get("slack")
        if isinstance(slack, SlackChannel):
            await _check_slack(s, slack, report)
    finally:
        await store.close()
    print(f"\n{'all good' if not report.problems else f'{report.problems} problem(s)'}")
    return 1 if report.problems else 0


async def _webhook_url(s: Settings, store: Store, report: Report, show: bool) -> None:
    """The URL to give RIA: masked, unless the operator asks for it in full (it contains the
    secret, and whatever `check` prints may end up in a terminal log or a ticket), or the
    secret is generated right now (as the service does: it is the one chance to see it)."""
    existed = s.ria_webhook_secret is not None or (
        await store.run(meta.get, "ria_webhook_secret") is not None
    )
    secret, _ = await webhook_secret(store, s)
    REDACT.add([secret])
    if s.public_url:
        base = s.public_url.rstrip("/")
    else:
        wildcard = s.http_host in ("0.0.0.0", "::", "")
        host = "<this machine's address>" if wildcard else s.http_host
        base = f"http://{host}:{s.http_port}"
    if show or not existed:
        from bot.cli import reveal

        reveal(f"{INFO} RIA webhook URL: {base}/webhooks/ria/{secret}")
    else:
        report.line(
            None,
            f"RIA webhook URL: {masked_url(base)} "
            "(`ria-calls-bot check --show-webhook-url` shows it in full)",
        )
    if not s.public_url:
        report.line(None, "PUBLIC_URL is not set: give RIA the address it can reach this server at")


async def _check_ria(s: Settings, store: Store, report: Report) -> None:
    needed = requests_per_month(s.ria_poll_interval_minutes)
    report.line(
        needed <= s.ria_monthly_quota,
        f"polling every {s.ria_poll_interval_minutes:g} min needs up to {needed} "
        f"requests a month (quota {s.ria_monthly_quota})",
    )
    budget = await store.run(check_budget, time.time(), s.tz, s.ria_monthly_quota)
    report.line(
        None, f"RIA requests used: {budget.used_hour} this hour, {budget.used_month} this month"
    )
    async with aiohttp.ClientSession() as session:
        # no targets: a check stores nothing that could alert
        intake = Intake(store, targets=[], missed_statuses=[])
        poller = build_poller(s, session, store, intake, timeout=15)
        assert poller is not None  # polling_enabled
        today = datetime.now(s.tz).date()
        try:
            records = await poller.fetch(today, today, purpose="check")
            report.line(True, f"RIA API answers ({len(records)} call(s) today, 1 request spent)")
        except BudgetExceeded as exc:
            report.line(None, f"RIA API not asked: {exc}")
        except RiaApiError as exc:
            # the fix names the setting: RIA_API_KEY on 401/403, RIA_API_URL on 400/404
            report.line(False, f"{exc}: {exc.fix}" if exc.fix else str(exc))


async def _check_telegram(
    s: Settings, telegram: TelegramChannel, report: Report, extra: list[str] | None = None
) -> None:
    from telegram.error import TelegramError

    bot = telegram.app.bot
    try:
        await bot.initialize()
        me = await bot.get_me()
        report.line(True, f"Telegram: bot @{me.username}")
    except TelegramError as exc:
        report.line(False, f"Telegram: {exc.message}")
        return
    for chat in dict.fromkeys([*s.telegram_chat_ids, *(extra or [])]):
        try:
            info = await bot.get_chat(chat_id(chat))
            title = info.title or info.full_name or info.username or chat
            report.line(True, f"Telegram chat {chat}: {info.type} “{title}”")
        except TelegramError as exc:
            report.line(
                False,
                f"Telegram chat {chat}: {exc.message} (add the bot to the chat, or send it /start)",
            )
    await bot.shutdown()


async def _check_slack(s: Settings, slack: SlackChannel, report: Report) -> None:
    from slack_sdk.errors import SlackApiError

    client = slack.client
    try:
        auth = await client.auth_test()
        report.line(True, f"Slack: bot @{auth.get('user')} in workspace “{auth.get('team')}”")
    except SlackApiError as exc:
        report.line(False, f"Slack: {describe(error_code(exc))}")
        return
    except FAILURES as exc:
        report.line(False, f"Slack: cannot reach {s.slack_api_url}: {type(exc).__name__} {exc}")
        return
    for channel in s.slack_channel_ids:
        try:
            info = (await client.conversations_info(channel=channel))["channel"]
        except SlackApiError as exc:
            code = error_code(exc)
            if code == "missing_scope":  # the bot may still post; only the check cannot see
                report.line(
                    None,
                    f"Slack channel {channel}: not checked (the app lacks the channels:read "
                    "and groups:read scopes)",
                )
            else:
                report.line(False, f"Slack channel {channel}: {describe(code)}")
            continue
        except FAILURES as exc:
            report.line(False, f"Slack channel {channel}: {type(exc).__name__} {exc}")
            continue
        name = f"#{info['name']}" if info.get("name") else "a direct message"
        if info.get("is_archived"):
            report.line(False, f"Slack channel {channel}: {name} is archived")
        elif not info.get("is_member") and not info.get("is_im"):
            report.line(
                False,
                f"Slack channel {channel}: the bot is not in {name} (invite it: /invite @bot)",
            )
        else:
            report.line(True, f"Slack channel {channel}: {name}, the bot can post")
    if s.slack_app_token is not None:
        try:
            await client.apps_connections_open(app_token=s.slack_app_token.get_secret_value())
            report.line(True, "Slack Socket Mode: the app token works")
        except SlackApiError as exc:
            report.line(False, f"Slack Socket Mode: {error_code(exc)} (check SLACK_APP_TOKEN)")
        except FAILURES as exc:
            report.line(False, f"Slack Socket Mode: {type(exc).__name__} {exc}")
    elif s.slack_signing_secret is not None:
        base = (s.public_url or "https://<PUBLIC_URL>").rstrip("/")
        report.line(None, f"Slack HTTP mode: Request URL {base}/webhooks/slack")
    else:
        report.line(
            None,
            "Slack commands are off (set SLACK_SIGNING_SECRET or SLACK_APP_TOKEN); alerts work",
        )


async def send_test(settings: Settings, timeout: float = 30.0) -> int:
    """Send a test message to every target now, or not at all (see deliver_now)."""
    from bot.delivery import render

    s = settings
    store = Store(s.database_path)
    await store.open()
    try:
        now = time.time()
        items = [
            OutboxItem(
                dedup_key=f"test:{now}:{target}",
                kind="test",
                target=target,
                created_at=now,
                next_attempt_at=now,
                payload={
                    fmt: render.test_message(fmt, s.language) for fmt in ("html", "text", "mrkdwn")
                },
            )
            for target in s.alert_targets()
        ]
        items = await store.run(outbox.enqueue, items)
        return await deliver_now(s, store, items, timeout)
    finally:
        await store.close()


async def deliver_now(
    s: Settings,
    store: Store,
    items: list[OutboxItem],
    timeout: float = 30.0,
    *,
    take_back: bool = True,
) -> int:
    """Deliver queued items through the usual dispatcher, within `timeout`, and report each
    target. Non-zero when any of them was not delivered.

    With `take_back` (send-test, `summary --send`) what was not delivered is removed from
    the outbox: the operator was told it failed, so it must not turn up in the chat later,
    after they have moved on (or sent it again). Backfill's alerts are real ones and stay.
    """
    channels = make_channels(s)
    dispatcher = Dispatcher(store, channels, lang=s.language, tz=s.tz, pause_targets=not take_back)
    ids = [item.id for item in items if item.id is not None]
    started = time.monotonic()
    deadline = started + timeout
    progress_at = started + min(PROGRESS_S, timeout / 2)
    try:
        dispatcher.submit(items)
        while True:
            states = await store.run(_states, ids)
            waiting = {i: v for i, v in states.items() if v[0] == outbox.PENDING}
            now = time.monotonic()
            if not waiting or now >= deadline:
                break
            if now >= progress_at:
                progress_at = now + PROGRESS_S
                _progress(items, waiting, now - started, timeout)
            await asyncio.sleep(0.2)
    finally:
        await dispatcher.stop()
        for channel in channels.values():
            if isinstance(channel, TelegramChannel):
                await channel.app.bot.shutdown()
    # read again once nothing sends any more: this is what stays true
    states = await store.run(_states, ids)
    undelivered = [i for i, (state, _) in states.items() if state != outbox.SENT]
    if take_back and undelivered:
        await store.run(_take_back, undelivered)
    failed = 0
    for item in items:
        assert item.id is not None
        state, error = states[item.id]
        if state == outbox.SENT:
            print(f"{OK} {item.target}: sent", flush=True)
            continue
        failed += 1
        why = error or "no answer"
        if state == outbox.PENDING:
            why = f"not delivered in {timeout:g} s: {why}"
        then = (
            "removed from the outbox, nothing more will be sent"
            if take_back
            else "it stays in the outbox: the service sends it when it (re)starts"
        )
        print(REDACT(f"{BAD} {item.target}: {why} ({then})"), flush=True)
    return 1 if failed else 0


def _progress(
    items: list[OutboxItem],
    waiting: dict[int, tuple[str, str | None]],
    elapsed: float,
    timeout: float,
) -> None:
    targets = {item.id: item.target for item in items}
    what = "; ".join(
        f"{targets[i]}: {error or 'no answer yet'}" for i, (_, error) in waiting.items()
    )
    print(REDACT(f"{INFO} still trying ({elapsed:.0f} of {timeout:g} s): {what}"), flush=True)


def _writable(db: sqlite_utils.Database) -> None:
    db.conn.execute("BEGIN IMMEDIATE")  # takes the write lock: fails on a read-only file
    db.conn.execute("ROLLBACK")


def _states(db: sqlite_utils.Database, ids: list[int | None]) -> dict[int, tuple[str, str | None]]:
    marks = ",".join("?" * len(ids))
    rows = db.conn.execute(f"SELECT id, state, last_error FROM outbox WHERE id IN ({marks})", ids)
    return {row["id"]: (row["state"], row["last_error"]) for row in rows}


def _take_back(db: sqlite_utils.Database, ids: list[int]) -> None:
    marks = ",".join("?" * len(ids))
    # state check: a send confirmed in the meantime stays recorded as sent
    db.conn.execute(f"DELETE FROM outbox WHERE id IN ({marks}) AND state != 'sent'", ids)
