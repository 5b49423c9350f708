"""A press of "✅ Called back", platform-neutral (issue 12): resolve, word the presser's
confirmation, hand the edits to the outbox.

The button carries only the call id; whether the press counts is decided by storage
against the stored alert (the chat it went to and that very message), so a payload copied
into another chat resolves nothing. The confirmation is worded here, answered by the
platform adapter at once; the edit of the alert goes through the outbox like any message
(rate limits, retries, restarts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from handlers import metrics
from storage.db import Store
from storage.outbox import OutboxItem, Target
from storage.resolutions import BUTTON, ButtonResult, Resolution, resolve_by_button

log = logging.getLogger(__name__)

TEXTS: dict[str, dict[str, str]] = {
    "marked": {"en": "✅ Marked as called back", "uk": "✅ Позначено: передзвонили"},
    "already_by": {
        "en": "Already marked by {name} at {time}",
        "uk": "Вже позначено: {name} о {time}",
    },
    "already_answered": {
        "en": "Already resolved: the caller got through at {time}",
        "uk": "Вже закрито: клієнт додзвонився о {time}",
    },
    "not_here": {"en": "Not for this chat", "uk": "Не для цього чату"},
    "failed": {
        "en": "Could not mark it just now, please press again",
        "uk": "Не вдалося позначити, натисніть ще раз",
    },
}


def text(lang: str, key: str, **values: str) -> str:
    entry = TEXTS[key]
    return entry.get(lang, entry["en"]).format(**values)


class Callbacks:
    """What every platform adapter calls on a press; `submit` hands new outbox rows to
    the dispatcher (as summaries do)."""

    def __init__(
        self,
        store: Store,
        *,
        lang: str,
        tz: ZoneInfo,
        submit: Callable[[list[OutboxItem]], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lang = lang
        self.tz = tz
        self.submit = submit
        self.clock = clock

    def refused(self) -> str:
        """The answer to a press in a chat that is not configured."""
        return text(self.lang, "not_here")

    async def press(
        self,
        target: Target,
        message_id: str,
        call_id: int,
        *,
        by_name: str | None,
        by_user: str | None,
    ) -> tuple[str, list[OutboxItem]]:
        """(the confirmation for the presser, the edits to submit after answering)."""
        try:
            result: ButtonResult = await self.store.run(
                resolve_by_button,
                call_id,
                target,
                str(message_id),
                by_name,
                by_user,
                self.clock(),
            )
        except Exception as exc:  # the database's error: the presser may try again
            log.warning("callback: could not record a press on call %s: %s", call_id, exc)
            return text(self.lang, "failed"), []
        if result.status == "resolved":
            if result.waited_s is not None:
                metrics.callback_resolved(BUTTON, result.waited_s)
            log.info(
                "callback: call %s marked called back in %s (%d call(s) of the caller)",
                call_id,
                target,
                len(result.resolved_call_ids),
            )
            return text(self.lang, "marked"), result.edits
        if result.status == "already" and result.resolution is not None:
            return self._already(result.resolution), []
        log.info("callback: a press on call %s in %s matches no alert there", call_id, target)
        return text(self.lang, "not_here"), []

    def _already(self, res: Resolution) -> str:
        at = datetime.fromtimestamp(res.resolved_at, self.tz).strftime("%H:%M")
        if res.how == BUTTON:
            return text(self.lang, "already_by", name=res.by_name or "?", time=at)
        return text(self.lang, "already_answered", time=at)

    def hand_over(self, edits: list[OutboxItem]) -> None:
        if edits:
            self.submit(edits)
