"""Message catalogue: Ukrainian (default) and English.

Plural forms are avoided by wording ("Дзвінків: 4", not "4 дзвінки"), so no plural rules
are needed. A status has two forms: one call's ("клієнт поклав слухавку", status_*) and the
label of a count, worded to agree with any number ("скасовано: 2", count_*).

Templates hold no markup and none of the characters the output formats treat specially
(& < > * _ ` ~): bot/render escapes the values it fills in and adds the markup.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

DEFAULT_LANG = "uk"

MESSAGES: dict[str, dict[str, str]] = {
    "uk": {
        # alerts
        "missed_call": "Пропущений дзвінок",
        "missed_calls_count": "Пропущені дзвінки: {count}",
        "part": "(частина {part} з {parts})",
        "waited": "очікування {duration}",
        "tracking_number": "номер RIA {number}",
        "manager_number": "менеджер {number}",
        # periods
        "period_today": "сьогодні, {date}",
        "period_yesterday": "вчора, {date}",
        "period_week": "останні 7 днів, {first} – {last}",
        "period_month": "цей місяць, {first} – {last}",
        "period_day": "{date}",
        "period_range": "{first} – {last}",
        # /stats
        "stats_title": "📊 Статистика: {period}",
        "stats_empty": "📊 {period}: дзвінків не було.",
        "stats_total": "Дзвінків: {total} · абонентів: {callers}",
        "stats_answered": "✅ Відповіли: {count} ({rate})",
        "stats_missed": "🔴 Пропущено: {count}",
        "stats_other": "⚪ Інші: {count}",
        "stats_times": "⏱ У середньому: очікування {wait} · розмова {talk}",
        "stats_managers": "👤 Менеджери:",
        "stats_manager_line": "{phone}: {total} · ✅ {answered} · 🔴 {missed}",
        "stats_cars": "🚗 Найчастіше питали:",
        "more": "…і ще {count}",
        # /missed
        "missed_title": "🔴 Чекають на зворотний дзвінок: {period}",
        "missed_none": "✅ {period}: ніхто не чекає на зворотний дзвінок.",
        "missed_counts": "Чекають: {waiting} · додзвонилися пізніше: {reached}",
        "missed_attempts": "спроб: {count}",
        # /help
        "help_title": "ria-calls-bot: пропущені дзвінки з auto.ria.com",
        "help_stats": "статистика дзвінків",
        "help_missed": "хто чекає на зворотний дзвінок",
        "help_help": "ця довідка",
        "help_period_arg": "період",
        "help_periods": (
            "Період: today (типово), yesterday, week (останні 7 днів), "
            "month (цей місяць), дата або діапазон дат, як 28.11.2026 або 2026-11-28:"
        ),
        "help_periods_uk": "Можна й українською: сьогодні, вчора, тиждень, місяць.",
        # errors
        "error_unknown_command": "⚠️ Невідома команда «{detail}». Список команд: /help",
        "refusal": "Цей бот відповідає лише в чатах відділу продажів.",
        "command_stats": "Статистика дзвінків: /stats [сьогодні|вчора|тиждень|місяць]",
        "command_missed": "Хто чекає на зворотний дзвінок",
        "command_help": "Довідка",
        "error_bad_period": (
            "⚠️ Не розумію період «{detail}». Приклади: сьогодні, вчора, тиждень, місяць, "
            "28.11.2026, 01.11.2026..28.11.2026."
        ),
        "error_bad_date": "⚠️ Такої дати немає: «{detail}».",
        "error_period_reversed": "⚠️ Період «{detail}» закінчується раніше, ніж починається.",
        "error_period_too_long": "⚠️ Період «{detail}» задовгий: не більше {max_days} днів.",
        "error_period_in_future": "⚠️ Період «{detail}» закінчується після сьогоднішнього дня.",
        "error_generic": "⚠️ Не вийшло: «{detail}».",
        # send-test
        "test_message": "✅ Тестове повідомлення від ria-calls-bot: сповіщення сюди доходять.",
        # durations and statuses
        "duration_s": "{s} с",
        "duration_m": "{m} хв {s:02d} с",
        "duration_h": "{h} год {m:02d} хв",
        "status_ANSWER": "відповіли",
        "status_NOANSWER": "не відповіли",
        "status_CANCEL": "клієнт поклав слухавку",
        "status_BUSY": "зайнято",
        "status_FAILED": "збій",
        "status_CONGESTION": "мережа перевантажена",
        # daily and weekly summaries (bot/summary_text, bot/chart)
        "summary_daily_title": "📊 Підсумок дня: {period}",
        "summary_weekly_title": "📊 Підсумок тижня: {period}",
        "summary_until": "{period}, до {time}",
        "summary_empty": "{title} — дзвінків не було.",
        "summary_compared": "У дужках — порівняно з {period}",
        "summary_total": "Дзвінків: {total}{delta} · абонентів: {callers}",
        "summary_answered": "✅ Відповіли: {count}{delta} — {rate}{rate_delta}",
        "summary_missed": "🔴 Пропущено: {count}{delta}",
        "summary_times": (
            "⏱ У середньому: очікування {wait}{wait_delta} · розмова {talk}{talk_delta}"
        ),
        "summary_waiting": "📞 Досі не додзвонилися: {waiting} · додзвонилися пізніше: {reached}",
        "summary_busiest": "🕐 Найбільше дзвінків: {hours}",
        "summary_days": "📅 По днях:",
        "summary_day_line": "{day}: {total} · ✅ {answered} · 🔴 {missed}",
        "summary_clock_back": "{date}: годинник переведено назад, година {hour} була двічі",
        "summary_clock_forward": "{date}: годинник переведено вперед, години {hour} не було",
        "summary_pp": "{value} в. п.",
        "weekdays": "пн вт ср чт пт сб нд",
        "chart_hours_title": "Дзвінки за годинами: {period}",
        "chart_days_title": "Дзвінки за днями: {period}",
        "chart_answered": "прийняті",
        "chart_missed": "пропущені",
        "chart_other": "інші",
        "chart_hour_axis": "година",
        "chart_calls_axis": "дзвінки",
        # a status beside a count ("скасовано: 2"): forms that agree with any number
        "count_ANSWER": "з відповіддю",
        "count_NOANSWER": "без відповіді",
        "count_CANCEL": "скасовано",
        "count_BUSY": "зайнято",
        "count_FAILED": "зі збоєм",
        "count_CONGESTION": "через перевантаження мережі",
        "number_hidden": "номер приховано",
        "statuses_more": "інші статуси: {count}",
        # the callback loop (issue 12): buttons, resolved lines, reminders, figures
        "cb_button": "✅ Передзвонили",
        "cb_button_caller": "✅ …{digits}",
        "cb_by": "✅ Передзвонив(ла) {name} · через {took} після дзвінка",
        "cb_by_someone": "✅ Передзвонили · через {took} після дзвінка",
        "cb_answered": "✅ Додзвонився о {time} (відповів {manager})",
        "cb_answered_unknown": "✅ Додзвонився о {time}",
        "cb_repeat": "🔁 {nth} пропущений дзвінок з цього номера сьогодні",
        "cb_reminder": "⏰ Не передзвонили вже {took}: {callers}",
        "cb_minutes": "{m} хв",
        "cb_callbacks": "Передзвонили: {done} з {total} ({rate}) · вчасно (до {within}): {on_time}"
        " · медіана: {median} · чекають: {waiting}",
        "cb_callbacks_manager": "{manager}: передзвонили {done} з {total} ({rate}),"
        " вчасно {on_time}, медіана {median}, чекають {waiting}",
        "cb_waiting": "чекає {took}",
        "cb_outcome_waiting": "⏳ чекає {took}",
        "cb_missed_all_title": "🔴 Пропущені та що з ними сталося: {period}",
    },
    "en": {
        "missed_call": "Missed call",
        "missed_calls_count": "Missed calls: {count}",
        "part": "(part {part} of {parts})",
        "waited": "waited {duration}",
        "tracking_number": "RIA number {number}",
        "manager_number": "manager {number}",
        "period_today": "today, {date}",
        "period_yesterday": "yesterday, {date}",
        "period_week": "last 7 days, {first} – {last}",
        "period_month": "this month, {first} – {last}",
        "period_day": "{date}",
        "period_range": "{first} – {last}",
        "stats_title": "📊 Stats: {period}",
        "stats_empty": "📊 {period}: no calls.",
        "stats_total": "Calls: {total} · callers: {callers}",
        "stats_answered": "✅ Answered: {count} ({rate})",
        "stats_missed": "🔴 Missed: {count}",
        "stats_other": "⚪ Other: {count}",
        "stats_times": "⏱ Average wait: {wait} · talk: {talk}",
        "stats_managers": "👤 Managers:",
        "stats_manager_line": "{phone}: {total} · ✅ {answered} · 🔴 {missed}",
        "stats_cars": "🚗 Most asked about:",
        "more": "…and {count} more",
        "missed_title": "🔴 Waiting for a call back: {period}",
        "missed_none": "✅ {period}: nobody is waiting for a call back.",
        "missed_counts": "Callers: {waiting} · got through later: {reached}",
        "missed_attempts": "attempts: {count}",
        "help_title": "ria-calls-bot: missed calls from auto.ria.com",
        "help_stats": "call statistics",
        "help_missed": "who is waiting for a call back",
        "help_help": "this help",
        "help_period_arg": "period",
        "help_periods": (
            "Period: today (default), yesterday, week (last 7 days), "
            "month (this month), a date or a range of dates, as 2026-11-28 or 28.11.2026:"
        ),
        "help_periods_uk": "Ukrainian works too: сьогодні, вчора, тиждень, місяць.",
        "error_unknown_command": "⚠️ Unknown command “{detail}”. Commands: /help",
        "refusal": "This bot only answers in the sales team's chats.",
        "command_stats": "Call statistics: /stats [today|yesterday|week|month]",
        "command_missed": "Who is waiting for a call back",
        "command_help": "Help",
        "error_bad_period": (
            "⚠️ I don't understand the period “{detail}”. Examples: today, yesterday, week, "
            "month, 2026-11-28, 28.11.2026, 2026-11-01..2026-11-28."
        ),
        "error_bad_date": "⚠️ There is no such date: “{detail}”.",
        "error_period_reversed": "⚠️ The period “{detail}” ends before it starts.",
        "error_period_too_long": "⚠️ The period “{detail}” is too long: {max_days} days at most.",
        "error_period_in_future": "⚠️ The period “{detail}” ends after today.",
        "error_generic": "⚠️ That did not work: “{detail}”.",
        "test_message": "✅ Test message from ria-calls-bot: alerts reach this chat.",
        "duration_s": "{s} s",
        "duration_m": "{m} min {s:02d} s",
        "duration_h": "{h} h {m:02d} min",
        "status_ANSWER": "answered",
        "status_NOANSWER": "no answer",
        "status_CANCEL": "caller hung up",
        "status_BUSY": "busy",
        "status_FAILED": "failed",
        "status_CONGESTION": "network congestion",
        "summary_daily_title": "📊 Daily summary: {period}",
        "summary_weekly_title": "📊 Weekly summary: {period}",
        "summary_until": "{period}, until {time}",
        "summary_empty": "{title} — no calls.",
        "summary_compared": "In brackets: compared with {period}",
        "summary_total": "Calls: {total}{delta} · callers: {callers}",
        "summary_answered": "✅ Answered: {count}{delta} — {rate}{rate_delta}",
        "summary_missed": "🔴 Missed: {count}{delta}",
        "summary_times": "⏱ Average wait: {wait}{wait_delta} · talk: {talk}{talk_delta}",
        "summary_waiting": "📞 Still not reached: {waiting} · got through later: {reached}",
        "summary_busiest": "🕐 Busiest hours: {hours}",
        "summary_days": "📅 By day:",
        "summary_day_line": "{day}: {total} · ✅ {answered} · 🔴 {missed}",
        "summary_clock_back": "{date}: the clocks went back, the hour {hour} happened twice",
        "summary_clock_forward": "{date}: the clocks went forward, there was no hour {hour}",
        "summary_pp": "{value} pp",
        "weekdays": "Mon Tue Wed Thu Fri Sat Sun",
        "chart_hours_title": "Calls by hour: {period}",
        "chart_days_title": "Calls by day: {period}",
        "chart_answered": "answered",
        "chart_missed": "missed",
        "chart_other": "other",
        "chart_hour_axis": "hour",
        "chart_calls_axis": "calls",
        "count_ANSWER": "answered",
        "count_NOANSWER": "no answer",
        "count_CANCEL": "caller hung up",
        "count_BUSY": "busy",
        "count_FAILED": "failed",
        "count_CONGESTION": "network congestion",
        "number_hidden": "number hidden",
        "statuses_more": "other statuses: {count}",
        # the callback loop (issue 12): buttons, resolved lines, reminders, figures
        "cb_button": "✅ Called back",
        "cb_button_caller": "✅ …{digits}",
        "cb_by": "✅ Called back by {name} · {took} after the call",
        "cb_by_someone": "✅ Called back · {took} after the call",
        "cb_answered": "✅ Got through at {time} (answered by {manager})",
        "cb_answered_unknown": "✅ Got through at {time}",
        "cb_repeat": "🔁 {nth} missed call from this number today",
        "cb_reminder": "⏰ Not called back for {took}: {callers}",
        "cb_minutes": "{m} min",
        "cb_callbacks": "Called back: {done} of {total} ({rate}) · within {within}: {on_time}"
        " · median: {median} · still waiting: {waiting}",
        "cb_callbacks_manager": "{manager}: called back {done} of {total} ({rate}),"
        " within the promise {on_time}, median {median}, waiting {waiting}",
        "cb_waiting": "waiting {took}",
        "cb_outcome_waiting": "⏳ waiting {took}",
        "cb_missed_all_title": "🔴 Missed callers and their outcome: {period}",
    },
}

LANGUAGES = tuple(MESSAGES)


def lang_or_default(lang: str | None) -> str:
    lang = (lang or "").strip().lower()
    return lang if lang in MESSAGES else DEFAULT_LANG


def t(lang: str, key: str, **kwargs: object) -> str:
    """The message `key` in `lang`, filled in; falls back to Ukrainian, then to the key."""
    template = MESSAGES[lang_or_default(lang)].get(key) or MESSAGES[DEFAULT_LANG].get(key, key)
    return template.format(**kwargs) if kwargs else template


def has(key: str) -> bool:
    return key in MESSAGES[DEFAULT_LANG]


def status_name(lang: str, status: str) -> str:
    """A status in words; statuses RIA may add later are shown as RIA sent them."""
    key = f"status_{status}"
    return t(lang, key) if has(key) else status


def round_half_up(value: float) -> int:
    """The nearest whole number, halves away from zero, as people round (1 of 8 is 13 %,
    42.5 s is 43 s); Python's round() goes to the even neighbour (12, 42).

    The value is first taken to 9 decimals so that float noise (0.145 * 100 is
    14.499999999999998) does not turn a true half into a round-down."""
    exact = Decimal(value).quantize(Decimal("1e-9"))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent(rate: float | None) -> str:
    """0.125 -> '13%'; '—' without a rate. The one way a share is shown."""
    return "—" if rate is None else f"{round_half_up(rate * 100)}%"


def status_count(lang: str, status: str) -> str:
    """A status as the label of a count ('скасовано: 2'); unknown ones as RIA sent them."""
    key = f"count_{status}"
    return t(lang, key) if has(key) else status


def duration(lang: str, seconds: float | None) -> str:
    """'45 с', '1 хв 05 с', '1 год 02 хв'; '—' when there is nothing to show."""
    if seconds is None:
        return "—"
    total = max(round_half_up(seconds), 0)
    if total < 60:
        return t(lang, "duration_s", s=total)
    if total < 3600:
        return t(lang, "duration_m", m=total // 60, s=total % 60)
    return t(lang, "duration_h", h=total // 3600, m=total % 3600 // 60)


def weekday(lang: str, value: date) -> str:
    """'пт' / 'Fri'."""
    return t(lang, "weekdays").split()[value.weekday()]


def day(lang: str, value: date, *, year: bool = True) -> str:
    """28.11.2026 in Ukrainian, 2026-11-28 in English (no month names to translate)."""
    if lang_or_default(lang) == "uk":
        return value.strftime("%d.%m.%Y" if year else "%d.%m")
    return value.isoformat() if year else value.strftime("%m-%d")
