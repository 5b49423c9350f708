"""A Summary as a message, in the formats of bot/delivery/render ("html", "mrkdwn", "text").

Each key figure carries its change against the same window a week earlier: "(▲ 3)",
"(▼ 1)", "(=)"; rates in percentage points, times as durations. The lists are capped
(callers, managers, cars) so that the longest summary still fits one Telegram message.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.delivery.callback_text import figures_lines
from bot.delivery.markup import (
    Format,
    Markup,
    breakdown,
    caller,
    car_lines,
    clip,
    get_format,
    manager_lines,
    other_line,
    period_label,
    status_text,
    tr,
    when,
)
from bot.i18n import t
from bot.summary.build import DAILY, WEEKLY, Summary
from bot.summary.chart import ChartData
from handlers.chat.periods import Period
from storage.stats import PeriodStats

UP, DOWN, SAME = "▲", "▼", "="


# ---- labels -------------------------------------------------------------------------------


def _clock(moment: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(moment, tz).strftime("%H:%M")


def window_label(kind: str, period: Period, cutoff: int, lang: str, tz: ZoneInfo) -> str:
    """'пт 28.11.2026', 'пт 28.11.2026, до 20:00', '23.11.2026 – 29.11.2026'."""
    if kind == DAILY:
        label = f"{i18n.weekday(lang, period.first_day)} {i18n.day(lang, period.first_day)}"
    else:
        label = period_label(period, lang)  # a range of dates
    if cutoff < period.end:
        label = t(lang, "summary_until", period=label, time=_clock(cutoff, tz))
    return label


def title(s: Summary, lang: str, tz: ZoneInfo) -> str:
    """The first line, without markup (also the chart's title)."""
    label = window_label(s.kind, s.period, s.cutoff, lang, tz)
    return t(lang, f"summary_{s.kind}_title", period=label)


# ---- changes against a week earlier ----------------------------------------------------


def _arrow(change: float, shown: str) -> str:
    if change > 0:
        return f" ({UP} {shown})"
    if change < 0:
        return f" ({DOWN} {shown})"
    return f" ({SAME})"


def count_delta(now: int, before: int) -> str:
    return _arrow(now - before, str(abs(now - before)))


def rate_delta(now: float | None, before: float | None, lang: str) -> str:
    if now is None or before is None:
        return ""
    points = i18n.round_half_up((now - before) * 100)
    return _arrow(points, t(lang, "summary_pp", value=abs(points)))


def time_delta(now: float | None, before: float | None, lang: str) -> str:
    if now is None or before is None:
        return ""
    change = i18n.round_half_up(now) - i18n.round_half_up(before)
    return _arrow(change, i18n.duration(lang, abs(change)))


def _rate(rate: float | None) -> str:
    return i18n.percent(rate)


# ---- the message --------------------------------------------------------------------------


def text(s: Summary, fmt: str, lang: str, tz: ZoneInfo) -> str:
    """The summary as one message in `fmt`."""
    f = get_format(fmt)
    head = f.bold(f.esc(title(s, lang, tz)))
    now, before = s.stats, s.before
    if now.total == 0:
        return tr(f, lang, "summary_empty", title=Markup(head))
    compared = window_label(s.kind, s.before_period, s.before_cutoff, lang, tz)
    lines = [
        head,
        tr(f, lang, "summary_compared", period=compared),
        tr(
            f,
            lang,
            "summary_total",
            total=now.total,
            delta=count_delta(now.total, before.total),
            callers=now.unique_callers,
        ),
        tr(
            f,
            lang,
            "summary_answered",
            count=now.answered,
            delta=count_delta(now.answered, before.answered),
            rate=_rate(now.answer_rate),
            rate_delta=rate_delta(now.answer_rate, before.answer_rate, lang),
        ),
        _missed_line(now, before, f, lang),
    ]
    if now.other:
        lines.append(other_line(now, f, lang))
    lines.append(
        tr(
            f,
            lang,
            "summary_times",
            wait=i18n.duration(lang, now.avg_wait_s),
            wait_delta=time_delta(now.avg_wait_s, before.avg_wait_s, lang),
            talk=i18n.duration(lang, now.avg_talk_s),
            talk_delta=time_delta(now.avg_talk_s, before.avg_talk_s, lang),
        )
    )
    lines += _waiting(s, f, lang, tz)
    if s.kind == WEEKLY:
        lines.append(tr(f, lang, "summary_days"))
        lines += [
            tr(
                f,
                lang,
                "summary_day_line",
                day=f"{i18n.weekday(lang, day)} {i18n.day(lang, day, year=False)}",
                total=b.total,
                answered=b.answered,
                missed=b.missed,
            )
            for day, b in s.days
        ]
    lines += figures_lines(now.callbacks, f, lang)  # the callback loop (issue 12)
    lines += manager_lines(now, f, lang)
    lines += car_lines(now, f, lang)
    busiest = s.busiest()
    if busiest:
        hours = ", ".join(f"{hour_range(h)} ({b.total})" for h, b in busiest)
        lines.append(tr(f, lang, "summary_busiest", hours=hours))
    lines += ["🕐 " + f.esc(note) for note in clock_notes(s, lang)]
    return "\n".join(lines)


def clock_notes(s: Summary, lang: str) -> list[str]:
    """'25.10.2026: the clocks went back, the hour 03:00–04:00 happened twice' (raw text)."""
    return [
        t(
            lang,
            "summary_clock_back" if change.back else "summary_clock_forward",
            date=i18n.day(lang, change.day),
            hour=hour_range(change.hour),
        )
        for change in s.clock_changes
    ]


def hour_range(hour: int) -> str:
    return f"{hour:02d}:00–{(hour + 1) % 24:02d}:00"


def _missed_line(now: PeriodStats, before: PeriodStats, f: Format, lang: str) -> str:
    line = tr(
        f, lang, "summary_missed", count=now.missed, delta=count_delta(now.missed, before.missed)
    )
    if now.missed_by_status:
        line += " — " + f.esc(breakdown(now.missed_by_status, lang))
    return line


def _waiting(s: Summary, f: Format, lang: str, tz: ZoneInfo) -> list[str]:
    """Missed callers nobody has reached since, listed up to the cap, and the counts."""
    report = s.missed
    if report.waiting == 0 and report.reached == 0:
        return []
    lines = [tr(f, lang, "summary_waiting", waiting=report.waiting, reached=report.reached)]
    for i, c in enumerate(report.callers, start=1):
        moment = datetime.fromtimestamp(c.last_missed_at, tz).replace(tzinfo=None)
        parts = [
            f"{i}. {caller(f, lang, c.caller_phone or c.caller_e164)}",
            f.esc(when(lang, moment, moment.date() if s.kind == DAILY else None)),
            tr(f, lang, "missed_attempts", count=c.attempts),
            f.esc(status_text(lang, c.last_status)),
        ]
        if c.car:
            parts.append(f.esc(clip(c.car, "car")))
        lines.append(" · ".join(parts))
    if report.waiting > len(report.callers):
        lines.append(tr(f, lang, "more", count=report.waiting - len(report.callers)))
    return lines


# ---- the chart's words ---------------------------------------------------------------------


def chart_data(s: Summary, lang: str, tz: ZoneInfo) -> ChartData:
    """Bars per local hour (daily) or per day (weekly), with labels in `lang`."""
    label = window_label(s.kind, s.period, s.cutoff, lang, tz)
    if s.kind == DAILY:
        buckets = list(s.hours)
        labels = [f"{h:02d}" for h in range(24)]
        chart_title = t(lang, "chart_hours_title", period=label)
        x_label = t(lang, "chart_hour_axis")
    else:
        buckets = [b for _, b in s.days]
        labels = [f"{i18n.weekday(lang, d)} {i18n.day(lang, d, year=False)}" for d, _ in s.days]
        chart_title = t(lang, "chart_days_title", period=label)
        x_label = ""
    return ChartData(
        title=chart_title,
        labels=labels,
        answered=[b.answered for b in buckets],
        missed=[b.missed for b in buckets],
        other=[b.other for b in buckets],
        legend=(t(lang, "chart_answered"), t(lang, "chart_missed"), t(lang, "chart_other")),
        x_label=x_label,
        y_label=t(lang, "chart_calls_axis"),
        note="; ".join(clock_notes(s, lang)),
    )
