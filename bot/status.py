"""`ria-calls-bot status`: what /healthz does not tell the internet, for the operator.

Per alert target: messages pending, sent and failed, and the last error; the chat platforms'
connections and the poller's pause as the running service last saved them (meta
`service_state`, see handlers/health.py); the poller's budget and RIA's last answer; the
database's path and size.

It only reads the database, opened read-only, so it works whether or not the service runs
and never creates a database where there was none (a command run from the wrong folder).
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlite_utils

from bot import account_budget
from bot.config import ConfigError, Settings
from bot.logs import REDACT
from handlers.health import STATE_KEY
from handlers.ria.poller import HOURLY_CAP, check_budget
from handlers.routing import Account
from storage.outbox import Target

NO_DATABASE = "no database at {path} (set DATABASE_PATH, or run from the folder that has your .env)"


def database_path(settings: Settings) -> Path:
    """The database file as an absolute path (a relative DATABASE_PATH is the folder's)."""
    return Path(settings.database_path).expanduser().resolve()


def open_read_only(path: Path) -> sqlite3.Connection:
    # mode=ro: never creates the file, never writes (the service may be running beside us)
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


async def status(settings: Settings) -> int:
    path = database_path(settings)
    if not path.is_file():
        print(NO_DATABASE.format(path=path), file=sys.stderr)
        return 1
    REDACT.add(settings.secrets())  # error texts from the platforms may quote a secret
    accounts, problem = _accounts(settings)
    try:
        conn = open_read_only(path)
        try:
            lines = report(conn, settings, path, accounts)
            if problem:
                lines.append(problem)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        print(REDACT(f"cannot read the database at {path}: {exc}"), file=sys.stderr)
        return 1
    for line in lines:
        print(REDACT(line))
    return 0


def report(
    conn: sqlite3.Connection, settings: Settings, path: Path, accounts: Sequence[Account] = ()
) -> list[str]:
    tz = settings.tz
    state = _state(conn)
    lines = [f"database: {path} ({_size(path)})"]
    lines += _service(state, tz)
    lines.append("alert targets:")
    lines += _targets(conn, settings)
    channels = state.get("channels") if state else None
    if isinstance(channels, dict):
        for name, info in sorted(channels.items()):
            if name != "console" and isinstance(info, dict):
                lines.append(f"{name}: {_channel(info)}")
    lines += _poller(conn, settings, state)
    if accounts:  # the routing file's [[account]]s: each its own budget (issue 13)
        lines.append("pollers of the routing file's accounts:")
        db = sqlite_utils.Database(conn)
        lines += ["  " + line for line in account_budget.lines(db, time.time(), tz, accounts)]
    return lines


def _accounts(settings: Settings) -> tuple[list[Account], str | None]:
    """The routing file's accounts; a file that does not load is named, not fatal: `status`
    reports on what runs, and the service itself refuses such a file."""
    from bot.config_file import load_for

    try:
        config = load_for(settings)
    except ConfigError as exc:
        return [], f"routing file: {'; '.join(exc.lines)} (accounts' budgets not shown)"
    if config is None:
        return [], None
    REDACT.add(config.secrets())
    return list(config.accounts), None


def _when(at: float | None, tz: Any) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, tz).strftime("%Y-%m-%d %H:%M:%S")


def _size(path: Path) -> str:
    total: float = sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file()
    )
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if total < 1024 or unit == "GiB":
            return f"{total} {unit}" if unit == "bytes" else f"{total:.1f} {unit}"
        total /= 1024
    raise AssertionError("unreachable")


def _state(conn: sqlite3.Connection) -> dict[str, Any] | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (STATE_KEY,)).fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _service(state: dict[str, Any] | None, tz: Any) -> list[str]:
    if state is None:
        return ["service: no state saved yet (it has not run with this version)"]
    saved = _when(state.get("saved_at"), tz)
    if state.get("running") and _alive(state.get("pid")):
        return [f"service: running (pid {state.get('pid')}; state as of {saved})"]
    if state.get("running"):
        return [f"service: not running (it stopped without a clean stop, after {saved})"]
    return [f"service: not running (stopped at {saved}; below is the state it left)"]


def _targets(conn: sqlite3.Connection, settings: Settings) -> list[str]:
    counts: dict[Target, dict[str, Any]] = {}
    for row in conn.execute(
        "SELECT channel, target, state, COUNT(*) AS n, MAX(sent_at) AS last_sent FROM outbox"
        " GROUP BY channel, target, state"
    ):
        entry = counts.setdefault(
            Target(row["channel"], row["target"]),
            {"pending": 0, "sent": 0, "failed": 0, "last_sent": None},
        )
        entry[row["state"]] = row["n"]
        if row["last_sent"] is not None:
            entry["last_sent"] = row["last_sent"]
    configured = settings.alert_targets()
    lines = []
    # configured targets first, in the order of the settings; then rows nobody sends
    for target in [*configured, *sorted(t for t in counts if t not in configured)]:
        entry = counts.get(target, {"pending": 0, "sent": 0, "failed": 0, "last_sent": None})
        note = "" if target in configured else " (not configured: left alone)"
        lines.append(
            f"  {target}{note}: pending {entry['pending']}, sent {entry['sent']}, "
            f"failed {entry['failed']}; last sent {_when(entry['last_sent'], settings.tz)}"
        )
        error = conn.execute(
            "SELECT last_error, state FROM outbox WHERE channel = ? AND target = ?"
            " AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1",
            (target.channel, target.id),
        ).fetchone()
        if error is not None:
            lines.append(f"    last error ({error['state']} message): {error['last_error']}")
    return lines


def _channel(info: dict[str, Any]) -> str:
    if info.get("last_error"):
        return f"not working: {info['last_error']}"
    return "connected" if info.get("connected") else "not connected yet"


def _poller(
    conn: sqlite3.Connection, settings: Settings, state: dict[str, Any] | None
) -> list[str]:
    if not settings.polling_enabled:
        return ["poller: off (set RIA_API_KEY and RIA_USER_ID to turn it on)"]
    now = time.time()
    budget = check_budget(sqlite_utils.Database(conn), now, settings.tz, settings.ria_monthly_quota)
    quota = settings.ria_monthly_quota
    lines = [
        f"poller: this hour {budget.used_hour} of {HOURLY_CAP} used, "
        f"{max(HOURLY_CAP - budget.used_hour, 0)} left; this month {budget.used_month} of "
        f"{quota} used, {max(quota - budget.used_month, 0)} left",
    ]
    if not budget.allowed:
        lines.append(f"  waiting: {budget.reason}")
    last = conn.execute(
        "SELECT at, purpose, status, error FROM ria_requests ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if last is None:
        lines.append("  last answer: none yet")
    else:
        answer = f"HTTP {last['status']}" if last["status"] is not None else "no answer"
        if last["error"]:
            answer += f": {last['error']}"
        at = _when(last["at"], settings.tz)
        lines.append(f"  last answer ({last['purpose']}, {at}): {answer}")
    poller = state.get("poller") if state else None
    if isinstance(poller, dict) and poller.get("paused_until"):
        lines.append(f"  paused until {_when(poller['paused_until'], settings.tz)}")
    return lines
