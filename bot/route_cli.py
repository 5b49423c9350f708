"""`ria-calls-bot route CALL.json`: where RIA's JSON call would go, and why (issue 13).

Reads the configuration file and the JSON, prints the decision; sends nothing and never
opens (or creates) a database.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.config_file import FileConfig


def add_parser(sub: Any) -> argparse.ArgumentParser:
    ro: argparse.ArgumentParser = sub.add_parser(
        "route",
        help="print where a call (RIA's JSON) would go, and why, without sending",
        description="Reads the configuration file (CONFIG_FILE) and tells, for each call in "
        "FILE (one RIA call record, or a list of them), which route matches and which chats "
        "it would be sent to. Sends nothing, stores nothing.",
    )
    ro.add_argument("file", metavar="CALL.json", help="RIA's JSON for one call, or a list")
    ro.add_argument("--account", metavar="NAME", help="as if this [[account]] reported it")
    return ro


def run(settings: Settings, config: FileConfig | None, file: str, account: str | None) -> int:
    from handlers.ria.records import RecordError, decode_body, parse_records
    from handlers.routing import Router

    if config is None:
        router = Router(routes=(), default_targets=settings.alert_targets(), tz=settings.tz)
        print("no configuration file (CONFIG_FILE): every call goes to the default targets")
    else:
        router = config.router(settings)
        names = [a.name for a in config.accounts]
        if account is not None and account not in names:
            known = ", ".join(names) or "none in the file"
            print(f'route: --account "{account}" is not an [[account]] ({known})', file=sys.stderr)
            return 2
        print(f"configuration: {config.path}")
    try:
        body = Path(file).read_bytes()
        calls, bad = parse_records(decode_body(body, "application/json"), settings.tz)
    except OSError as exc:
        print(f"route: {file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RecordError as exc:
        print(f"route: {file}: {exc}", file=sys.stderr)
        return 2
    for _record, reason in bad:
        print(f"route: {file}: a record cannot be used: {reason}", file=sys.stderr)
    for call in calls:
        # hours are judged at the call's own time, as its webhook would have been
        moment = datetime.fromtimestamp(call.started_at, settings.tz)
        car = f", {call.car}" if call.car else ""
        print(
            f"call {call.call_id} ({call.status}, {call.local_date}, "
            f"tracking {call.phone or '-'}, manager line {call.destination_phone or '-'}{car})"
            + (f" from account {account}" if account else "")
            + ":"
        )
        missed = call.status in settings.missed_statuses
        for line in router.explain(call, account, moment):
            print(f"  {line}")
        if not missed:
            print(f"  (status {call.status} raises no alert: it is only counted for these chats)")
    return 1 if bad and not calls else 0
