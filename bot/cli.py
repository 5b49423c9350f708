"""`ria-calls-bot` / `python -m bot`: run, backfill, stats, summary, check, send-test, status."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from pathlib import Path

from bot import export, route_cli
from bot.backfill import backfill
from bot.cli_output import redacted_output, reveal
from bot.cli_parser import DATE_FORMATS, DELIVER_TIMEOUT_S, PERIOD_HELP, parser
from bot.config import ConfigError, Settings, load_settings
from bot.logs import REDACT
from bot.logs import setup as setup_logging
from storage.db import NoDatabase

# what other modules and scripts take from here: the command line's one face
__all__ = [
    "DATE_FORMATS",
    "DELIVER_TIMEOUT_S",
    "PERIOD_HELP",
    "backfill",
    "main",
    "parser",
    "print_answer",
    "redacted_output",
    "reveal",
]

log = logging.getLogger("ria-calls-bot")

NO_DATABASE = "no database at {path} (set DATABASE_PATH, or run from the folder that has your .env)"


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
            return asyncio.run(
                backfill(settings, args.day_from, args.day_to, args.file_config, args.account)
            )
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


async def print_answer(settings: Settings, command: str, argument: str) -> int:
    from bot.delivery import names, render
    from bot.routing_setup import load_names
    from handlers.chat import commands
    from storage.db import Store

    # managers by name, as the chat shows them (issue 13); a bad routing file: numbers
    if (problem := load_names(settings)) is not None:
        print(f"{command}: managers shown by number: {problem}", file=sys.stderr)
    store = Store(settings.database_path, create=False)
    await store.open()
    try:
        reply = await commands.answer(
            command,
            argument,
            store=store,
            tz=settings.tz,
            callback_within_s=settings.callback_within_minutes * 60,
            group=names.canonical,
        )
    finally:
        await store.close()
    print(render.reply(reply, "text", settings.language, settings.tz))
    return 1 if isinstance(reply, commands.ErrorReply) else 0
