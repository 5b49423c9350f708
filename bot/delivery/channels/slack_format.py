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
