"""The pieces every message is built from, in the three formats of bot/delivery/render:
escaping and markup, clipped RIA values, callers' numbers, times, status breakdowns and the
per-manager lines. Public so that bot/summary/text builds its summaries from the same
pieces as alerts and command replies.

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
from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.delivery.names import name_of
from bot.i18n import t
from handlers.chat.periods import Period
from handlers.ria.records import phone_forms, to_e164
from storage.calls import Call
from storage.stats import ANSWER, PeriodStats

FORMATS = ("html", "mrkdwn", "text")

# How much of each RIA-provided string a message shows. RIA sends short values, but a
# message must not grow without bound if it one day does not.
_CLIP = {"car": 48, "phone": 32, "status": 24, "detail": 64}
MAX_STATUSES = 6  # in a breakdown; RIA could send any number of made-up ones
MAX_MANAGERS = 15  # a dealer with more sees the busiest and "…and N more"


class Markup(str):
    """A value already in the target format (a link, a formatted number): not escaped again."""


class Format:
    """Plain text: the base the others override."""

    def esc(self, text: str) -> str:
        return text

    def bold(self, text: str) -> str:
        return text

    def code(self, text: str) -> str:
        return text

    def caller(self, raw: str) -> Markup:
        # E.164, as in Telegram: one spelling to copy or grep for, whatever the channel.
        # to_e164, not format_phone: RIA's national numbers need no full parse (a full one
        # was a tenth of the event loop's time at full ingest load, py-spy)
        return Markup(self.esc(to_e164(raw)))


class Html(Format):
    # the caller as plain E.164 (inherited): Telegram turns it into a tappable number itself

    def esc(self, text: str) -> str:
        return html.escape(text)

    def bold(self, text: str) -> str:
        return f"<b>{text}</b>"

    def code(self, text: str) -> str:
        return f"<code>{text}</code>"


class Mrkdwn(Format):
    def esc(self, text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def bold(self, text: str) -> str:
        return f"*{text}*"

    def code(self, text: str) -> str:
        return f"`{text}`"

    def caller(self, raw: str) -> Markup:
        parsed = parse_phone(raw)
        if parsed is None:
            return Markup(self.esc(raw))  # not a number we understood: no link to it
        e164, display = parsed
        return Markup(f"<tel:{e164}|{display}>")


_FORMATS: dict[str, Format] = {"html": Html(), "mrkdwn": Mrkdwn(), "text": Format()}


def get_format(fmt: str) -> Format:
    try:
        return _FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown message format {fmt!r}; use one of {FORMATS}") from None


def tr(f: Format, lang: str, key: str, **values: object) -> str:
    """The message `key` with its text values escaped for the format.

    The templates themselves hold no character any format treats specially (tests/test_i18n
    checks), so only the values need escaping, and the result is not escaped again.
    """
    return t(
        lang,
        key,
        **{
            k: f.esc(v) if isinstance(v, str) and not isinstance(v, Markup) else v
            for k, v in values.items()
        },
    )


def clip(text: str | None, what: str) -> str:
    """An RIA value on one line (newlines would break the layout), cut to its length."""
    text = " ".join((text or "").split())
    limit = _CLIP[what]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_text(lang: str, status: str) -> str:
    """A call's status in words (raw text); one RIA made up is shown as sent, clipped."""
    return i18n.status_name(lang, clip(status, "status"))


def caller(f: Format, lang: str, raw: str) -> str:
    """The caller, tappable where the platform allows; a withheld number says so."""
    raw = clip(raw, "phone")
    if not raw:
        return f.esc(t(lang, "number_hidden"))
    return f.caller(raw)


