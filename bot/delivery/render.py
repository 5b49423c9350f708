"""Messages for people: missed-call alerts and command replies, in three formats.

- "html": Telegram with parse_mode HTML. Everything that came from RIA goes through
  html.escape; the only tags used are <b> and <code>.
- "mrkdwn": Slack. &, < and > are escaped as Slack asks; the caller is a tel: link.
- "text": the console and the CLI, plain; the caller in E.164 like Telegram.

A caller's number is what a manager taps to call back, so it is written the way each
platform makes it tappable (ria/NOTES.md §4): E.164 as plain text for Telegram, which links
it itself and drops tel: links; a <tel:...|...> link for Slack.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.i18n import t
from handlers.chat.commands import ErrorReply, HelpReply, MissedReply, Reply, StatsReply
from handlers.chat.periods import MAX_DAYS, Period, today_in
from handlers.ria.records import phone_forms
from storage.calls import Call
from storage.stats import ANSWER, PeriodStats

FORMATS = ("html", "mrkdwn", "text")
MESSAGE_LIMIT = 4096  # Telegram's; a reply longer than this is cut with "…and N more"
MIN_LIMIT = 1024  # coalesced(): a single line is always far shorter than this
RED = "🔴"

# How much of each RIA-provided string a message shows. RIA sends short values, but a
# message must not grow without bound if it one day does not.
_CLIP = {"car": 48, "phone": 32, "status": 24, "detail": 64}


# ---- formats ----------------------------------------------------------------------------


class _Markup(str):
    """A value already in the target format (a link, a formatted number): not escaped again."""


class _Format:
    """Plain text: the base the others override."""

    def esc(self, text: str) -> str:
        return text

    def bold(self, text: str) -> str:
        return text

    def code(self, text: str) -> str:
        return text

    def caller(self, raw: str) -> _Markup:
        # E.164, as in Telegram: one spelling to copy or grep for, whatever the channel
        return _Markup(self.esc(format_phone(raw)[0]))


class _Html(_Format):
    # the caller as plain E.164 (inherited): Telegram turns it into a tappable number itself

    def esc(self, text: str) -> str:
        return html.escape(text)

    def bold(self, text: str) -> str:
        return f"<b>{text}</b>"

    def code(self, text: str) -> str:
        return f"<code>{text}</code>"


class _Mrkdwn(_Format):
    def esc(self, text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def bold(self, text: str) -> str:
        return f"*{text}*"

    def code(self, text: str) -> str:
        return f"`{text}`"

    def caller(self, raw: str) -> _Markup:
        parsed = parse_phone(raw)
        if parsed is None:
            return _Markup(self.esc(raw))  # not a number we understood: no link to it
        e164, display = parsed
        return _Markup(f"<tel:{e164}|{display}>")


_FORMATS: dict[str, _Format] = {"html": _Html(), "mrkdwn": _Mrkdwn(), "text": _Format()}


def _fmt(fmt: str) -> _Format:
    try:
        return _FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown message format {fmt!r}; use one of {FORMATS}") from None


def _t(f: _Format, lang: str, key: str, **values: object) -> str:
    """The message `key` with its text values escaped for the format.

    The templates themselves hold no character any format treats specially (tests/test_i18n
    checks), so only the values need escaping, and the result is not escaped again.
    """
    return t(
        lang,
        key,
        **{
            k: f.esc(v) if isinstance(v, str) and not isinstance(v, _Markup) else v
            for k, v in values.items()
        },
    )


def _clip(text: str | None, what: str) -> str:
    text = " ".join((text or "").split())  # one line: newlines would break the layout
    limit = _CLIP[what]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status(lang: str, status: str) -> str:
    """A call's status in words (raw text); one RIA made up is shown as sent, clipped."""
    return i18n.status_name(lang, _clip(status, "status"))


def _caller(f: _Format, lang: str, raw: str) -> str:
    """The caller, tappable where the platform allows; a withheld number says so."""
    raw = _clip(raw, "phone")
    if not raw:
        return f.esc(t(lang, "number_hidden"))
    return f.caller(raw)


# ---- phone numbers ----------------------------------------------------------------------


def format_phone(raw: str) -> tuple[str, str]:
    """'0951174074' -> ('+380951174074', '+380 95 117 4074'); unparseable: (raw, raw)."""
    return parse_phone(raw) or (raw, raw)


def parse_phone(raw: str) -> tuple[str, str] | None:
    """(E.164, international display) of a Ukrainian-format number, None if it is not one."""
    return phone_forms(raw)


def _number(f: _Format, raw: str) -> _Markup:
    """A number that is not for calling back (tracking, manager): display form, no link."""
    return _Markup(f.esc(format_phone(_clip(raw, "phone"))[1]))


# ---- times --------------------------------------------------------------------------------


def _local_start(call: Call, tz: ZoneInfo) -> datetime:
    """The call's local wall time: RIA's own `date` string, or started_at if that is odd."""
    try:
        return datetime.fromisoformat(call.local_date).replace(tzinfo=None)
    except ValueError:
        return datetime.fromtimestamp(call.started_at, tz).replace(tzinfo=None)


