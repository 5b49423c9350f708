"""The command line's words: `ria-calls-bot`'s subcommands, their options and help."""

from __future__ import annotations

import argparse

from bot import __version__, export, route_cli

DATE_FORMATS = "YYYY-MM-DD or DD.MM.YYYY"
PERIOD_HELP = (
    "PERIOD: today (default), yesterday, week (the last 7 days), month (since the 1st), "
    f"a date ({DATE_FORMATS}) or a range DATE..DATE, e.g. 2026-11-01..2026-11-28 or "
    "01.11.2026..28.11.2026 (at most 366 days). Ukrainian words work too: сьогодні, вчора, "
    "тиждень, місяць."
)
# how long send-test and `summary --send` try before giving up and taking their message back
DELIVER_TIMEOUT_S = 30.0


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
        "--from",
        dest="day_from",
        type=export.day_arg,
        required=True,
        metavar="DATE",
        help="first day",
    )
    b.add_argument(
        "--to",
        dest="day_to",
        type=export.day_arg,
        required=True,
        metavar="DATE",
        help="last day (included)",
    )
    b.add_argument(
        "--account",
        metavar="NAME",
        help="only this [[account]] of the routing file (default: every account, RIA_* too)",
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
    rs.add_argument(
        "--since", type=export.day_arg, metavar="DATE", help="only those created since DATE"
    )
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
