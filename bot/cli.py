"""`ria-calls-bot` / `python -m bot`: run, backfill, stats, summary, check, send-test, status."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot import __version__, export, route_cli
from bot.config import ConfigError, Settings, load_settings
from bot.logs import REDACT
from bot.logs import setup as setup_logging
from storage.db import NoDatabase

if TYPE_CHECKING:
    from bot.config_file import FileConfig

log = logging.getLogger("ria-calls-bot")


DATE_FORMATS = "YYYY-MM-DD or DD.MM.YYYY"
PERIOD_HELP = (
    "PERIOD: today (default), yesterday, week (the last 7 days), month (since the 1st), "
    f"a date ({DATE_FORMATS}) or a range DATE..DATE, e.g. 2026-11-01..2026-11-28 or "
    "01.11.2026..28.11.2026 (at most 366 days). Ukrainian words work too: сьогодні, вчора, "
    "тиждень, місяць."
)
NO_DATABASE = "no database at {path} (set DATABASE_PATH, or run from the folder that has your .env)"
# how long send-test and `summary --send` try before giving up and taking their message back
DELIVER_TIMEOUT_S = 30.0


def _date(text: str) -> date:
    from handlers.chat.periods import parse_day

    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f'"{text}" is not a number of seconds (1-3600)')
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ria-calls-bot",
        description="Missed-call alerts, stats and summaries for auto.ria.com dealers.",
        epilog="`ria-calls-bot run` starts the service; `ria-calls-bot COMMAND --help` "
        "explains a command.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="start the service")
    b = sub.add_parser(
        "backfill",
        help="store RIA's call history for a date range",
        description="Store RIA's call history for a date range. Missed calls younger than "
        "ALERT_MAX_AGE_MINUTES are alerted (as the poller would); older ones are only stored.",
        epilog=f"DATE: {DATE_FORMATS}, e.g. 2026-11-01 or 01.11.2026.",
    )
    b.add_argument(
        "--from", dest="day_from", type=_date, required=True, metavar="DATE", help="first day"
    )
    b.add_argument(
        "--to", dest="day_to", type=_date, required=True, metavar="DATE", help="last day (included)"
    )
    st = sub.add_parser("stats", help="print what /stats would answer", epilog=PERIOD_HELP)
    st.add_argument("period", nargs="*", metavar="PERIOD")
    mi = sub.add_parser("missed", help="print what /missed would answer", epilog=PERIOD_HELP)
    mi.add_argument("period", nargs="*", metavar="PERIOD")
    su = sub.add_parser(
        "summary",
        help="print the daily or weekly summary, or send it now",
        epilog=f"DATE: today (default), yesterday, {DATE_FORMATS}; or week (the last full "
        "Monday-Sunday week).",
    )
    su.add_argument("when", nargs="?", default="today", metavar="DATE|week")
    su.add_argument("--send", action="store_true", help="send it to every alert target now")
    su.add_argument("--chart", metavar="FILE", help="write the chart to FILE (PNG)")
    su.add_argument(
        "--timeout",
        type=_seconds,
        default=DELIVER_TIMEOUT_S,
        metavar="SECONDS",
        help=f"with --send: give up (and take the summary back) after this long "
        f"(default {DELIVER_TIMEOUT_S:g})",
    )
    c = sub.add_parser("check", help="validate the configuration and reach each configured service")
    c.add_argument(
        "--show-webhook-url",
        action="store_true",
        help="print the RIA webhook URL in full (it contains its secret)",
    )
    t = sub.add_parser("send-test", help="send a test message to every target now")
    t.add_argument(
        "--timeout",
        type=_seconds,
        default=DELIVER_TIMEOUT_S,
        metavar="SECONDS",
        help=f"give up (and take the message back) after this long (default {DELIVER_TIMEOUT_S:g})",
    )
    rs = sub.add_parser("resend", help="send failed alerts again (at the service's next start)")
    rs.add_argument("--failed", action="store_true", required=True, help="the failed ones")
    rs.add_argument("--since", type=_date, metavar="DATE", help="only those created since DATE")
    sub.add_parser(
        "status",
        help="per target: pending, sent, last error; the poller's budget; the database",
    )
    bk = sub.add_parser("backup", help="copy the database safely, also while the service runs")
    bk.add_argument("file", metavar="FILE", help="the backup (always the newest copy)")
    bk.add_argument(
        "--keep",
        type=int,
        default=1,
        metavar="N",
        help="keep N copies: FILE, FILE.1 (the one before), ... FILE.N-1",
    )
    route_cli.add_parser(sub)
    fg = sub.add_parser("forget", help="erase a caller's calls, alerts and raw payloads")
    fg.add_argument("phone", metavar="PHONE", help="0671234567, +380671234567, 380671234567")
    export.add_parser(sub)
    return p


READ_COMMANDS = ("stats", "missed", "status", "resend")
CONFIG_FILE_COMMANDS = ("run", "check", "route", "backfill")


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # the database, its backups and charts hold personal data: private
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 0
    command: str = args.command
    try:
        settings = load_settings()
    except ConfigError as exc:
        for line in exc.lines:
            print(f"config error: {line}", file=sys.stderr)
        return 2
    # the routing file (issue 13): a bad one stops these commands like a bad variable
    args.file_config = None
    if command in CONFIG_FILE_COMMANDS:
        from bot.config_file import load_for

        try:
            args.file_config = load_for(settings)
        except ConfigError as exc:
            for line in exc.lines:
                print(f"config error: {line}", file=sys.stderr)
            return 2
        if args.file_config is not None:  # the accounts' keys and webhook secrets
            REDACT.add(args.file_config.secrets())
    # what the service prints on stdout is its own business (the one URL it shows on
    # purpose); everything else any command prints is redacted like the logs
    try:
        with redacted_output(stdout=command != "run"):
            setup_logging(settings.log_level, settings.log_format, settings.secrets())
            code = _run(command, args, settings)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then ours to handle
        return code
    except BrokenPipeError:
        return _stdout_closed()


def _stdout_closed() -> int:
    """`ria-calls-bot check | head`: the reader has gone, so the rest is not wanted. End
    quietly, as other command-line tools do (128 + SIGPIPE), with no error and no "Exception
    ignored" when Python flushes stdout at exit: point it at /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    os.close(devnull)
    return 141


