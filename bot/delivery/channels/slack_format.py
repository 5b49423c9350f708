"""Slack messages: mrkdwn as Block Kit section blocks, with the plain `text` fallback Slack
shows in notifications and to screen readers."""

from __future__ import annotations

import re
from typing import Any

SECTION_LIMIT = 3000  # characters in one section block's text
MAX_BLOCKS = 50  # blocks in one message


def section_blocks(text: str) -> list[dict[str, Any]]:
    """mrkdwn as section blocks, split between lines so each stays within Slack's limit."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > SECTION_LIMIT:  # one huge line: cut it, there is no better place
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:SECTION_LIMIT])
            line = line[SECTION_LIMIT:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_LIMIT:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip() or not chunks:
        chunks.append(current or " ")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": chunk}}
        for chunk in chunks[:MAX_BLOCKS]
    ]


_LINK = re.compile(r"<([^<>|\s]+)\|([^<>]*)>")
_BARE_LINK = re.compile(r"<([^<>|\s]+)>")
_BOLD = re.compile(r"\*([^*\n]+)\*")
_CODE = re.compile(r"`([^`\n]+)`")


def fallback_text(mrkdwn: str) -> str:
    """The `text` Slack shows in notifications and to screen readers: the same words without
    markup. &amp; &lt; &gt; stay escaped: Slack reads `text` with the same escaping rules."""
    text = _LINK.sub(r"\2", mrkdwn)
    text = _BARE_LINK.sub(r"\1", text)
    text = _BOLD.sub(r"\1", text)
    return _CODE.sub(r"\1", text)


def message(mrkdwn: str) -> dict[str, Any]:
    """The keyword arguments of chat.postMessage / respond() for one mrkdwn text."""
    return {"text": fallback_text(mrkdwn), "blocks": section_blocks(mrkdwn)}


MAX_ACTIONS = 25  # elements in one actions block


def actions_blocks(buttons: list[tuple[str, int]], room: int) -> list[dict[str, Any]]:
    """The "✅ Called back" buttons as actions blocks (25 buttons each), at most `room`
    blocks. action_id "called_back:<call id>" (unique in the message), value the call id:
    the press handler checks the channel and the message against the stored alert."""
    elements = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": label[:75], "emoji": True},
            "action_id": f"called_back:{call_id}",
            "value": str(call_id),
        }
        for label, call_id in buttons
    ]
    blocks = [
        {"type": "actions", "elements": elements[i : i + MAX_ACTIONS]}
        for i in range(0, len(elements), MAX_ACTIONS)
    ]
    return blocks[: max(room, 0)]


def message_with_buttons(mrkdwn: str, buttons: list[tuple[str, int]]) -> dict[str, Any]:
    """`message()` with the buttons after the text, within Slack's 50 blocks."""
    out = message(mrkdwn)
    out["blocks"] = out["blocks"] + actions_blocks(buttons, MAX_BLOCKS - len(out["blocks"]))
    return out
