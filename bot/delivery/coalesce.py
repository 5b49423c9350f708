"""A coalesced backlog as messages: consecutive runs of alerts, each run as long as still
fits one message of the platform."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.delivery import render
from storage.calls import Call
from storage.outbox import OutboxItem


def split_coalesced(
    items: list[OutboxItem], fmt: str, lang: str, tz: ZoneInfo, limit: int
) -> list[tuple[list[OutboxItem], str]]:
    """Consecutive runs of items, each as long as still fits one message."""
    parts: list[tuple[list[OutboxItem], str]] = []
    rest = items
    while rest:
        calls = [item.call for item in rest if item.call is not None]
        # the usual case: the whole backlog fits one message, and one render says so (the
        # search below renders each line two or three times; ~5 % of the loop's time when
        # webhooks poured in at full speed, py-spy)
        whole = _one_message(calls, fmt, lang, tz, limit) if rest is items else None
        if whole is not None:
            parts.append((rest, whole))
            break
        # the longest prefix that renders as one message: double the prefix while it fits,
        # then binary search the last step, so a part costs renders in proportion to its own
        # size, not the backlog's (a binary search over the whole backlog for every part was
        # quadratic: 3,000 waiting alerts held the event loop for 4 s)
        low, text = 1, render.coalesced(calls[:1], fmt, lang, tz, limit)[0]
        high = len(rest)  # the longest prefix not yet known to be too long
        probe = 2
        while low < high:
            size = min(probe, high)
            fitted = _one_message(calls[:size], fmt, lang, tz, limit)
            if fitted is None:
                high = size - 1
                break
            low, text = size, fitted
            probe = size * 2
        while low < high:
            mid = (low + high + 1) // 2
            fitted = _one_message(calls[:mid], fmt, lang, tz, limit)
            if fitted is None:
                high = mid - 1
            else:
                low, text = mid, fitted
        parts.append((rest[:low], text))
        rest = rest[low:]
    return parts


def _one_message(
    calls: Sequence[Call], fmt: str, lang: str, tz: ZoneInfo, limit: int
) -> str | None:
    """The coalesced message for `calls` if it fits in one, else None."""
    texts = render.coalesced(calls, fmt, lang, tz, limit)
    return texts[0] if len(texts) == 1 else None
