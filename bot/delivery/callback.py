"""The callback loop's messages (issue 12): alerts with their "✅ Called back" buttons, the
same alerts re-rendered once resolved (the line that says who called back, or when the
buyer got through), the "🔁" line of a repeat missed call, and the "⏰" reminder.

An edit is rendered from the message's CURRENT state (bot/delivery/followup reads it at
send time), so one edit row per call is enough, even for a coalesced message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from bot import i18n
from bot.delivery import render
from bot.delivery.callback_text import resolution_text, took
from bot.delivery.channels.base import Button, Outgoing
from bot.delivery.markup import Format, Markup, caller, get_format, tr
from storage.model import Call
from storage.resolutions import Resolution

MAX_BUTTONS = 100  # Telegram's inline keyboard; Slack's 50 blocks of 25 hold more
EDIT_LIMIT = 1_000_000  # an edit re-renders what one message held: never split it


def ordinal(lang: str, n: int) -> str:
    """2 -> '2nd' (en), '2-й' (uk)."""
    if i18n.lang_or_default(lang) == "uk":
        return f"{n}-й"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def last_digits(call: Call, count: int = 4) -> str:
    digits = "".join(ch for ch in (call.caller_e164 or call.caller_phone or "") if ch.isdigit())
    return digits[-count:]


def repeat_line(f: Format, lang: str, repeat: int) -> str:
    return tr(f, lang, "cb_repeat", nth=ordinal(lang, repeat))


def resolved_line(f: Format, lang: str, res: Resolution, call: Call, tz: ZoneInfo) -> str:
    """'✅ Called back by Olena · 4 min after the call' / '✅ Got through at 14:05 (...)'."""
    return resolution_text(f, lang, res, res.resolved_at - call.started_at, tz)


def resolved_callers(
    calls: Sequence[Call], f: Format, lang: str, tz: ZoneInfo, resolutions: dict[int, Resolution]
) -> list[str]:
    """A resolved line per resolved caller, oldest call first; a caller who rang twice
    is named once."""
    lines: list[str] = []
    seen: set[str] = set()
    for call in sorted(calls, key=lambda c: (c.started_at, c.call_id)):
        res = resolutions.get(call.call_id)
        key = call.caller_e164 or str(call.call_id)
        if res is None or key in seen:
            continue
        seen.add(key)
        who = caller(f, lang, call.caller_phone or call.caller_e164)
        lines.append(f"{resolved_line(f, lang, res, call, tz)} · {who}")
    return lines


def alert(
    call: Call,
    fmt: str,
    lang: str,
    tz: ZoneInfo,
    *,
    repeat: int | None = None,
    resolution: Resolution | None = None,
    now: datetime | None = None,
) -> Outgoing:
    """One missed call: the alert, its 🔁 line, and its button or its resolved line."""
    f = get_format(fmt)
    lines = [render.alert(call, fmt, lang, tz, now=now)]
    if repeat and repeat > 1:
        lines.append(repeat_line(f, lang, repeat))
    if resolution is not None:
        lines.append(resolved_line(f, lang, resolution, call, tz))
        return Outgoing("\n".join(lines))
    return Outgoing("\n".join(lines), [Button(i18n.t(lang, "cb_button"), call.call_id)])


def caller_buttons(
    calls: Sequence[Call], lang: str, resolutions: dict[int, Resolution] | None = None
) -> list[Button]:
    """One button per caller still open in a coalesced message (their newest call: a press
    resolves every open call of the caller), oldest first, at most MAX_BUTTONS. Callers
    without a number cannot be called back: no button."""
    resolutions = resolutions or {}
    newest: dict[str, Call] = {}
    for call in sorted(calls, key=lambda c: (c.started_at, c.call_id)):
        if call.caller_e164 and call.call_id not in resolutions:
            newest.pop(call.caller_e164, None)  # re-inserted last: ordered by the newest
            newest[call.caller_e164] = call
    ordered = sorted(newest.values(), key=lambda c: (c.started_at, c.call_id))
    return [
        Button(i18n.t(lang, "cb_button_caller", digits=last_digits(c)), c.call_id)
        for c in ordered[:MAX_BUTTONS]
    ]


def coalesced(
    calls: Sequence[Call],
    fmt: str,
    lang: str,
    tz: ZoneInfo,
    resolutions: dict[int, Resolution] | None = None,
    *,
    now: datetime | None = None,
) -> Outgoing:
    """A coalesced message as it stands: its list, a resolved line per resolved caller,
    and a button per caller still open."""
    f = get_format(fmt)
    resolutions = resolutions or {}
    text = render.coalesced(calls, fmt, lang, tz, EDIT_LIMIT, now=now)[0]
    lines = [text, *resolved_callers(calls, f, lang, tz, resolutions)]
    return Outgoing("\n".join(lines), caller_buttons(calls, lang, resolutions))


def reminder(
    calls: Sequence[Call], fmt: str, lang: str, now: float, reply_to: dict[str, object] | None
) -> Outgoing:
    """'⏰ Not called back for 15 min: +380 67 123 4567', as a reply to the alert; a
    coalesced alert's reminder lists its open callers (the wait of the oldest)."""
    f = get_format(fmt)
    ordered = sorted(calls, key=lambda c: (c.started_at, c.call_id))
    names: list[str] = []
    for call in ordered:
        name = caller(f, lang, call.caller_phone or call.caller_e164)
        if name not in names:
            names.append(name)
    waited = took(lang, now - ordered[0].started_at) if ordered else ""
    return Outgoing(
        tr(f, lang, "cb_reminder", took=waited, callers=Markup(", ".join(names))),
        reply_to=dict(reply_to) if reply_to else None,
    )


def gone_note(
    calls: Sequence[Call],
    fmt: str,
    lang: str,
    tz: ZoneInfo,
    resolutions: dict[int, Resolution],
    reply_to: dict[str, object] | None,
) -> Outgoing | None:
    """What an edit the platform refused (the alert is too old or deleted) says instead,
    as a short new message (a reply where the alert still exists); None if nothing is
    resolved."""
    f = get_format(fmt)
    lines = resolved_callers(calls, f, lang, tz, resolutions)
    if not lines:
        return None
    return Outgoing("\n".join(lines), reply_to=dict(reply_to) if reply_to else None)