def _run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    # a read command from the wrong folder must not answer "no calls" from a new, empty
    # database; nor may `summary --send` send the figures of one
    if command in READ_COMMANDS or command == "summary":
        path = Path(settings.database_path).resolve()
        if not path.is_file():
            print(NO_DATABASE.format(path=path), file=sys.stderr)
            return 1
    try:
        if command == "run":
            from bot.app import Service

            asyncio.run(Service(settings, config=args.file_config).run())
            return 0
        if command == "backfill":
            return asyncio.run(backfill(settings, args.day_from, args.day_to, args.file_config))
        if command in ("stats", "missed"):
            return asyncio.run(print_answer(settings, command, " ".join(args.period)))
        if command == "summary":
            from bot.summary.cli import run as summary

            return asyncio.run(
                summary(
                    settings, args.when, send=args.send, chart_path=args.chart, timeout=args.timeout
                )
            )
        if command == "check":
            from bot.check import check

            return asyncio.run(
                check(settings, show_webhook_url=args.show_webhook_url, config=args.file_config)
            )
        if command == "route":
            return route_cli.run(settings, args.file_config, args.file, args.account)
        if command == "send-test":
            from bot.check import send_test

            return asyncio.run(send_test(settings, timeout=args.timeout))
        if command in ("backup", "forget"):
            from bot import backup, forget

            if command == "backup":
                return asyncio.run(backup.run(settings, args.file, args.keep))
            return asyncio.run(forget.forget(settings, args.phone))
        if command == "resend":
            from bot.delivery import resend

            return asyncio.run(resend.run(settings.database_path, args.since, settings.tz))
        if command == "export":
            return export.run(settings.database_path, settings.tz, args)
        if command == "status":
            from bot.status import status

            return asyncio.run(status(settings))
    except KeyboardInterrupt:
        return 130
    except NoDatabase as exc:  # removed while we looked
        print(NO_DATABASE.format(path=exc.path), file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # stdout closed by its reader (`| head`): main ends quietly
    except OSError as exc:  # port in use, database directory not writable, ...
        log.error("%s", exc)
        return 1
    except sqlite3.Error as exc:  # read-only file system, disk full, not a database, ...
        log.error("database %s: %s", settings.database_path, exc)
        return 1
    return 2


class _Redacting(io.TextIOBase):
    """Writes whole lines through the log redaction to the real stream: a secret inside a
    library's error message (PTB's InvalidToken quotes the token) never reaches the screen.
    Line by line, so that a secret is never split between two writes."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw
        self._line = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._line += text
        if "\n" in self._line:
            done, _, self._line = self._line.rpartition("\n")
            self.raw.write(REDACT(done + "\n"))
        return len(text)

    def flush(self) -> None:
        if self._line:
            self.raw.write(REDACT(self._line))
            self._line = ""
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.raw.encoding


@contextlib.contextmanager
def redacted_output(*, stdout: bool = True) -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    if stdout:
        sys.stdout = _Redacting(saved[0])
    sys.stderr = _Redacting(saved[1])
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def reveal(text: str) -> None:
    """Print `text` unredacted: only for what the operator asked to see in full."""
    stream = sys.stdout.raw if isinstance(sys.stdout, _Redacting) else sys.stdout
    sys.stdout.flush()
    print(text, file=stream, flush=True)


async def print_answer(settings: Settings, command: str, argument: str) -> int:
    from bot.delivery import render
    from handlers.chat import commands
    from storage.db import Store

    store = Store(settings.database_path, create=False)
    await store.open()
    try:
        reply = await commands.answer(
            command,
            argument,
            store=store,
            tz=settings.tz,
            callback_within_s=settings.callback_within_minutes * 60,
        )
    finally:
        await store.close()
    print(render.reply(reply, "text", settings.language, settings.tz))
    return 1 if isinstance(reply, commands.ErrorReply) else 0


async def backfill(
    settings: Settings, day_from: date, day_to: date, config: FileConfig | None = None
) -> int:
    """Fetch RIA's history in month-sized requests and store it. Missed calls younger than
    ALERT_MAX_AGE_MINUTES are alerted, as the poller would: whichever source stores a call
    first decides whether anyone hears of it, and a fresh call whose webhook was lost must
    not be swallowed by a backfill that reaches today."""
    import aiohttp

    from handlers.intake import Intake
    from handlers.ria.api import RiaApiError
    from handlers.ria.factory import build_poller
    from handlers.ria.poller import BudgetExceeded
    from storage.db import Store
    from storage.outbox import OutboxItem

    if not settings.polling_enabled:
        print("backfill needs RIA_API_KEY and RIA_USER_ID", file=sys.stderr)
        return 2
    if day_to < day_from:
        print("backfill: --to is before --from", file=sys.stderr)
        return 2
    store = Store(settings.database_path)
    await store.open()
    total_new = total_seen = 0
    alerts: list[OutboxItem] = []
    code = 0
    try:
        async with aiohttp.ClientSession() as session:
            intake = Intake(
                store,
                targets=settings.alert_targets(),
                missed_statuses=settings.missed_statuses,
                on_alerts=alerts.extend,
            )
            if config is not None:  # routed like the service's own calls (issue 13)
                from handlers.routing import route_fn

                intake.route = route_fn(config.router(settings), intake.clock)
            poller = build_poller(settings, session, store, intake)
            assert poller is not None  # polling_enabled
            start = day_from
            while start <= day_to:
                end = min(start + timedelta(days=30), day_to)
                try:
                    records = await poller.fetch(start, end, purpose="backfill")
                except (RiaApiError, BudgetExceeded) as exc:
                    print(f"backfill stopped at {start}: {exc}", file=sys.stderr)
                    code = 1
                    break
                # as the poller does: unusable records are kept in rejected_payloads
                got = await poller.ingest(records, source="backfill")
                total_new += got.new
                total_seen += got.calls
                print(
                    f"{start}..{end}: {got.calls} calls, {got.new} new"
                    + (
                        f", {got.unusable} unusable (kept in rejected_payloads)"
                        if got.unusable
                        else ""
                    ),
                    flush=True,
                )
                start = end + timedelta(days=1)
        if alerts:
            from bot.check import deliver_now

            # real alerts, unlike send-test's: what cannot go out now stays in the outbox
            print(
                f"{len(alerts)} alert(s) for missed calls younger than "
                f"{settings.alert_max_age_minutes:g} min (ALERT_MAX_AGE_MINUTES):",
                flush=True,
            )
            await deliver_now(settings, store, alerts, DELIVER_TIMEOUT_S, take_back=False)
    finally:
        await store.close()
    print(
        f"backfill {'done' if code == 0 else 'stopped'}: {total_seen} calls from RIA, "
        f"{total_new} new, {len(alerts)} alert(s)"
    )
    return code