def message_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts: an emoji may count 2.

    The markup is counted too, although Telegram counts the text after parsing it, so the
    result is an upper bound of what Telegram (or Slack, counting characters) sees.
    """
    # surrogatepass: a stray half of a pair (the parser cleans them, but a length must
    # never be what fails) counts as the one unit it is
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# ---- phone numbers ----------------------------------------------------------------------


def format_phone(raw: str) -> tuple[str, str]:
    """'0951174074' -> ('+380951174074', '+380 95 117 4074'); unparseable: (raw, raw)."""
    return parse_phone(raw) or (raw, raw)


def parse_phone(raw: str) -> tuple[str, str] | None:
    """(E.164, international display) of a Ukrainian-format number, None if it is not one."""
    return phone_forms(raw)


def number(f: Format, raw: str) -> Markup:
    """A number that is not for calling back (tracking, manager): display form, no link."""
    return Markup(f.esc(format_phone(clip(raw, "phone"))[1]))


def manager(f: Format, raw: str) -> Markup:
    """A manager's line: the name from the configuration file's [[manager]], else the number."""
    name = name_of(raw)
    return Markup(f.esc(clip(name, "car"))) if name else number(f, raw)


# ---- times --------------------------------------------------------------------------------


def local_start(call: Call, tz: ZoneInfo) -> datetime:
    """The call's local wall time: RIA's own `date` string, or started_at if that is odd."""
    try:
        return datetime.fromisoformat(call.local_date).replace(tzinfo=None)
    except ValueError:
        return datetime.fromtimestamp(call.started_at, tz).replace(tzinfo=None)


def when(lang: str, moment: datetime, today: date | None) -> str:
    """'14:05' on `today`, '27.11.2026 14:05' on another day (today=None: always dated)."""
    clock = moment.strftime("%H:%M")
    if today is not None and moment.date() == today:
        return clock
    return f"{i18n.day(lang, moment.date())} {clock}"


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


# ---- figures shared by /stats and the summaries -----------------------------------------


def breakdown(counts: dict[str, int], lang: str) -> str:
    """'без відповіді: 2, скасовано: 1' (raw text: statuses RIA adds come as sent, clipped).

    `counts` comes biggest first; past the cap, the rest are summed in one last entry."""
    items = list(counts.items())
    parts = [f"{i18n.status_count(lang, clip(s, 'status'))}: {n}" for s, n in items[:MAX_STATUSES]]
    rest = sum(n for _, n in items[MAX_STATUSES:])
    if rest:
        parts.append(t(lang, "statuses_more", count=rest))
    return ", ".join(parts)


def other_line(s: PeriodStats, f: Format, lang: str) -> str:
    """'⚪ Other: 3 — failed: 2, …': calls neither answered nor missed (FAILED, CONGESTION,
    statuses RIA adds later), for /stats and the summaries alike."""
    others = {
        status: n - s.missed_by_status.get(status, 0)
        for status, n in s.by_status.items()
        if status != ANSWER
    }
    others = {status: n for status, n in others.items() if n > 0}
    return tr(f, lang, "stats_other", count=s.other) + " — " + f.esc(breakdown(others, lang))


def manager_lines(s: PeriodStats, f: Format, lang: str) -> list[str]:
    """A line per manager (the busiest first, then "…and N more"); /stats and summaries."""
    if not s.managers:
        return []
    shown = s.managers[:MAX_MANAGERS]
    lines = [tr(f, lang, "stats_managers")]
    lines += [
        tr(
            f,
            lang,
            "stats_manager_line",
            phone=manager(f, m.destination_phone) if m.destination_phone else number(f, "—"),
            total=m.total,
            answered=m.answered,
            missed=m.missed,
        )
        for m in shown
    ]
    if len(s.managers) > len(shown):
        lines.append(tr(f, lang, "more", count=len(s.managers) - len(shown)))
    return lines


def car_lines(s: PeriodStats, f: Format, lang: str) -> list[str]:
    """The most frequent cars asked about, for /stats and the summaries."""
    if not s.top_cars:
        return []
    return [tr(f, lang, "stats_cars")] + [
        f"{f.esc(clip(car, 'car'))}: {n}" for car, n in s.top_cars
    ]
