"""What a Telegram message carries besides its text: the "✅ Called back" keyboard, the
chat id as the Bot API takes it, and a photo's caption (counted as Telegram counts)."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.delivery.channels.base import Button

CAPTION_LIMIT = 1024  # a photo's caption, in UTF-16 code units like the 4096 of a message
MAX_BUTTONS = 100  # inline keyboard buttons in one message
BUTTONS_PER_ROW = 3  # a coalesced alert's buttons: the last digits fit three abreast


def keyboard(buttons: list[Button]) -> InlineKeyboardMarkup | None:
    """The "✅ Called back" buttons; callback_data carries the call id and nothing else."""
    if not buttons:
        return None
    keys = [InlineKeyboardButton(b.label, callback_data=f"cb:{b.call_id}") for b in buttons]
    keys = keys[:MAX_BUTTONS]
    per_row = 1 if len(keys) == 1 else BUTTONS_PER_ROW
    return InlineKeyboardMarkup([keys[i : i + per_row] for i in range(0, len(keys), per_row)])


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def title_caption(text: str) -> str | None:
    """A chart's caption: the text's first line (the summary's title, whole tags only), or
    None when even that is too long. Never cut: a cut could split an HTML tag."""
    first = text.split("\n", 1)[0]
    return first if utf16_len(first) <= CAPTION_LIMIT else None


def chat_id(target: str) -> int | str:
    return target if target.startswith("@") else int(target)