def _when(lang: str, moment: datetime, today: date | None) -> str:
    """'14:05' on `today`, '27.11.2026 14:05' on another day (today=None: always dated)."""
    clock = moment.strftime("%H:%M")
    if today is not None and moment.date() == today:
        return clock
    return f"{i18n.day(lang, moment.date())} {clock}"


# ---- alerts -------------------------------------------------------------------------------


def alert(call: Call, fmt: str, lang: str, tz: ZoneInfo, *, now: datetime | None = None) -> str:
    """One missed call, readable at a glance: 4-5 short lines."""
    f = _fmt(fmt)
    today = today_in(now or datetime.now(tz), tz)
    status = f.esc(_status(lang, call.status))
    when = f"🕒 {f.esc(_when(lang, _local_start(call, tz), today))}"
    # 0 is how the parser stores a wait RIA did not give (and a real 0 says nothing)
    if call.waiting > 0:
        when += " · " + _t(f, lang, "waited", duration=i18n.duration(lang, call.waiting))
    lines = [
        f"{RED} {f.bold(_t(f, lang, 'missed_call'))} · {status}",
        f"📞 {_caller(f, lang, call.caller_phone or call.caller_e164)}",
        when,
    ]
    if call.car:
        lines.append(f"🚗 {f.esc(_clip(call.car, 'car'))}")
    numbers = []
    if call.phone:
        numbers.append(_t(f, lang, "tracking_number", number=_number(f, call.phone)))
    if call.destination_phone:
        numbers.append(_t(f, lang, "manager_number", number=_number(f, call.destination_phone)))
    if numbers:
        joined = " → ".join(numbers)
        lines.append("☎️ " + joined[:1].upper() + joined[1:])
    return "\n".join(lines)


def _compact(call: Call, f: _Format, lang: str, tz: ZoneInfo, today: date) -> str:
    """One line of a coalesced message: time, number, status, car."""
    parts = [
        f.esc(_when(lang, _local_start(call, tz), today)),
        _caller(f, lang, call.caller_phone or call.caller_e164),
        f.esc(_status(lang, call.status)),
    ]
    if call.car:
        parts.append(f.esc(_clip(call.car, "car")))
    return " · ".join(parts)


def message_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts: an emoji may count 2.

    The markup is counted too, although Telegram counts the text after parsing it, so the
    result is an upper bound of what Telegram (or Slack, counting characters) sees.
    """
    # surrogatepass: a stray half of a pair (the parser cleans them, but a length must
    # never be what fails) counts as the one unit it is
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


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
    f = _fmt(fmt)
    today = today_in(now or datetime.now(tz), tz)
    ordered = sorted(calls, key=lambda c: (c.started_at, c.call_id))
    lines = [_compact(c, f, lang, tz, today) for c in ordered]
    title = f"{RED} {f.bold(_t(f, lang, 'missed_calls_count', count=len(calls)))}"
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
        "\n".join([f"{title} {_t(f, lang, 'part', part=i, parts=len(chunks))}", *chunk])
        for i, chunk in enumerate(chunks, start=1)
    ]


# ---- command replies --------------------------------------------------------------------


def period_label(period: Period, lang: str) -> str:
    """'сьогодні, 28.11.2026', '01.11.2026 – 28.11.2026', ..."""
    first, last = i18n.day(lang, period.first_day), i18n.day(lang, period.last_day)
    if period.key in ("today", "yesterday"):
        return t(lang, f"period_{period.key}", date=first)
    if period.key in ("week", "month"):
        return t(lang, f"period_{period.key}", first=first, last=last)
    if period.first_day == period.last_day:
        return t(lang, "period_day", date=first)
    return t(lang, "period_range", first=first, last=last)


def reply(r: Reply, fmt: str, lang: str, tz: ZoneInfo) -> str:
    """A command's answer as one message (long lists are cut to fit one Telegram message)."""
    f = _fmt(fmt)
    if isinstance(r, StatsReply):
        return _stats(r, f, lang)
    if isinstance(r, MissedReply):
        return _missed(r, f, lang, tz)
    if isinstance(r, HelpReply):
        return _help(f, lang)
    if isinstance(r, ErrorReply):
        key = f"error_{r.key}" if i18n.has(f"error_{r.key}") else "error_generic"
        return _t(f, lang, key, detail=_clip(r.detail, "detail"), max_days=MAX_DAYS)
    raise TypeError(f"not a Reply: {r!r}")


_MAX_STATUSES = 6  # in a breakdown; RIA could send any number of made-up ones


def _breakdown(counts: dict[str, int], lang: str) -> str:
    """'без відповіді: 2, скасовано: 1' (raw text: statuses RIA adds come as sent, clipped).

    `counts` comes biggest first; past the cap, the rest are summed in one last entry."""
    items = list(counts.items())
    parts = [
        f"{i18n.status_count(lang, _clip(s, 'status'))}: {n}" for s, n in items[:_MAX_STATUSES]
    ]
    rest = sum(n for _, n in items[_MAX_STATUSES:])
    if rest:
        parts.append(t(lang, "statuses_more", count=rest))
    return ", ".join(parts)


