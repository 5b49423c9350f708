"""Messages for people: missed-call alerts and command replies, in three formats ("html"
for Telegram, "mrkdwn" for Slack, "text" for the console and the CLI). The pieces they are
built from (escaping, callers' numbers, times, breakdowns) are in bot/delivery/markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.delivery.callback_text import figures_lines, outcome_text
from bot.delivery.markup import (
    FORMATS,
    Format,
    breakdown,
    caller,
    car_lines,
    clip,
    format_phone,
    get_format,
    local_start,
    manager,
    manager_lines,
    message_length,
    other_line,
    parse_phone,
    period_label,
    status_text,
    tr,
    when,
)
from bot.delivery.markup import (
    number as display_number,
)
from bot.i18n import t
from handlers.chat.commands import ErrorReply, HelpReply, MissedReply, Reply, StatsReply
from handlers.chat.periods import MAX_DAYS, today_in
from storage.calls import Call
from storage.stats import PeriodStats

# the shared pieces other modules name through this one
__all__ = [
    "FORMATS",
    "alert",
    "coalesced",
    "format_phone",
    "manager_lines",
    "message_length",
    "parse_phone",
    "period_label",
    "reply",
    "test_message",
]

MESSAGE_LIMIT = 4096  # Telegram's; a reply longer than this is cut with "…and N more"
MIN_LIMIT = 1024  # coalesced(): a single line is always far shorter than this
RED = "🔴"


# ---- alerts -------------------------------------------------------------------------------


def alert(call: Call, fmt: str, lang: str, tz: ZoneInfo, *, now: datetime | None = None) -> str:
    """One missed call, readable at a glance: 4-5 short lines."""
    f = get_format(fmt)
    today = today_in(now or datetime.now(tz), tz)
    status = f.esc(status_text(lang, call.status))
    moment = f"🕒 {f.esc(when(lang, local_start(call, tz), today))}"
    # 0 is how the parser stores a wait RIA did not give (and a real 0 says nothing)
    if call.waiting > 0:
        moment += " · " + tr(f, lang, "waited", duration=i18n.duration(lang, call.waiting))
    lines = [
        f"{RED} {f.bold(tr(f, lang, 'missed_call'))} · {status}",
        f"📞 {caller(f, lang, call.caller_phone or call.caller_e164)}",
        moment,
    ]
    if call.car:
        lines.append(f"🚗 {f.esc(clip(call.car, 'car'))}")
    numbers = []
    if call.phone:
        numbers.append(tr(f, lang, "tracking_number", number=display_number(f, call.phone)))
    if call.destination_phone:
        numbers.append(tr(f, lang, "manager_number", number=manager(f, call.destination_phone)))
    if numbers:
        joined = " → ".join(numbers)
        lines.append("☎️ " + joined[:1].upper() + joined[1:])
    return "\n".join(lines)


def _compact(call: Call, f: Format, lang: str, tz: ZoneInfo, today: date) -> str:
    """One line of a coalesced message: time, number, status, car."""
    parts = [
        f.esc(when(lang, local_start(call, tz), today)),
        caller(f, lang, call.caller_phone or call.caller_e164),
        f.esc(status_text(lang, call.status)),
    ]
    if call.car:
        parts.append(f.esc(clip(call.car, "car")))
    return " · ".join(parts)


def coalesced(
    calls: Sequence[Call],
    fmt: str,
    lang: str,
    tz: ZoneInfo,
    limit: int = MESSAGE_LIMIT,
    *,
    now: datetime | None = None,
) -> list[str]:
    """Many missed calls in as few messages as fit in `limit`, oldest call first.

    Each call is on exactly one line of exactly one message; a message is split only
    between lines, and then each part's header says "(part i of n)". No calls: no message.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit {limit} is below {MIN_LIMIT}")
    if not calls:
        return []
    f = get_format(fmt)
    today = today_in(now or datetime.now(tz), tz)
    ordered = sorted(calls, key=lambda c: (c.started_at, c.call_id))
    lines = [_compact(c, f, lang, tz, today) for c in ordered]
    title = f"{RED} {f.bold(tr(f, lang, 'missed_calls_count', count=len(calls)))}"
    whole = "\n".join([title, *lines])
    if message_length(whole) <= limit:
        return [whole]

    # room for the longest "(part i of n)" this message could need, so every part fits
    suffix_room = message_length(" " + t(lang, "part", part=len(lines), parts=len(lines)))
    budget = limit - message_length(title) - suffix_room
    chunks: list[list[str]] = [[]]
    used = 0
    for line in lines:
        size = message_length(line) + 1  # and its newline
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(line)
        used += size
    return [
        "\n".join([f"{title} {tr(f, lang, 'part', part=i, parts=len(chunks))}", *chunk])
        for i, chunk in enumerate(chunks, start=1)
    ]


# ---- command replies --------------------------------------------------------------------


