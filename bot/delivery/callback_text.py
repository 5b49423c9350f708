"""Callback-loop text that needs no alert rendering: durations after the call, the
callback figures of /stats and the summaries, and the outcome on a /missed line (issue 12).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.delivery.markup import Format, tr
from bot.delivery.markup import manager as manager_name
from storage.missed import CallerOutcome
from storage.resolutions import BUTTON, Resolution
from storage.stats import CallbackFigures, CallbackStats


def took(lang: str, seconds: float) -> str:
    """'45 s', '4 min', '1 h 02 min': how long after the call (whole minutes, rounded down,
    as a promise of 15 minutes is broken at 15:00, not at 14:30)."""
    seconds = max(seconds, 0.0)
    if seconds < 60 or seconds >= 3600:
        return i18n.duration(lang, seconds)
    return i18n.t(lang, "cb_minutes", m=int(seconds // 60))


# ---- figures and /missed ------------------------------------------------------------------

MANAGER_LINES = 10  # per-manager callback lines in /stats and the summaries, at most


def figures_lines(cb: CallbackStats | None, f: Format, lang: str) -> list[str]:
    """The callback figures of /stats and the summaries: called back N of M (%), within
    the promise (%), median time to callback, still waiting; then the same per manager
    (by name when the configuration file names her line, issue 13)."""
    if cb is None or cb.missed_callers == 0:
        return []
    lines = [_figures(cb, f, lang, "cb_callbacks", within=took(lang, cb.within_s))]
    for m in cb.managers[:MANAGER_LINES]:
        if m.destination_phone:
            lines.append(
                "   "
                + _figures(
                    m,
                    f,
                    lang,
                    "cb_callbacks_manager",
                    manager=manager_name(f, m.destination_phone),
                )
            )
    return lines


def _figures(cb: CallbackFigures, f: Format, lang: str, key: str, **extra: object) -> str:
    return tr(
        f,
        lang,
        key,
        done=cb.called_back,
        total=cb.missed_callers,
        rate=i18n.percent(cb.called_back_rate),
        on_time=i18n.percent(cb.within_promise_rate),
        median=i18n.duration(lang, cb.median_callback_s),
        waiting=cb.waiting,
        **extra,
    )


def outcome_text(o: CallerOutcome, f: Format, lang: str, tz: ZoneInfo, now: float) -> str:
    """A /missed line's outcome: '⏳ waiting 25 min', '✅ Called back by Olena · 4 min after
    the call', '✅ Got through at 14:05 (...)'."""
    res = o.resolution
    if res is None:
        return tr(f, lang, "cb_outcome_waiting", took=took(lang, o.waited_s(now)))
    return resolution_text(f, lang, res, o.callback_s or 0.0, tz)


def resolution_text(f: Format, lang: str, res: Resolution, after_s: float, tz: ZoneInfo) -> str:
    """'✅ Called back by Olena · 4 min after the call' (`after_s` after it) / '✅ Got through
    at 14:05 (...)': the alert's resolved line and /missed's outcome say it alike."""
    if res.how == BUTTON:
        after = took(lang, after_s)
        if res.by_name:
            return tr(f, lang, "cb_by", name=res.by_name, took=after)
        return tr(f, lang, "cb_by_someone", took=after)
    at = datetime.fromtimestamp(res.resolved_at, tz).strftime("%H:%M")
    if res.manager:
        return tr(f, lang, "cb_answered", time=at, manager=manager_name(f, res.manager))
    return tr(f, lang, "cb_answered_unknown", time=at)
