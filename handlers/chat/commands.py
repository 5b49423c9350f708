"""The chat commands, platform-neutral: text in, a Reply structure out.

Telegram, Slack and the CLI all call `split_command` + `answer` and render the Reply with
bot/render. Nothing here knows about a chat platform or a message format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers.chat.periods import Period, PeriodError, parse_period
from storage.db import Store
from storage.missed import CallerOutcome, all_outcomes, open_callers
from storage.stats import PeriodStats, period_stats

# /missed lists at most this many callers: more would not fit one Telegram message, and
# the reply says how many more there are.
MISSED_LIMIT = 30
TOP_CARS = 5
# the callback promise the figures count against when reminders are off (0)
DEFAULT_PROMISE_S = 15 * 60.0
# `/missed all [PERIOD]`: every caller with their outcome, not only those still waiting
_ALL = {"all", "всі", "усі", "все"}


@dataclass(frozen=True)
class HelpReply:
    """The list of commands and the PERIOD syntax."""


@dataclass(frozen=True)
class StatsReply:
    period: Period
    stats: PeriodStats  # stats.callbacks: the callback figures (issue 12)


@dataclass(frozen=True)
class MissedReply:
    period: Period
    # everything=False: only callers still waiting, the longest waiting first (`waited_s(now)`);
    # everything=True (`/missed all` or a period): every caller with their outcome
    # (`resolution`: None = waiting, how='button' by_name, how='answered' manager), oldest
    # first. At most MISSED_LIMIT.
    callers: list[CallerOutcome]
    waiting: int | None = None  # all callers still waiting (may exceed len(callers))
    reached: int | None = None  # callers who missed in the period and were called back /
    # got through since
    everything: bool = False
    now: float = 0.0  # UTC epoch seconds the waited times are counted to
    total: int | None = None  # everything=True: all callers of the period (>= len(callers))


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
    callback_within_s: float = DEFAULT_PROMISE_S,
    scope: tuple[str, str] | None = None,
    group: Callable[[str], str] | None = None,
) -> Reply:
    """What to answer to `command argument`. User mistakes become an ErrorReply. `scope`
    (channel, chat id): only the calls routed to that chat (issue 13); None: every call.
    `group`: a manager line -> the key her figures are counted under (the service passes
    the configuration file's names, so a manager with two lines is one line)."""
    action = _COMMANDS.get(command.strip().lower())
    if action is None:
        return ErrorReply("unknown_command", command)
    if action == "help":
        return HelpReply()
    everything = False
    if action == "missed":
        words = argument.split(maxsplit=1)
        if words and words[0].lower() in _ALL:
            everything, argument = True, words[1] if len(words) > 1 else ""
        elif argument.strip():
            everything = True  # a period asks for the record: everything with its outcome
    moment = now or datetime.now(tz)
    try:
        period = parse_period(argument, now=moment, tz=tz)
    except PeriodError as exc:
        return ErrorReply(exc.key, exc.text)
    if action == "stats":
        within = callback_within_s if callback_within_s > 0 else DEFAULT_PROMISE_S
        stats = await store.run(
            period_stats,
            period.start,
            period.end,
            top=TOP_CARS,
            within_s=within,
            scope=scope,
            group=group,
        )
        return StatsReply(period, stats)
    # a naive `now` is local time (as parse_period takes it)
    at = (moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)).timestamp()
    if everything:
        found = await store.run(all_outcomes, period.start, period.end, limit=1 << 30, scope=scope)
        waiting = sum(1 for o in found if o.open)
        return MissedReply(
            period,
            found[:MISSED_LIMIT],
            waiting=waiting,
            reached=len(found) - waiting,
            everything=True,
            now=at,
            total=len(found),
        )
    report = await store.run(
        open_callers, period.start, period.end, limit=MISSED_LIMIT, scope=scope
    )
    return MissedReply(
        period, report.callers, waiting=report.waiting, reached=report.resolved, now=at
    )