def reply(r: Reply, fmt: str, lang: str, tz: ZoneInfo) -> str:
    """A command's answer as one message (long lists are cut to fit one Telegram message)."""
    f = get_format(fmt)
    if isinstance(r, StatsReply):
        return _stats(r, f, lang)
    if isinstance(r, MissedReply):
        return _missed(r, f, lang, tz)
    if isinstance(r, HelpReply):
        return _help(f, lang)
    if isinstance(r, ErrorReply):
        key = f"error_{r.key}" if i18n.has(f"error_{r.key}") else "error_generic"
        return tr(f, lang, key, detail=clip(r.detail, "detail"), max_days=MAX_DAYS)
    raise TypeError(f"not a Reply: {r!r}")


def _stats(r: StatsReply, f: Format, lang: str) -> str:
    s: PeriodStats = r.stats
    label = period_label(r.period, lang)
    if s.total == 0:
        return tr(f, lang, "stats_empty", period=label)
    missed = tr(f, lang, "stats_missed", count=s.missed)
    if s.missed_by_status:
        missed += " — " + f.esc(breakdown(s.missed_by_status, lang))
    lines = [
        f.bold(tr(f, lang, "stats_title", period=label)),
        tr(f, lang, "stats_total", total=s.total, callers=s.unique_callers),
        tr(
            f,
            lang,
            "stats_answered",
            count=s.answered,
            rate=i18n.percent(s.answer_rate or 0),
        ),
        missed,
    ]
    if s.other:
        lines.append(other_line(s, f, lang))
    lines.append(
        tr(
            f,
            lang,
            "stats_times",
            wait=i18n.duration(lang, s.avg_wait_s),
            talk=i18n.duration(lang, s.avg_talk_s),
        )
    )
    lines += figures_lines(s.callbacks, f, lang)
    lines += manager_lines(s, f, lang)
    lines += car_lines(s, f, lang)
    return "\n".join(lines)


def _missed(r: MissedReply, f: Format, lang: str, tz: ZoneInfo) -> str:
    """Without argument: the callers still waiting, longest first, with how long; with
    `all` or a period (r.everything): every caller of the period with their outcome."""
    label = period_label(r.period, lang)
    waiting = r.waiting if r.waiting is not None else len(r.callers)
    shown = (r.total if r.total is not None else len(r.callers)) if r.everything else waiting
    if shown == 0:
        return tr(f, lang, "missed_none", period=label)
    title = "cb_missed_all_title" if r.everything else "missed_title"
    head = [f.bold(tr(f, lang, title, period=label))]
    if r.reached is not None:
        head.append(tr(f, lang, "missed_counts", waiting=waiting, reached=r.reached))
    # a one-day period names its date in the title: the time is enough on each line
    dated = r.period.days > 1
    now = r.now or datetime.now(tz).timestamp()
    lines: list[str] = []
    for i, c in enumerate(r.callers, start=1):
        moment = datetime.fromtimestamp(c.last_missed_at, tz).replace(tzinfo=None)
        parts = [
            f"{i}. {caller(f, lang, c.caller_phone or c.caller_e164)}",
            tr(f, lang, "missed_attempts", count=c.attempts),
            f.esc(when(lang, moment, None if dated else moment.date())),
            f.esc(status_text(lang, c.last_status)),
        ]
        if c.car:
            parts.append(f.esc(clip(c.car, "car")))
        parts.append(outcome_text(c, f, lang, tz, now))  # waiting how long, or how it ended
        lines.append(" · ".join(parts))
    return _fit([*head, *lines], shown - len(r.callers), f, lang, keep=len(head))


def _fit(lines: list[str], hidden: int, f: Format, lang: str, *, keep: int) -> str:
    """Join, dropping list lines from the end (counted in "…and N more") to fit a message."""
    more = hidden
    while True:
        tail = [tr(f, lang, "more", count=more)] if more else []
        text = "\n".join([*lines, *tail])
        if message_length(text) <= MESSAGE_LIMIT or len(lines) <= keep:
            return text
        lines = lines[:-1]
        more += 1


def _help(f: Format, lang: str) -> str:
    arg = f"[{t(lang, 'help_period_arg')}]"
    return "\n".join(
        [
            f.bold(tr(f, lang, "help_title")),
            f"/stats {f.esc(arg)} — {tr(f, lang, 'help_stats')}",
            f"/missed {f.esc(arg)} — {tr(f, lang, 'help_missed')}",
            f"/help — {tr(f, lang, 'help_help')}",
            "",
            tr(f, lang, "help_periods"),
            f"{f.code('2026-11-28')}, {f.code('28.11.2026')}, {f.code('2026-11-01..2026-11-28')}",
            tr(f, lang, "help_periods_uk"),
        ]
    )


def test_message(fmt: str, lang: str) -> str:
    """What `ria-calls-bot send-test` posts to every target."""
    return tr(get_format(fmt), lang, "test_message")


# not a test: keep pytest from collecting the function above when a test imports it
test_message.__test__ = False  # type: ignore[attr-defined]
