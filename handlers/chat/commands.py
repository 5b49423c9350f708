"""The chat commands, platform-neutral: text in, a Reply structure out.

Telegram, Slack and the CLI all call `split_command` + `answer` and render the Reply with
bot/render. Nothing here knows about a chat platform or a message format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.chat.periods import Period, PeriodError, parse_period
from storage.db import Store
from storage.stats import MissedCaller, PeriodStats, missed_report, period_stats

# /missed lists at most this many callers: more would not fit one Telegram message, and
# the reply says how many more there are.
MISSED_LIMIT = 30
TOP_CARS = 5


@dataclass(frozen=True)
class HelpReply:
    """The list of commands and the PERIOD syntax."""


@dataclass(frozen=True)
class StatsReply:
    period: Period
    stats: PeriodStats


@dataclass(frozen=True)
class MissedReply:
    period: Period
    callers: list[MissedCaller]  # still waiting, newest first, at most MISSED_LIMIT
    waiting: int | None = None  # all callers still waiting (may exceed len(callers))
    reached: int | None = None  # callers who missed in the period but got through later


@dataclass(frozen=True)
class ErrorReply:
    """`key` names the message in bot/i18n (prefixed "error_"); `detail` is the bad input."""

    key: str  # unknown_command | bad_period | bad_date | period_reversed | ...
    detail: str


Reply = HelpReply | StatsReply | MissedReply | ErrorReply

# Command words to what they do. Telegram only routes Latin command names, so the
# Ukrainian aliases are for Slack mentions and the CLI.
_COMMANDS = {
    "": "help",  # a bare mention of the bot
    "start": "help",
    "help": "help",
    "допомога": "help",
    "stats": "stats",
    "статистика": "stats",
    "missed": "missed",
    "пропущені": "missed",
}

# Slack writes a mention of the bot as <@U123ABC> or <@U123ABC|name> at the front.
_MENTION = re.compile(r"^(?:<@[^>\s]+>\s*)+")


def is_command(word: str) -> bool:
    """Whether `word` (as split_command gives it) names one of our commands; "" (a bare
    mention of the bot) counts: it asks for the help."""
    return word.strip().lower() in _COMMANDS


def split_command(text: str) -> tuple[str, str]:
    """'/stats@ria_bot today' -> ('stats', 'today'); 'stats today' (no slash) works too."""
    text = _MENTION.sub("", text.strip())
    # any whitespace separates, not just a space (a newline after the command, say)
    parts = text.split(maxsplit=1)
    head = parts[0] if parts else ""
    argument = parts[1] if len(parts) > 1 else ""
    command = head.removeprefix("/").split("@", 1)[0].lower()
    return command, argument.strip()


async def answer(
    command: str,
    argument: str,
    *,
    store: Store,
    tz: ZoneInfo,
    now: datetime | None = None,
) -> Reply:
    """What to answer to `command argument`. User mistakes become an ErrorReply."""
    action = _COMMANDS.get(command.strip().lower())
    if action is None:
        return ErrorReply("unknown_command", command)
    if action == "help":
        return HelpReply()
    try:
        period = parse_period(argument, now=now or datetime.now(tz), tz=tz)
    except PeriodError as exc:
        return ErrorReply(exc.key, exc.text)
    if action == "stats":
        stats = await store.run(period_stats, period.start, period.end, top=TOP_CARS)
        return StatsReply(period, stats)
    report = await store.run(missed_report, period.start, period.end, limit=MISSED_LIMIT)
    return MissedReply(period, report.callers, waiting=report.waiting, reached=report.reached)