_MAX_MANAGERS = 15  # a dealer with more sees the busiest and "…and N more"


def _stats(r: StatsReply, f: _Format, lang: str) -> str:
    s: PeriodStats = r.stats
    label = period_label(r.period, lang)
    if s.total == 0:
        return _t(f, lang, "stats_empty", period=label)
    missed = _t(f, lang, "stats_missed", count=s.missed)
    if s.missed_by_status:
        missed += " — " + f.esc(_breakdown(s.missed_by_status, lang))
    lines = [
        f.bold(_t(f, lang, "stats_title", period=label)),
        _t(f, lang, "stats_total", total=s.total, callers=s.unique_callers),
        _t(
            f,
            lang,
            "stats_answered",
            count=s.answered,
            rate=i18n.percent(s.answer_rate or 0),
        ),
        missed,
    ]
    if s.other:
        # neither answered nor missed: FAILED, CONGESTION, statuses RIA adds later
        others = {
            status: n - s.missed_by_status.get(status, 0)
            for status, n in s.by_status.items()
            if status != ANSWER
        }
        others = {status: n for status, n in others.items() if n > 0}
        lines.append(
            _t(f, lang, "stats_other", count=s.other) + " — " + f.esc(_breakdown(others, lang))
        )
    lines.append(
        _t(
            f,
            lang,
            "stats_times",
            wait=i18n.duration(lang, s.avg_wait_s),
            talk=i18n.duration(lang, s.avg_talk_s),
        )
    )
    lines += manager_lines(s, f, lang)
    if s.top_cars:
        lines.append(_t(f, lang, "stats_cars"))
        lines += [f"{f.esc(_clip(car, 'car'))}: {n}" for car, n in s.top_cars]
    return "\n".join(lines)


def manager_lines(s: PeriodStats, f: _Format, lang: str) -> list[str]:
    """A line per manager (the busiest first, then "…and N more"); /stats and summaries."""
    if not s.managers:
        return []
    shown = s.managers[:_MAX_MANAGERS]
    lines = [_t(f, lang, "stats_managers")]
    lines += [
        _t(
            f,
            lang,
            "stats_manager_line",
            phone=_number(f, m.destination_phone or "—"),
            total=m.total,
            answered=m.answered,
            missed=m.missed,
        )
        for m in shown
    ]
    if len(s.managers) > len(shown):
        lines.append(_t(f, lang, "more", count=len(s.managers) - len(shown)))
    return lines


def _missed(r: MissedReply, f: _Format, lang: str, tz: ZoneInfo) -> str:
    label = period_label(r.period, lang)
    waiting = r.waiting if r.waiting is not None else len(r.callers)
    if waiting == 0:
        return _t(f, lang, "missed_none", period=label)
    head = [f.bold(_t(f, lang, "missed_title", period=label))]
    if r.reached is not None:
        head.append(_t(f, lang, "missed_counts", waiting=waiting, reached=r.reached))
    # a one-day period names its date in the title: the time is enough on each line
    dated = r.period.days > 1
    lines: list[str] = []
    for i, c in enumerate(r.callers, start=1):
        moment = datetime.fromtimestamp(c.last_missed_at, tz).replace(tzinfo=None)
        parts = [
            f"{i}. {_caller(f, lang, c.caller_phone or c.caller_e164)}",
            _t(f, lang, "missed_attempts", count=c.attempts),
            f.esc(_when(lang, moment, None if dated else moment.date())),
            f.esc(_status(lang, c.last_status)),
        ]
        if c.car:
            parts.append(f.esc(_clip(c.car, "car")))
        lines.append(" · ".join(parts))
    return _fit([*head, *lines], waiting - len(r.callers), f, lang, keep=len(head))


def _fit(lines: list[str], hidden: int, f: _Format, lang: str, *, keep: int) -> str:
    """Join, dropping list lines from the end (counted in "…and N more") to fit a message."""
    more = hidden
    while True:
        tail = [_t(f, lang, "more", count=more)] if more else []
        text = "\n".join([*lines, *tail])
        if message_length(text) <= MESSAGE_LIMIT or len(lines) <= keep:
            return text
        lines = lines[:-1]
        more += 1


def _help(f: _Format, lang: str) -> str:
    arg = f"[{t(lang, 'help_period_arg')}]"
    return "\n".join(
        [
            f.bold(_t(f, lang, "help_title")),
            f"/stats {f.esc(arg)} — {_t(f, lang, 'help_stats')}",
            f"/missed {f.esc(arg)} — {_t(f, lang, 'help_missed')}",
            f"/help — {_t(f, lang, 'help_help')}",
            "",
            _t(f, lang, "help_periods"),
            f"{f.code('2026-11-28')}, {f.code('28.11.2026')}, {f.code('2026-11-01..2026-11-28')}",
            _t(f, lang, "help_periods_uk"),
        ]
    )


def test_message(fmt: str, lang: str) -> str:
    """What `ria-calls-bot send-test` posts to every target."""
    return _t(_fmt(fmt), lang, "test_message")


# not a test: keep pytest from collecting the function above when a test imports it
test_message.__test__ = False  # type: ignore[attr-defined]
