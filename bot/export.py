"""`ria-calls-bot export --from D --to D [--missed] [--format csv|json] [--output FILE]`.

The calls of whole local days (TIMEZONE) as CSV for accountants and CRMs (a header row, one
row per call, ISO local times, phone numbers as E.164) or as one JSON array. Read-only: a
missing database is an error, never a new empty one.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from handlers.chat.periods import MAX_DAYS, local_midnight, parse_day
from handlers.ria.records import to_e164

FIELDS = [
    "call_id",
    "started_at",  # local ISO time with its UTC offset: 2026-11-28T09:15:00+02:00
    "status",
    "missed",
    "caller",  # E.164
    "manager_phone",  # RIA's destination_phone, E.164
    "tracking_phone",  # RIA's substitute number, E.164
    "duration_s",
    "waiting_s",
    "car",
    "price",
    "link",
]


def day_arg(text: str) -> date:
    """An option's DATE (YYYY-MM-DD or DD.MM.YYYY); every subcommand's date options use it."""
    try:
        return parse_day(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub: Any) -> None:
    """The subcommand and its options, on the CLI's subparsers."""
    ex = sub.add_parser(
        "export",
        help="write the calls of a date range as CSV or JSON",
        description="Write the calls of whole days (in TIMEZONE) as CSV (a header row, one "
        "row per call) or as a JSON array, oldest first, to stdout or --output FILE.",
        epilog="DATE: YYYY-MM-DD or DD.MM.YYYY; both days are included.",
    )
    ex.add_argument("--from", dest="day_from", type=day_arg, required=True, metavar="DATE")
    ex.add_argument("--to", dest="day_to", type=day_arg, required=True, metavar="DATE")
    ex.add_argument("--missed", action="store_true", help="only the missed calls")
    ex.add_argument("--format", choices=("csv", "json"), default="csv", help="default: csv")
    ex.add_argument("--output", metavar="FILE", help="write here instead of stdout")


def run(database_path: str, tz: ZoneInfo, args: argparse.Namespace) -> int:
    from storage.db import connect
    from storage.export import calls_between

    day_from, day_to = args.day_from, args.day_to
    if day_to < day_from:
        print("export: --to is before --from", file=sys.stderr)
        return 2
    if (day_to - day_from).days >= MAX_DAYS:
        print(f"export: at most {MAX_DAYS} days at a time", file=sys.stderr)
        return 2
    start = local_midnight(day_from, tz)
    end = local_midnight(day_to + timedelta(days=1), tz)
    db = connect(database_path, create=False)  # NoDatabase: the CLI says where it looked
    try:
        rows = (_row(r, tz) for r in calls_between(db, start, end, missed_only=args.missed))
        with _opened(args.output) as out:
            count = (write_json if args.format == "json" else write_csv)(rows, out)
    finally:
        db.conn.close()
    if args.output:
        print(f"{count} call(s) written to {args.output}", file=sys.stderr)
    return 0


@contextmanager
def _opened(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    # newline="": the csv module writes its own \r\n line ends
    with open(path, "w", encoding="utf-8", newline="") as file:
        yield file


def _row(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    car = " ".join(part for part in (row["marka"], row["model"]) if part) or None
    return {
        "call_id": row["call_id"],
        "started_at": datetime.fromtimestamp(row["started_at"], tz).isoformat(),
        "status": row["status"],
        "missed": bool(row["missed"]),
        "caller": row["caller_e164"] or None,
        "manager_phone": _e164(row["destination_phone"]),
        "tracking_phone": _e164(row["phone"]),
        "duration_s": row["duration"],
        "waiting_s": row["waiting"],
        "car": car,
        "price": row["price"],
        "link": row["link"] or None,
    }


def _e164(number: str) -> str | None:
    return to_e164(number) if number else None


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """A header row and one row per call; empty cells for unknown values. Returns the count."""
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    count = 0
    for row in rows:
        writer.writerow(_cell(row[name]) for name in FIELDS)
        count += 1
    return count


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"  # as in the JSON
    return value


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """One JSON array, written a call at a time. Returns the count."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
