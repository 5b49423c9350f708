"""`ria-calls-bot` / `python -m bot`: run, backfill, stats, summary, check, send-test."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
from datetime import date, timedelta

from bot import __version__
from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup as setup_logging

log = logging.getLogger("ria-calls-bot")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'"{text}" is not a date (YYYY-MM-DD)') from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ria-calls-bot",
        description="Missed-call alerts, stats and summaries for auto.ria.com dealers.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="start the service (the default)")
    b = sub.add_parser("backfill", help="store RIA's call history for a date range, no alerts")
    b.add_argument("--from", dest="day_from", type=_date, required=True, metavar="DATE")
    b.add_argument("--to", dest="day_to", type=_date, required=True, metavar="DATE")
    st = sub.add_parser("stats", help="print what /stats would answer")
    st.add_argument(
        "period",
        nargs="*",
        help="today (default), yesterday, week, month, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD",
    )
    mi = sub.add_parser("missed", help="print what /missed would answer")
    mi.add_argument("period", nargs="*")
    su = sub.add_parser("summary", help="print the daily or weekly summary, or send it now")
    su.add_argument(
        "when",
        nargs="?",
        default="today",
        metavar="DATE|week",
        help="today (default), yesterday, YYYY-MM-DD, or week (last Monday-Sunday)",
    )
    su.add_argument("--send", action="store_true", help="send it to every alert target now")
    su.add_argument("--chart", metavar="FILE", help="write the chart to FILE (PNG)")
    sub.add_parser("check", help="validate the configuration and reach each configured service")
    sub.add_parser("send-test", help="send a test alert to every target")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in exc.lines:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        if command == "run":
            from bot.app import Service

            asyncio.run(Service(settings).run())
            return 0
        if command == "backfill":
            return asyncio.run(backfill(settings, args.day_from, args.day_to))
        if command in ("stats", "missed"):
            return asyncio.run(print_answer(settings, command, " ".join(args.period)))
        if command == "summary":
            from bot.summary_cli import run as summary

            return asyncio.run(summary(settings, args.when, send=args.send, chart_path=args.chart))
        if command == "check":
            from bot.check import check

            return asyncio.run(check(settings))
        if command == "send-test":
            from bot.check import send_test

            return asyncio.run(send_test(settings))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # port in use, database directory not writable, ...
        log.error("%s", exc)
        return 1
    except sqlite3.Error as exc:  # read-only file system, disk full, not a database, ...
        log.error("database %s: %s", settings.database_path, exc)
        return 1
    return 2


async def print_answer(settings: Settings, command: str, argument: str) -> int:
    from bot import render
    from handlers import commands
    from storage.db import Store

    store = Store(settings.database_path)
    await store.open()
    try:
        reply = await commands.answer(command, argument, store=store, tz=settings.tz)
    finally:
        await store.close()
    print(render.reply(reply, "text", settings.language, settings.tz))
    return 1 if isinstance(reply, commands.ErrorReply) else 0


async def backfill(settings: Settings, day_from: date, day_to: date) -> int:
    """Fetch RIA's history in month-sized requests; stores calls, never alerts."""
    import aiohttp

    from bot.app import NO_ALERTS
    from handlers.intake import Intake
    from handlers.ria_api import RiaApiError, RiaClient
    from handlers.ria_poller import BudgetExceeded, RiaPoller
    from handlers.ria_records import parse_records
    from storage.db import Store

    if not settings.polling_enabled:
        print("backfill needs RIA_API_KEY and RIA_USER_ID", file=sys.stderr)
        return 2
    if day_to < day_from:
        print("backfill: --to is before --from", file=sys.stderr)
        return 2
    assert settings.ria_api_key is not None and settings.ria_user_id is not None
    store = Store(settings.database_path)
    await store.open()
    total_new = total_seen = 0
    try:
        async with aiohttp.ClientSession() as session:
            client = RiaClient(
                session,
                base_url=settings.ria_api_url,
                user_id=settings.ria_user_id,
                api_key=settings.ria_api_key.get_secret_value(),
            )
            intake = Intake(
                store, targets=settings.alert_targets(), missed_statuses=settings.missed_statuses
            )
            poller = RiaPoller(
                client,
                store,
                intake,
                tz=settings.tz,
                interval_minutes=settings.ria_poll_interval_minutes,
                monthly_quota=settings.ria_monthly_quota,
                alert_max_age_s=NO_ALERTS,
            )
            start = day_from
            while start <= day_to:
                end = min(start + timedelta(days=30), day_to)
                try:
                    records = await poller.fetch(start, end, purpose="backfill")
                except (RiaApiError, BudgetExceeded) as exc:
                    print(f"backfill stopped at {start}: {exc}", file=sys.stderr)
                    return 1
                calls, bad = parse_records(records, settings.tz)
                result = await intake.accept(calls, source="backfill", alert_max_age_s=NO_ALERTS)
                total_new += result.accepted
                total_seen += len(calls)
                print(
                    f"{start}..{end}: {len(calls)} calls, {result.accepted} new"
                    + (f", {len(bad)} unusable" if bad else "")
                )
                start = end + timedelta(days=1)
    finally:
        await store.close()
    print(f"backfill done: {total_seen} calls from RIA, {total_new} new, no alerts sent")
    return 0
